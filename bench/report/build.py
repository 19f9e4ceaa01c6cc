"""`cpep-bench report`: a suite's results over seeds, with confidence intervals, beside the paper's numbers.

Seeds asked: every seed that has a record of the suite on the dataset, whatever its variant or status. A variant
with results for fewer of them is marked, and each (variant, seed) without a result is listed with its reason
(failed, still running or interrupted, queued, or no record at all). The suite's default seeds that no variant has
a record for are named once instead of once per variant: `run --seeds 0-1` on a five-seed suite is a choice, and
the report says which default seeds it left out.

Results of stale runs (stages reused although the code that made them has changed) count like any other, and every
table marks their variants.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from rich.console import Console

from bench.report import claims, reference, scores, select, significance, stats, tables, terminal, variance, write
from bench.report.frames import (
    BOUNDS_GROUP,
    REFERENCE_VARIANT,
    STALE,
    Report,
    chance_levels,
    curves_frame,
    metric_order,
    not_applicable,
    stale_seeds,
    values_frame,
)
from bench.run import records_table
from cpep.errors import UserError

if TYPE_CHECKING:  # both import torch; the report needs neither at run time
    from bench.run.store import Store
    from bench.suites import Suite


# records -> the report

def variant_order(suite: Suite, records: list[dict]) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """(variants in display order, their labels, their groups): the suite's order, then variants only found in
    records, with the floor and ceiling last wherever the suite includes them."""
    labels = {v.name: v.label for v in suite.variants}
    groups = {v.name: v.group for v in suite.variants}
    extra = sorted({r["variant"] for r in records} - set(labels))
    labels |= {r["variant"]: r.get("label") or r["variant"] for r in records if r["variant"] in extra}
    groups |= {r["variant"]: r.get("group") or "" for r in records if r["variant"] in extra}
    names = suite.names + extra
    bounds = [v for v in names if groups[v] == BOUNDS_GROUP]
    return [v for v in names if v not in bounds] + bounds, labels, groups


def summarise(variants: list[str], labels: dict, groups: dict, metrics: list[str], na: dict,
              stale: dict[str, list[int]], paper: pd.DataFrame, method: str, level: float,
              found: scores.Scores) -> pd.DataFrame:
    """Per (variant, metric): the estimate over seeds x users and its interval, the IQM, the paper's number."""
    main = reference.primary(paper).to_dict("index")  # (variant, metric) -> value, approximate, source
    other = reference.others(paper).set_index(["variant", "metric"]).to_dict("index")
    in_paper = {v for v, _ in main}
    rows = []
    for v in variants:
        for m in metrics:
            ref, alt = main.get((v, m), {}), other.get((v, m), {})
            rows.append({
                "variant": v, "label": labels[v], "group": groups[v], "metric": m,
                "not_applicable": na.get((v, m), ""),
                "paper": ref.get("value", math.nan), "paper_approximate": bool(ref.get("approximate", False)),
                "paper_source": ref.get("source", ""), "in_paper": v in in_paper,
                "other_paper": alt.get("value", math.nan), "other_source": alt.get("source", ""),
                "stale": v in stale,
            })
    df = scores.estimate_columns(found, pd.DataFrame(rows), method, level)
    df["paper_in_ci"] = (df["ci_low"] <= df["paper"]) & (df["paper"] <= df["ci_high"])
    return df


def paired_differences(variants: list[str], metrics: list[str], na: dict, stale: dict[str, list[int]], method: str,
                       level: float, alpha: float, test: str, found: scores.Scores) -> pd.DataFrame:
    """Variant minus CPEP on the seeds (and users) both have, with the p-value of no difference by `test`, unadjusted
    and Holm-adjusted over the table (every variant and metric): `significant` and `significant_holm` at `alpha`."""
    rows = []
    for v in variants if REFERENCE_VARIANT in variants else []:
        if v == REFERENCE_VARIANT:
            continue
        for m in metrics:
            ci, by_user, seeds = scores.compare(found, ((v, m), (REFERENCE_VARIANT, m)), stats.difference_of, method,
                                                level, 0.0, test)
            stale_pairs = set(seeds) & set(stale.get(v, []) + stale.get(REFERENCE_VARIANT, []))
            rows.append({"variant": v, "metric": m, "n": ci.n, "seeds": " ".join(map(str, seeds)),
                         "mean": ci.mean, "ci_low": ci.low, "ci_high": ci.high, "excludes_zero": ci.excludes_zero,
                         "p": ci.p,
                         "not_applicable": na.get((v, m)) or na.get((REFERENCE_VARIANT, m), ""),
                         "stale": bool(stale_pairs), "unit": scores.UNITS[by_user]})
    df = pd.DataFrame(rows, columns=["variant", "metric", "n", "seeds", "mean", "ci_low", "ci_high", "excludes_zero",
                                     "p", "not_applicable", "stale", "unit"])
    df["p_holm"] = significance.holm(df["p"])
    df["significant"] = df["p"] < alpha
    df["significant_holm"] = df["p_holm"] < alpha
    return df


def ordering(summary: pd.DataFrame, metrics: list[str]) -> tuple[pd.DataFrame, dict[str, float], dict[str, float]]:
    """Per metric: does our ranking of the variants (by their estimates) agree with the paper's? Kendall's tau and
    its one-sided p-value (stats.agreement_p) per metric."""
    rows, tau, tau_p = [], {}, {}
    for m in metrics:
        sub = summary[(summary["metric"] == m) & summary["paper"].notna()]
        paper = dict(zip(sub["variant"], sub["paper"]))
        ours = {v: x for v, x in zip(sub["variant"], sub["mean"]) if not math.isnan(x)}
        if len(set(paper) & set(ours)) < 2:
            continue
        tau[m], pairs = stats.rank_agreement(ours, paper)
        tau_p[m] = stats.agreement_p(ours, paper)
        stale = set(sub.loc[sub["stale"], "variant"])
        rows += [{"metric": m, "first": p.first, "second": p.second, "paper_first": paper[p.first],
                  "paper_second": paper[p.second], "ours_first": ours[p.first], "ours_second": ours[p.second],
                  "verdict": p.verdict, "stale": bool({p.first, p.second} & stale)} for p in pairs]
    columns = ["metric", "first", "second", "paper_first", "paper_second", "ours_first", "ours_second", "verdict",
               "stale"]
    return pd.DataFrame(rows, columns=columns), tau, tau_p


def _reason(record: dict) -> str:
    if record.get("error"):
        return record["error"]
    if record["status"] == "running":
        worker = record.get("worker") or {}
        where = f" on {worker['host']} (pid {worker['pid']})" if worker.get("host") else ""
        return f"started{where} at {record.get('updated', '?')}: still running, or interrupted (run again to resume)"
    return record["status"]


def incomplete_runs(records: list[dict], variants: list[str], seeds: list[int]) -> pd.DataFrame:
    """(variant, seeds, status, reason) for every asked (variant, seed) without a result, grouped by reason."""
    by_run = {(r["variant"], r["seed"]): r for r in records}
    rows = []
    for v in variants:
        for s in seeds:
            r = by_run.get((v, s))
            if r is None:
                rows.append((v, s, "missing", "no record"))
            elif r["status"] != "done":
                rows.append((v, s, r["status"], _reason(r)))
    df = pd.DataFrame(rows, columns=["variant", "seed", "status", "reason"])
    grouped = df.groupby(["variant", "status", "reason"], sort=False)["seed"]
    out = grouped.agg(lambda s: " ".join(map(str, sorted(s)))).reset_index()
    return out.rename(columns={"seed": "seeds"})[["variant", "seeds", "status", "reason"]]


def _flatten(d: dict, prefix: str = "") -> dict:
    flat = {}
    for k, v in d.items():
        if isinstance(v, dict):
            flat |= _flatten(v, f"{prefix}{k}.")
        else:
            flat[f"{prefix}{k}"] = v
    return flat


DATA_SEED = "data.synth.seed"  # with data.synth.seed_per_run, the data of data seed s is that of the base seed + s


def data_seed(record: dict) -> int:
    """The run's data seed: seeds.data when set, else the run seed (cpep.config.seeds)."""
    value = (record["config"].get("seeds") or {}).get("data", -1)
    return record["seed"] if value == -1 else value


def _follows_data_seed(found: dict[str, list[str]], seeds: dict[str, int]) -> bool:
    """Whether the synthetic data's seeds (value -> "variant/seed" runs) differ only by their runs' data seeds."""
    return len({int(value) - seeds[run] for value, runs in found.items() for run in runs}) == 1


def config_differences(records: list[dict], suite: Suite) -> list[str]:
    """Settings that differ between runs where the suite expects them equal (e.g. seeds run with other epochs).

    A key that a variant overrides is compared among that variant's runs only; other keys among all runs.
    """
    overrides = {v.name: tuple(v.overrides) for v in suite.variants}
    seeds = {f"{r['variant']}/{r['seed']}": data_seed(r) for r in records}
    seen: dict[tuple[str, str], dict[str, list[str]]] = {}
    for r in records:
        if r["status"] != "done":
            continue
        own = overrides.get(r["variant"])
        for key, value in _flatten(r["config"]).items():
            mine = own is None or any(key == o or key.startswith(o + ".") for o in own)
            cohort = r["variant"] if mine else "*"
            seen.setdefault((key, cohort), {}).setdefault(repr(value), []).append(f"{r['variant']}/{r['seed']}")
    notes = []
    for (key, cohort), found in sorted(seen.items()):
        if len(found) > 1 and not (key == DATA_SEED and _follows_data_seed(found, seeds)):
            where = "" if cohort == "*" else f" within {cohort}"
            parts = "; ".join(f"{value} in {len(runs)} run{'s' * (len(runs) > 1)} ({', '.join(runs[:3])}"
                              f"{', ...' if len(runs) > 3 else ''})" for value, runs in found.items())
            notes.append(f"configuration differs{where}: {key} = {parts}")
    return notes


def current(records: list[dict], reuse_stale: bool) -> list[dict]:
    """The records as a table may count them: a finished run whose code is not the current code's is left out,
    as "stale" with the reason (select.code_changed), or with `reuse_stale` counted and marked stale."""
    out = []
    for r in records:
        why = select.code_changed(r) if r["status"] == "done" else ""
        if why and reuse_stale:
            r = {**r, "stale": True}
        elif why:
            r = {**r, "status": "stale", "error": f"{why}: left out (`cpep-bench run` recomputes it; "
                                                   f"`report --reuse-stale` shows it, marked {STALE})"}
        out.append(r)
    return out


def check_options(method: str, level: float, alpha: float | None, test: str) -> float:
    """The options' values checked (one line each when wrong); returns alpha (1 - level when not given)."""
    if method not in stats.CI_METHODS:
        raise UserError(f"--ci takes {', '.join(stats.CI_METHODS)}, not {method!r}")
    if not 0 < level < 1:
        raise UserError(f"--level must lie between 0 and 1 (e.g. 0.95), not {level}")
    if test not in significance.TESTS:
        raise UserError(f"--test takes {' or '.join(significance.TESTS)}, not {test!r}")
    alpha = round(1 - level, 12) if alpha is None else alpha
    if not 0 < alpha < 1:
        raise UserError(f"--alpha must lie between 0 and 1 (e.g. 0.05), not {alpha}")
    return alpha


def check_method(method: str, records: list[dict]) -> None:
    """An interval is printed only where its coverage was measured (stats.MIN_SEEDS, docs/statistics.md): one line
    where the records' seeds are fewer than the method serves on data like theirs."""
    done = [r for r in records if r["status"] == "done"]
    most = max([sum(1 for r in done if r["variant"] == v) for v in {r["variant"] for r in done}], default=0)
    crossed = len({r["seed"] for r in done}) > 1 and len({scores.cohort(r) for r in done}) == 1
    needed = stats.least_seeds(method, crossed)
    if needed is None:
        raise UserError(f"--ci {method} resamples the seeds only, and every seed here tests the same users: its "
                        f"interval would leave out who is tested (use --ci t or --ci bootstrap)")
    if method != "t" and most and max(most, 2) < needed:  # t: rows below its seeds print no interval, and say so
        raise UserError(f"--ci {method} needs {needed} seeds or more on this data (with fewer its 95 % interval "
                        f"covers less than 90 % of the time: docs/statistics.md); these records have {most}: use "
                        f"--ci t")


def build(suite: Suite, records: list[dict], method: str = "t", level: float = 0.95,
          reuse_stale: bool = False, alpha: float | None = None, test: str = "interval") -> Report:
    """The report of one data identity's records (select.pick_identity)."""
    alpha = check_options(method, level, alpha, test)
    if not records:
        raise UserError(f"no records of suite {suite.name!r}")
    if len({select.data_key(r) for r in records}) > 1:
        raise UserError(f"suite {suite.name!r}: records of several data identities never share a report")
    records = current(records, reuse_stale)
    check_method(method, records)
    dataset = records[0]["dataset"]
    variants, labels, groups = variant_order(suite, records)
    metrics = metric_order(records)
    seeds = sorted({r["seed"] for r in records})
    done = {v: sorted(r["seed"] for r in records if r["variant"] == v and r["status"] == "done") for v in variants}
    stale = stale_seeds(records, variants)
    values, na = values_frame(records), not_applicable(records)
    found = scores.Scores.of(records, values)
    paper = reference.load(dataset, records[0]["config"]["data"]["vocab"])
    summary = summarise(variants, labels, groups, metrics, na, stale, paper, method, level, found)
    order, tau, tau_p = ordering(summary, metrics)
    notes = []
    unrun = sorted(set(suite.seeds) - set(seeds))
    if unrun:
        which = f"seeds {', '.join(map(str, unrun))} have" if len(unrun) > 1 else f"seed {unrun[0]} has"
        notes.append(f"the suite's default {which} no record for any variant: not run, so not asked "
                     f"(`cpep-bench run --suite {suite.name} --seeds ...` runs them)")
    notes += config_differences(records, suite)
    notes += [n for n in [select.environment_note(records)] if n]
    better = scores.improvement_table(found, variants, metrics, method, level, test)
    family = (better["b"] == REFERENCE_VARIANT) & (better["a"] != REFERENCE_VARIANT)
    better["p_holm"] = significance.holm(better["p"].where(family))
    settings = claims.Settings(method, level, alpha, test)
    return Report(suite=suite.name, dataset=dataset, data=select.describe(select.data_key(records[0]), records),
                  method=method, level=level, variants=variants, labels=labels,
                  groups=groups, metrics=metrics, seeds=seeds, done=done, stale=stale, values=values, summary=summary,
                  differences=paired_differences(variants, metrics, na, stale, method, level, alpha, test, found),
                  ordering=order, tau=tau, incomplete=incomplete_runs(records, variants, seeds),
                  curves=curves_frame(records, labels), notes=notes, chance=chance_levels(records, metrics),
                  variance=variance.by_source(values, metrics), improvement=better,
                  claims=claims.table(found, records, claims.sweeps(values), settings, paper),
                  alpha=alpha, test=test, tau_p=tau_p,
                  profiles=scores.profiles(found, variants, metrics, method, level))


def show(suite: Suite, store: Store, console: Console, out: Path | None = None, formats: tuple[str, ...] = write.FORMATS,
         method: str = "t", level: float = 0.95, data: str | None = None, figures: bool = True,
         data_root: Path | None = None, data_id: str | None = None, reuse_stale: bool = False,
         full: bool = False, alpha: float | None = None, test: str = "interval") -> Path:
    """Build the report of one data identity's records (select.pick_identity), write its files under `out`, print
    it (the main table and the claims; with `full`, every table); returns `out`."""
    check_options(method, level, alpha, test)
    records = records_table.load(store, suite.name)  # rebuilt from the JSON records first
    if not records:
        raise UserError(f"no results for suite {suite.name!r} in {store.root} "
                        f"(run `cpep-bench run --suite {suite.name}` first)")
    records = select.pick_identity(records, suite.name, data, data_root, data_id)
    report = build(suite, records, method, level, reuse_stale, alpha, test)
    out = Path(out) if out is not None else store.root / "report" / suite.name / report.data.split(" ")[0]
    written = write.write_tables(report, out, formats)
    written.append(write.write_provenance(report, records, out))
    if figures:
        from bench.report import figures as figures_module  # seaborn and matplotlib load only when drawing
        written += figures_module.write_all(report, out)
    if "html" in formats:
        from bench.report import html
        written.append(html.write(report, current(records, reuse_stale), out, written))
    if full:
        tables.print_report(report, console)
        variance.print_table(report, console)
    else:
        terminal.print_report(report, console)
    page = " (report.html: the whole report in one page)" if "html" in formats else ""
    console.print(f"wrote {len(written)} files to {out}{page}", highlight=False, soft_wrap=False)
    return out
