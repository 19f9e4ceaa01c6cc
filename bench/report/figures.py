"""The report's figures (matplotlib and seaborn, PNG and SVG): bars with intervals, the patch-length curve,
training curves, and for suites that have them, few-shot curves and metric against the data fraction and against
the users' variability. Estimates and intervals are the tables' (the report's summary), never recomputed here."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from bench.report import scores  # noqa: E402
from bench.report.frames import (  # noqa: E402
    FRACTION_GROUP,
    PATCH_GROUP,
    REFERENCE_VARIANT,
    STALE,
    USER_KNOBS,
    Report,
    metric_name,
    sweep_rows,
)
from bench.report.tables import marked  # noqa: E402
from cpep.files import replace_atomically  # noqa: E402

FORMATS = ("png", "svg")
STAGE_ORDER = ("pose_mae", "emg_mae", "align", "poset", "tds_regression")


def save(fig, out: Path, stem: str) -> list[Path]:
    paths = []
    for fmt in FORMATS:
        replace_atomically(out / f"{stem}.{fmt}",
                           lambda tmp: fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight"))
        paths.append(out / f"{stem}.{fmt}")
    plt.close(fig)
    return paths


def _subtitle(report: Report, drawn: pd.DataFrame) -> str:
    """What the figure shows: the suite, the data, and how the intervals of the `drawn` summary rows are computed."""
    note = "" if report.published else " (no published reference for this data)"
    how = scores.interval_text(drawn, report.method, report.level)
    single = "; an estimate without an error bar: one seed, no interval" if (drawn["n"] < 2).any() else ""
    stale = f"; {STALE}: stale, computed by older code" if report.stale else ""
    return f"{report.suite} on {report.dataset}{note}; {how}{single}{stale}"


def _estimates(report: Report) -> pd.DataFrame:
    """Each (variant, metric) with a result: the estimate and interval the tables print (the summary's), with the
    variant's swept settings. Every figure but the training curves draws these, so that no figure shows another
    number than the tables."""
    s = report.summary[(report.summary["n"] > 0) & (report.summary["not_applicable"] == "")]
    settings = report.values.groupby("variant")[["patch", "method", "fraction", "users"]].first()
    return s.join(settings, on="variant")


def _errors(ax, df: pd.DataFrame, at: str, horizontal: bool = False, **style) -> None:
    """Error bars from the interval of each row that has one (two seeds or more), at positions `at`."""
    df = df[df["ci_low"].notna()]
    if len(df):
        bars = [(df["mean"] - df["ci_low"]).clip(lower=0.0), (df["ci_high"] - df["mean"]).clip(lower=0.0)]
        if horizontal:
            ax.errorbar(df["mean"], df[at], xerr=bars, fmt="none", capsize=3, linewidth=1, **style)
        else:
            ax.errorbar(df[at], df["mean"], yerr=bars, fmt="none", capsize=3, linewidth=1, **style)


def _panels(count: int, cols: int, height: float, aspect: float):
    """A figure of `count` panels sharing the y axis, `cols` per row, sized to them."""
    rows = -(-count // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(height * aspect * cols, height * rows), squeeze=False,
                             sharey=True)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:count])


def _lines(ax, df: pd.DataFrame, x: str, hue: str | None = None) -> None:
    """Estimate against `x` with its interval as error bars, one line per value of `hue`."""
    for name, g in df.groupby(hue, sort=False) if hue else [(None, df)]:
        g = g.sort_values(x)
        (line,) = ax.plot(g[x], g["mean"], marker="o", markersize=4, label=name)
        _errors(ax, g, x, color=line.get_color())


def _finish(fig, axes, title: str, stem: str, out: Path) -> list[Path]:
    """The legend under the panels and the title above them, wrapped to the figure's width."""
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(len(handles), 3),
                   frameon=False, fontsize=7)
    fig.tight_layout()
    chars = max(40, int(fig.get_figwidth() * 15))  # about 15 characters per inch at 8 points
    fig.suptitle("\n".join(textwrap.fill(line, chars) for line in title.split("\n")), fontsize=8, y=1.0,
                 va="bottom")
    return save(fig, out, stem)


def _chance(ax, report: Report, metric: str, vertical: bool = False) -> None:
    if metric in report.chance:
        line = ax.axvline if vertical else ax.axhline
        line(report.chance[metric], color="gray", linestyle="--", linewidth=1, zorder=4, label="chance")


def bars(report: Report, out: Path) -> list[Path]:
    """Per metric: our estimate with its interval per variant, the paper's number as a marker (hollow: read off a
    figure), chance dashed."""
    est = _estimates(report)
    if est.empty:
        return []
    shown = {v: marked(report.labels[v], v in report.stale) for v in report.variants}
    row = {v: i for i, v in enumerate(report.variants)}
    fig, axes = _panels(len(report.metrics), min(2, len(report.metrics)), 0.32 * len(row) + 1.5, 1.6)
    for metric, ax in zip(report.metrics, axes):
        sub = est[est["metric"] == metric].assign(row=lambda d: d["variant"].map(row))
        ax.barh(sub["row"], sub["mean"], color="tab:blue")
        _errors(ax, sub, "row", horizontal=True, color="black")
        paper = report.summary[(report.summary["metric"] == metric) & report.summary["paper"].notna()]
        for approximate, face in ((False, "black"), (True, "none")):
            part = paper[paper["paper_approximate"] == approximate]
            ax.scatter(part["paper"], part["variant"].map(row), marker="D", facecolors=face, edgecolors="black",
                       zorder=5, label=None if approximate else "paper (hollow: read off a figure)")
        _chance(ax, report, metric, vertical=True)
        summary = report.summary[report.summary["metric"] == metric].set_index("variant")
        for variant in set(row) - set(sub["variant"]):
            why = "not applicable" if summary.loc[variant, "not_applicable"] else "no result"
            ax.text(0.01, row[variant], why, va="center", fontsize=7, color="gray")
        ax.set_yticks(range(len(row)), [shown[v] for v in row])
        ax.set_ylim(len(row) - 0.5, -0.5)  # the first variant on top
        ax.set_xlim(0, 1.02)  # a t interval of few seeds can reach past [0, 1]
        ax.set_xlabel("balanced accuracy")
        ax.set_title(metric_name(metric))
    return _finish(fig, axes, _subtitle(report, est), "bars", out)


def patch_length(report: Report, out: Path) -> list[Path]:
    """Metric against EMG patch length over the patch-length variants and CPEP itself."""
    est = _estimates(report)
    df = sweep_rows(est, PATCH_GROUP)
    if (est["group"] != PATCH_GROUP).all() or df["patch"].nunique() < 2:
        return []
    patches = sorted(df["patch"].unique())
    default = df.loc[df["variant"] == REFERENCE_VARIANT, "patch"]
    metrics = [m for m in report.metrics if m in set(df["metric"])]
    fig, axes = _panels(len(metrics), min(4, len(metrics)), 3.0, 1.0)
    for metric, ax in zip(metrics, axes):
        _lines(ax, df[df["metric"] == metric], "patch")
        _chance(ax, report, metric)
        ax.set_xscale("log", base=2)
        ax.set_xticks(patches, [str(p) for p in patches])
        ax.minorticks_off()
        ax.set_ylim(0, 1.02)  # a t interval of few seeds can reach past [0, 1]
        if len(default):
            ax.axvline(default.iloc[0], color="gray", linestyle=":", linewidth=1)
        ax.set_title(metric_name(metric))
        ax.set_xlabel("EMG patch (samples)")
    axes[0].set_ylabel("balanced accuracy")
    return _finish(fig, axes, "EMG patch length (the paper: longer patches are worse; dotted: CPEP's patch; "
                   f"dashed: chance)\n{_subtitle(report, df)}", "patch_length", out)


def training_curves(report: Report, out: Path) -> list[Path]:
    """Loss per epoch of each training stage kind, and the learned temperature of the alignment."""
    curves = report.curves
    if curves.empty:
        return []
    kinds = [k for k in STAGE_ORDER if k in set(curves["kind"])] + sorted(set(curves["kind"]) - set(STAGE_ORDER))
    panels = [(k, "loss") for k in kinds]
    if curves.loc[curves["kind"] == "align", "temperature"].notna().any():
        panels.append(("align", "temperature"))
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
    for ax, (kind, y) in zip(axes.flat, panels):
        sub = curves[(curves["kind"] == kind) & curves[y].notna()]
        sns.lineplot(sub, x="epoch", y=y, hue="used_by", hue_order=list(dict.fromkeys(sub["used_by"])),
                     errorbar=("pi", 100), ax=ax)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"{kind} {y}")
        legend = ax.get_legend()
        if legend is not None:
            legend.set_title("stage of")
            for text in legend.get_texts():
                text.set_fontsize(7)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(f"training curves of {report.suite} on {report.dataset}: mean over seeds, band from the lowest to "
                 f"the highest seed", fontsize=8)
    fig.tight_layout()
    return save(fig, out, "training_curves")


def _sweep(report: Report, df: pd.DataFrame, x: str, xlabel: str, title: str, stem: str, out: Path, ticks,
           log: bool = False) -> list[Path]:
    """Metric against a swept setting `x`, one line per method, with the tables' intervals; chance dashed."""
    metrics = [m for m in report.metrics if m in set(df["metric"])]
    fig, axes = _panels(len(metrics), min(4, len(metrics)), 3.0, 1.0)
    for metric, ax in zip(metrics, axes):
        _lines(ax, df[df["metric"] == metric], x, hue="method")
        _chance(ax, report, metric)
        if log:
            ax.set_xscale("log")
        ax.set_xticks(*ticks)
        ax.minorticks_off()
        ax.set_ylim(0, 1.02)
        ax.set_title(metric_name(metric))
        ax.set_xlabel(xlabel)
    axes[0].set_ylabel("balanced accuracy")
    return _finish(fig, axes, f"{title}; dashed: chance\n{_subtitle(report, df)}", stem, out)


def data_fraction(report: Report, out: Path) -> list[Path]:
    """Metric against the fraction of the pre-training windows the alignment read: CPEP and the variants of the
    data-fraction group, as the data-efficiency claim ranks them."""
    est = _estimates(report)
    df = sweep_rows(est, FRACTION_GROUP)
    if (est["group"] != FRACTION_GROUP).all() or df["fraction"].nunique() < 2:
        return []
    fractions = sorted(df["fraction"].unique())
    return _sweep(report, df.assign(fraction=df["fraction"] * 100, method="CPEP"), "fraction",
                  "alignment windows (%)", "data efficiency: the alignment on a fraction of the paired windows",
                  "data_fraction", out, ([f * 100 for f in fractions], [f"{f * 100:g}" for f in fractions]), log=True)


def user_variability(report: Report, out: Path) -> list[Path]:
    """Metric against the synthetic users' variability level (USER_KNOBS), for suites that vary it."""
    df = _estimates(report)
    df = df[df["users"].notna()]
    levels = sorted(set(df["users"]))
    if len(levels) < 2:
        return []
    names = "; ".join(f"{i + 1}: " + ", ".join(f"{k} {v:g}" for k, v in zip(USER_KNOBS, level))
                      for i, level in enumerate(levels))
    ticks = list(range(1, len(levels) + 1))
    return _sweep(report, df.assign(level=df["users"].map(levels.index) + 1), "level", "users' variability level",
                  f"cross-user: metric against how much users differ (data.synth {names})", "user_variability",
                  out, (ticks, [str(t) for t in ticks]))


def profiles(report: Report, out: Path) -> list[Path]:
    """Performance profiles (rliable's): per metric and variant, the fraction of held-out users scoring above each
    threshold, averaged over seeds, with the report's interval as a band; chance dashed."""
    df = report.profiles
    if df.empty:
        return []
    metrics = [m for m in report.metrics if m in set(df["metric"])]
    fig, axes = _panels(len(metrics), min(2, len(metrics)), 3.0, 1.4)
    for metric, ax in zip(metrics, axes):
        sub = df[df["metric"] == metric]
        for variant in [v for v in report.variants if v in set(sub["variant"])]:
            g = sub[sub["variant"] == variant].sort_values("threshold")
            (line,) = ax.plot(g["threshold"], g["fraction"], linewidth=1,
                              label=marked(report.labels[variant], variant in report.stale))
            ax.fill_between(g["threshold"], g["low"], g["high"], color=line.get_color(), alpha=0.15, linewidth=0)
        _chance(ax, report, metric, vertical=True)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_title(metric_name(metric))
        ax.set_xlabel("balanced accuracy threshold")
    axes[0].set_ylabel("fraction of users above")
    how = scores.describe(report.summary, report.method, report.level)
    return _finish(fig, axes, f"performance profiles: the fraction of each seed's held-out users scoring above a "
                   f"threshold, averaged over seeds; band: {how}; dashed: chance\n{report.suite} on {report.dataset}",
                   "profiles", out)


FEW_SHOT = re.compile(r"lp_k(\d+)_(id|unseen)$")  # bench/metrics/few_shot.py's record keys
CLASSES = {"id": "in-distribution", "unseen": "unseen"}


def few_shot(report: Report, out: Path) -> list[Path]:
    """The few-shot probes' balanced accuracy against k labelled windows per class, one line per variant and a
    panel per class set, with the tables' intervals; chance dashed."""
    df = _estimates(report)
    parts = df["metric"].str.extract(FEW_SHOT)
    df = df.assign(k=parts[0].astype(float), classes=parts[1],
                   label=[marked(report.labels[v], v in report.stale) for v in df["variant"]])[parts[0].notna()]
    if df.empty:
        return []
    sets = [c for c in CLASSES if c in set(df["classes"])]
    ks = sorted(df["k"].unique())
    fig, axes = _panels(len(sets), len(sets), 3.0, 1.2)
    for classes, ax in zip(sets, axes):
        sub = df[df["classes"] == classes]
        _lines(ax, sub, "k", hue="label")
        _chance(ax, report, sub["metric"].iloc[0])
        ax.set_xscale("log")
        ax.set_xticks(ks, [f"{k:g}" for k in ks])
        ax.minorticks_off()
        ax.set_ylim(0, 1.02)
        ax.set_title(CLASSES[classes])
        ax.set_xlabel("labelled windows per class (k)")
    axes[0].set_ylabel("balanced accuracy")
    return _finish(fig, axes, f"few-shot linear probes; dashed: chance\n{_subtitle(report, df)}", "few_shot", out)


def write_all(report: Report, out: Path) -> list[Path]:
    with sns.axes_style("whitegrid"), sns.plotting_context("paper"):
        return (bars(report, out) + patch_length(report, out) + training_curves(report, out) + few_shot(report, out)
                + data_fraction(report, out) + user_variability(report, out) + profiles(report, out))
