"""How often each interval the report prints covers the true value, and how often each test rejects a true null,
measured on simulated seed x user scores of known effects (`cpep-bench coverage`; its tables are those of
docs/statistics.md).

The model: variant v's score on seed s and held-out user u is mu_v + a_vs + b_u + e_vsu, with a training effect
a_vs ~ N(0, seed sd) drawn per variant and seed, a user effect b_u ~ N(0, user sd) that every variant shares, and a
residual e_vsu ~ N(0, RESIDUAL_SD). Nested: each seed draws its own users (the synthetic data, one dataset per
seed); crossed: every seed tests the same users (a dataset's fixed held-out users). Variant A is EFFECT above B.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy
from scipy import stats as scipy_stats

from bench.report import significance, stats

DESIGNS = stats.DESIGNS
SEEDS = (2, 3, 5, 10, 20)
SEED_SDS = (0.0, 0.015, 0.03, 0.05)
USER_SDS = (0.02, 0.03, 0.10)
RESIDUAL_SD = 0.03
USERS = 16
MU, EFFECT = 0.5, 0.03
LEVEL, ALPHA = 0.95, 0.05
FLOOR = 0.90  # an interval serves from the fewest seeds at which its coverage stays at or above this
STATISTICS = {"mean": stats.mean_of, "IQM": stats.iqm_of, "difference": stats.difference_of,
              "P(A > B)": stats.improvement_of, "profile at 0.5": stats.above_of(MU)}
SEEDS_ONLY = "t, seeds only"  # t without the users' term: measured on crossed data to show why the term is there
TESTS = ("t test", "sign flip of seeds", "sign flip of (seed, user) pairs")
BEGIN, END = "<!-- begin: cpep-bench coverage -->", "<!-- end: cpep-bench coverage -->"


@dataclass(frozen=True)
class Cell:
    design: str
    seeds: int
    seed_sd: float
    user_sd: float

    def draw(self, rng: np.random.Generator, effect: float = EFFECT) -> np.ndarray:
        """(seeds, users, 2) scores of A and B."""
        shape = (self.seeds, USERS) if self.design == "nested" else (1, USERS)
        users = rng.normal(0, self.user_sd, shape)
        training = rng.normal(0, self.seed_sd, (2, self.seeds, 1))
        residual = rng.normal(0, RESIDUAL_SD, (2, self.seeds, USERS))
        scores = MU + np.array([effect, 0.0])[:, None, None] + training + users + residual
        return np.moveaxis(scores, 0, -1)

    def targets(self) -> dict[str, float]:
        """The true value of each statistic: its expectation over training runs and users."""
        win = scipy_stats.norm.cdf(EFFECT / math.sqrt(2 * self.seed_sd ** 2 + 2 * RESIDUAL_SD ** 2))
        above = scipy_stats.norm.cdf(EFFECT / math.sqrt(self.seed_sd ** 2 + self.user_sd ** 2 + RESIDUAL_SD ** 2))
        return {"mean": MU + EFFECT, "IQM": MU + EFFECT, "difference": EFFECT, "P(A > B)": float(win),
                "profile at 0.5": float(above)}


def grid(designs=DESIGNS, seeds=SEEDS, seed_sds=SEED_SDS, user_sds=USER_SDS) -> list[Cell]:
    return [Cell(*c) for c in itertools.product(designs, seeds, seed_sds, user_sds)]


def measure(cell: Cell, replications: int, resamples: int, seed: int = 0, statistics: tuple[str, ...] = (),
            methods: tuple[str, ...] = (), tests: bool = True) -> list[dict]:
    """Coverage of every (statistic, interval) and the rejection rate of every test at no effect, in one cell
    (`statistics`, `methods`: only these; `tests`: the tests too)."""
    rng = np.random.default_rng([seed, DESIGNS.index(cell.design), cell.seeds, round(cell.seed_sd * 1e4),
                                 round(cell.user_sd * 1e4)])
    targets = cell.targets()
    methods = methods or stats.CI_METHODS + ((SEEDS_ONLY,) if cell.design == "crossed" else ())
    covered = {(s, m): 0 for s in statistics or STATISTICS for m in methods}
    rejected = dict.fromkeys(TESTS if tests else (), 0)
    for _ in range(replications):
        values = cell.draw(rng)
        data = stats.Strata(values, crossed=cell.design == "crossed")
        for name, method in covered:
            strata = stats.Strata(values) if method == SEEDS_ONLY else data
            ci = stats.estimate(strata, STATISTICS[name], "t" if method == SEEDS_ONLY else method, LEVEL,
                                resamples=resamples, min_seeds=2)
            covered[(name, method)] += bool(ci.low <= targets[name] <= ci.high)
        if not tests:
            continue
        null = values - np.array([EFFECT, 0.0])  # the same scores with no effect
        differences = null[..., 0] - null[..., 1]
        t = stats.estimate(stats.Strata(null, data.crossed), stats.difference_of, "t", LEVEL, null=0.0, min_seeds=2)
        rejected["t test"] += t.p < ALPHA
        rejected["sign flip of seeds"] += significance.sign_flip(differences.mean(axis=1)) < ALPHA
        rejected["sign flip of (seed, user) pairs"] += _pair_flips(differences.ravel(), rng) < ALPHA
    common = {"design": cell.design, "seeds": cell.seeds, "seed_sd": cell.seed_sd, "user_sd": cell.user_sd,
              "replications": replications}
    rows = [common | {"statistic": s, "method": m, "measure": "coverage", "rate": n / replications}
            for (s, m), n in covered.items()]
    return rows + [common | {"statistic": "difference", "method": name, "measure": f"rejects at {ALPHA:g}",
                             "rate": n / replications} for name, n in rejected.items()]


def _pair_flips(differences: np.ndarray, rng: np.random.Generator, resamples: int = 999) -> float:
    """Two-sided p-value of flipping the sign of each (seed, user) difference on its own: the test that treats a
    seed's users as independent of each other (what significance.sign_flip does not do)."""
    signs = rng.choice([-1.0, 1.0], size=(resamples, len(differences)))
    null = np.abs(signs @ differences)
    return (1 + np.sum(null >= abs(differences.sum()) - 1e-12)) / (resamples + 1)


def run(cells: list[Cell], replications: int, resamples: int, progress=None, methods: tuple[str, ...] = ()
        ) -> pd.DataFrame:
    """Every cell measured (`methods`: only these intervals, and then no tests)."""
    rows = []
    for cell in cells:
        rows += measure(cell, replications, resamples, methods=methods, tests=not methods)
        if progress:
            progress(cell)
    return pd.DataFrame(rows)


KINDS = {"estimates": ("mean", "IQM", "difference"), "fractions": ("P(A > B)", "profile at 0.5")}


def served_from(frame: pd.DataFrame) -> dict[tuple[str, str, str], int | None]:
    """Per (interval, design, kind of statistic: KINDS): the fewest simulated seeds from which the coverage of every
    statistic of that kind, in every simulated cell of the design, is at least FLOOR (None: at none)."""
    cov = frame[frame["measure"] == "coverage"]
    found = {}
    for method, design, (kind, names) in itertools.product(stats.CI_METHODS, DESIGNS, KINDS.items()):
        sub = cov[(cov["method"] == method) & (cov["design"] == design) & cov["statistic"].isin(names)]
        if sub.empty:
            continue
        worst = sub.groupby("seeds")["rate"].min().sort_index()
        ok = [s for s in worst.index if (worst.loc[worst.index >= s] >= FLOOR).all()]
        found[(method, design, kind)] = int(min(ok)) if ok else None
    return found


def in_use(method: str, design: str, kind: str) -> int | None:
    """The seeds from which the report prints `method`'s intervals (stats.MIN_SEEDS, FRACTION_SEEDS)."""
    statistic = stats.improvement_of if kind == "fractions" else stats.mean_of
    return stats.least_seeds(method, design == "crossed", statistic)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)] + ["| " + " | ".join(r) + " |"
                                                                              for r in rows]


def _rate(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.3f}"


def _seeds(n: int | None) -> str:
    return "-" if n is None else str(n)


def markdown(frame: pd.DataFrame, about: list[str]) -> str:
    """The tables of docs/statistics.md, with what made them (`about`)."""
    cov = frame[frame["measure"] == "coverage"]
    seeds = sorted(frame["seeds"].unique())
    designs = [d for d in DESIGNS if d in set(frame["design"])]
    columns = [(d, s) for d in designs for s in seeds]
    header = ["statistic", "interval"] + [f"{d} {s}" for d, s in columns]
    worst = cov.groupby(["statistic", "method", "design", "seeds"])["rate"].min()
    measured = [m for m in stats.CI_METHODS + (SEEDS_ONLY,) if m in set(cov["method"])]
    intervals = [m for m in measured if m in stats.CI_METHODS]  # those the report prints
    rows = [[s, m] + [_rate(worst.get((s, m, d, n), math.nan)) for d, n in columns]
            for m in measured for s in STATISTICS]
    out = [f"Lowest coverage of the {LEVEL * 100:g} % intervals over the {frame['seed_sd'].nunique()} x "
           f"{frame['user_sd'].nunique()} cells of seed sd x user sd, per design and number of seeds (columns):", ""]
    out += _table(header, rows) + [""]
    out += [f"The fewest seeds from which every statistic of a kind covers {FLOOR:g} or more in every cell of a "
            f"design, as measured here (-: at none of the seeds simulated), and from which the report prints the "
            f"interval (-: never; fractions: P(A > B) and performance profiles):", ""]
    out += _table(["interval", "kind"] + [f"{d}: measured" if i == 0 else f"{d}: report" for d in designs
                                          for i in range(2)],
                  [[m, kind] + [_seeds(n) for d in designs
                                for n in (served_from(frame).get((m, d, kind)), in_use(m, d, kind))]
                   for m in intervals for kind in KINDS]) + [""]
    detail = cov[cov["seeds"] == 3].pivot_table(index=["design", "seed_sd", "user_sd"],
                                                 columns=["statistic", "method"], values="rate")
    if len(detail):
        pairs = [(s, m) for s in ("mean", "difference") for m in intervals]
        out += ["With 3 seeds, each cell (mean and paired difference):", ""]
        out += _table(["design", "seed sd", "user sd"] + [f"{s}, {m}" for s, m in pairs],
                      [[d, f"{a:g}", f"{b:g}"] + [_rate(r.get(p, math.nan)) for p in pairs]
                       for (d, a, b), r in detail.iterrows()]) + [""]
    tests = frame[frame["measure"] != "coverage"]
    if not tests.empty:  # measured unless --intervals chose some intervals
        highest = tests.groupby(["method", "design", "seeds"])["rate"].max()
        out += [f"Highest rejection rate with no effect (a test at {ALPHA:g} should reject {ALPHA:g} of the time or "
                f"less), per design and number of seeds:", ""]
        out += _table(["test"] + [f"{d} {s}" for d, s in columns],
                      [[t] + [_rate(highest.get((t, d, n), math.nan)) for d, n in columns] for t in TESTS]) + [""]
    return "\n".join(about + [""] + out)


def about(replications: int, resamples: int, seconds: float, command: str) -> list[str]:
    from bench.run import provenance
    git = provenance.git_state()
    sd = math.sqrt(LEVEL * (1 - LEVEL) / replications)
    return [f"Made by `{command}` in {seconds:.0f} s on commit {git['commit'][:12]}"
            f"{' (with local changes)' if git['dirty'] else ''}, numpy {np.__version__}, scipy "
            f"{scipy.__version__}.",
            f"{replications} replications per cell (a coverage of {LEVEL:g} is measured within +-{2 * sd:.3f}, two "
            f"standard errors), {resamples:,} bootstrap resamples per interval; {USERS} users, residual sd "
            f"{RESIDUAL_SD:g}, effect {EFFECT:g}, mean {MU:g}."]


def splice(text: str, table: str) -> str:
    """`text` with what lies between the BEGIN and END markers replaced by `table`."""
    if BEGIN not in text or END not in text:
        raise ValueError(f"no {BEGIN} ... {END} block")
    head, rest = text.split(BEGIN, 1)
    return head + BEGIN + "\n" + table.rstrip("\n") + "\n" + END + rest.split(END, 1)[1]


def timed(cells: list[Cell], replications: int, resamples: int, progress=None, methods: tuple[str, ...] = ()
          ) -> tuple[pd.DataFrame, float]:
    start = time.monotonic()
    frame = run(cells, replications, resamples, progress, methods)
    return frame, time.monotonic() - start
