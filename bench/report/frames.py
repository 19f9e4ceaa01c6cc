"""The report's data: the `Report` that tables and figures draw, and the frames it is built from run records.

A run record is a JSON object with (among others) variant, label, group, dataset, seed, status ("done", "failed",
"running", ...), error, metrics {name: value or null}, not_applicable {name: reason}, config (resolved, with
emg.patch), stages [{kind, key, history, stale?}] and stale (optional, true when the run reused stages made by older
code).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

METRICS = ("lp_id", "lp_unseen", "zs_id", "zs_unseen")  # known metrics, shown first in this order
METRIC_NAMES = {"lp_id": "LP in-dist", "lp_unseen": "LP unseen", "zs_id": "ZS in-dist", "zs_unseen": "ZS unseen"}
CLASS_SET_NAMES = {"id": "in-dist", "unseen": "unseen"}
REFERENCE_VARIANT = "cpep"
PATCH_GROUP = "patch_length"
FRACTION_GROUP = "data_fraction"
BOUNDS_GROUP = "bounds"  # the floor and ceiling: no-learning references, shown last in every table
STALE = "†"  # marks a variant with a result computed by older code


def metric_name(metric: str) -> str:
    """The column header of a metric: 'LP in-dist' for the paper's four, 'lp_k05 unseen' for another KEY_unseen."""
    if metric in METRIC_NAMES:
        return METRIC_NAMES[metric]
    key, _, kind = metric.rpartition("_")
    return f"{key} {CLASS_SET_NAMES[kind]}" if key and kind in CLASS_SET_NAMES else metric


def sweep_rows(frame: pd.DataFrame, group: str) -> pd.DataFrame:
    """The rows of a sweep's variants (its group) and of CPEP, the sweep's default point."""
    return frame[(frame["group"] == group) | (frame["variant"] == REFERENCE_VARIANT)]


@dataclass
class Report:
    suite: str
    dataset: str
    data: str  # the data identity in a few words: dataset-key (where it was read; runs)
    method: str
    level: float
    variants: list[str]  # display order: the suite's, then variants only found in records
    labels: dict[str, str]
    groups: dict[str, str]  # variant -> its group ("" for none)
    metrics: list[str]
    seeds: list[int]  # asked
    done: dict[str, list[int]]  # seeds with a result, per variant
    stale: dict[str, list[int]]  # seeds whose result was computed by older code, per variant that has any
    values: pd.DataFrame  # one row per (variant, seed, metric) with a value
    summary: pd.DataFrame  # one row per (variant, metric)
    differences: pd.DataFrame  # one row per (variant, metric), variant - CPEP on shared seeds
    ordering: pd.DataFrame  # one row per (metric, pair of variants with a paper number)
    tau: dict[str, float]  # Kendall's tau per metric, ours against the paper
    incomplete: pd.DataFrame  # variant, seeds, status, reason
    curves: pd.DataFrame  # training history: kind, used_by, seed, epoch, loss, temperature
    notes: list[str] = field(default_factory=list)  # seeds not run, patch-length trend, configuration differences
    chance: dict[str, float] = field(default_factory=dict)  # per metric of a class set: balanced accuracy of guessing
    variance: pd.DataFrame = field(default_factory=pd.DataFrame)  # per seed source that varies alone (bench.report.variance)
    improvement: pd.DataFrame = field(default_factory=pd.DataFrame)  # P(A > B) per ordered pair of variants, metric
    claims: pd.DataFrame = field(default_factory=pd.DataFrame)  # the paper's claims checked (bench.report.claims)
    alpha: float = 0.05  # the level of the tests: the claims' verdicts and the tables' significance marks
    test: str = "interval"  # what gives a comparison's p-value (bench.report.significance.TESTS)
    tau_p: dict[str, float] = field(default_factory=dict)  # one-sided p-value of Kendall's tau > 0, per metric
    profiles: pd.DataFrame = field(default_factory=pd.DataFrame)  # performance profiles (bench.report.scores)

    @property
    def published(self) -> bool:
        """Whether the paper's numbers apply to this data (bench.report.reference): only then are they shown."""
        return bool(self.summary["paper"].notna().any())

    def is_bound(self, variant: str) -> bool:
        return self.groups.get(variant) == BOUNDS_GROUP

    @property
    def chance_by_class_set(self) -> dict[str, float]:
        """The balanced accuracy of guessing per class set ("in-distribution", "unseen"), in the metrics' order."""
        levels: dict[str, float] = {}
        for metric, level in self.chance.items():
            levels.setdefault(CLASS_SETS[metric.rsplit("_", 1)[-1]], level)
        return levels


# records -> data

def metric_order(records: list[dict]) -> list[str]:
    """The metrics the records carry (with a value or a reason they do not apply): known ones first, then the rest
    sorted; the known ones when no record carries any yet."""
    recorded = {m for r in records for key in ("metrics", "not_applicable") for m in (r.get(key) or {})}
    if not recorded:
        return list(METRICS)
    return [m for m in METRICS if m in recorded] + sorted(recorded - set(METRICS))


CLASS_SETS = {"id": "in-distribution", "unseen": "unseen"}  # metric name suffix -> class set


def chance_levels(records: list[dict], metrics: list[str]) -> dict[str, float]:
    """The balanced accuracy of guessing (1 / classes) of each metric named for a class set (`..._id`,
    `..._unseen`), from the records' gesture vocabulary; none when the records disagree on it or it cannot be read
    here (a vocabulary file left on another machine)."""
    from cpep.data.gestures import load_vocab
    from cpep.errors import UserError

    names = {r["config"]["data"]["vocab"] for r in records if r.get("config")}
    if len(names) != 1:
        return {}
    try:
        vocab = load_vocab(names.pop())
    except UserError:
        return {}
    return {m: 1 / len(vocab.classes(m.rsplit("_", 1)[-1])) for m in metrics if m.rsplit("_", 1)[-1] in CLASS_SETS}


def is_stale(record: dict) -> bool:
    return bool(record.get("stale")) or any(s.get("stale") for s in record.get("stages") or [])


def stale_seeds(records: list[dict], variants: list[str]) -> dict[str, list[int]]:
    """Per variant, in display order, the seeds whose result came from a stale run; variants without any are left
    out. A run without a result has nothing to mark."""
    stale = [(r["variant"], r["seed"]) for r in records if r["status"] == "done" and is_stale(r)]
    found = {v: sorted(s for w, s in stale if w == v) for v in variants}
    return {v: seeds for v, seeds in found.items() if seeds}


SEED_SOURCES = ("init", "order", "data")  # cpep.config's `seeds`
USER_KNOBS = ("ring_rotation", "gain_sd", "difficulty")  # data.synth: how much users differ (and the noise floor)


def varied_source(cfg: dict) -> str:
    """The one seed source that follows the run seed while the others are set ("" for none or several)."""
    unset = [s for s in SEED_SOURCES if (cfg.get("seeds") or {}).get(s, -1) == -1]
    return unset[0] if len(unset) == 1 else ""


def user_level(cfg: dict) -> tuple | None:
    """The synthetic users' variability settings (USER_KNOBS), None for other data."""
    synth = cfg["data"].get("synth")
    return tuple(synth[k] for k in USER_KNOBS) if synth else None


def values_frame(records: list[dict]) -> pd.DataFrame:
    """One row per (run, metric) with a value: its variant, seed, and the settings the sweeps vary (EMG patch,
    data fraction, users' variability, the seed source that varies)."""
    rows = [{"variant": r["variant"], "group": r.get("group", ""), "seed": r["seed"], "metric": m, "value": v,
             "patch": r["config"]["emg"]["patch"], "method": r.get("method", ""),
             "fraction": r["config"]["data"].get("fraction", 1.0), "users": user_level(r["config"]),
             "source": varied_source(r["config"])}
            for r in records if r["status"] == "done" for m, v in (r.get("metrics") or {}).items() if v is not None]
    return pd.DataFrame(rows, columns=["variant", "group", "seed", "metric", "value", "patch", "method", "fraction",
                                       "users", "source"])


def not_applicable(records: list[dict]) -> dict[tuple[str, str], str]:
    return {(r["variant"], m): why for r in records for m, why in (r.get("not_applicable") or {}).items()}


def curves_frame(records: list[dict], labels: dict[str, str]) -> pd.DataFrame:
    """Training history per stage output (shared stages once), named by the variants that use it."""
    users: dict[tuple[str, str], list[str]] = {}
    history: dict[tuple[str, str], tuple[int, list]] = {}
    for r in records:
        for s in r.get("stages") or []:
            if s.get("history"):
                users.setdefault((s["kind"], s["key"]), []).append(r["variant"])
                history[(s["kind"], s["key"])] = (r["seed"], s["history"])
    order = list(labels)
    rows = []
    for (kind, key), (seed, entries) in history.items():
        names = sorted(set(users[(kind, key)]), key=order.index)
        used_by = ", ".join(names[:3]) + (f" +{len(names) - 3}" if len(names) > 3 else "")
        rows += [{"kind": kind, "used_by": used_by, "first": order.index(names[0]), "seed": seed,
                  "epoch": e["epoch"], "loss": e.get("loss"), "temperature": e.get("temperature")} for e in entries]
    rows.sort(key=lambda row: row["first"])  # legend in the suite's order
    return pd.DataFrame(rows, columns=["kind", "used_by", "seed", "epoch", "loss", "temperature"])
