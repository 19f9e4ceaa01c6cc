"""The report's figures (seaborn, PNG and SVG): bars with CIs, the patch-length curve, training curves, and for
suites that have them, few-shot curves and metric against the data fraction and against the users' variability."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import seaborn as sns  # noqa: E402

from bench import stats  # noqa: E402
from bench.results import PATCH_GROUP, REFERENCE_VARIANT, STALE, USER_KNOBS, Report, metric_name  # noqa: E402
from cpep.files import replace_atomically  # noqa: E402

FORMATS = ("png", "svg")
STAGE_ORDER = ("pose_mae", "emg_mae", "align", "poset", "emg2pose")


def save(fig, out: Path, stem: str) -> list[Path]:
    paths = []
    for fmt in FORMATS:
        replace_atomically(out / f"{stem}.{fmt}",
                           lambda tmp: fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight"))
        paths.append(out / f"{stem}.{fmt}")
    plt.close(fig)
    return paths


def _subtitle(report: Report) -> str:
    note = " (synthetic data: levels not comparable with the paper, only the ordering)" if report.synthetic else ""
    stale = f"; {STALE}: stale, computed by older code" if report.stale else ""
    return f"{report.suite} on {report.dataset}{note}; {stats.describe(report.method, report.level)}{stale}"


def bars(report: Report, out: Path) -> list[Path]:
    """Per metric: our mean with its CI per variant, the paper's number as a marker (hollow: read off a figure)."""
    shown = {v: label + STALE if v in report.stale else label for v, label in report.labels.items()}
    df = report.values.assign(label=report.values["variant"].map(shown),
                              metric=report.values["metric"].map(metric_name))
    if df.empty:
        return []
    order = [shown[v] for v in report.variants]
    metrics = [metric_name(m) for m in report.metrics]
    grid = sns.catplot(df, kind="bar", x="value", y="label", col="metric", col_order=metrics, order=order,
                       col_wrap=min(2, len(metrics)), errorbar=stats.errorbar(report.method, report.level),
                       capsize=0.3, height=0.32 * len(order) + 1.5, aspect=1.6, color="tab:blue")
    paper = report.summary[report.summary["paper"].notna()]
    for metric, ax in zip(report.metrics, grid.axes.flat):
        sub = paper[paper["metric"] == metric]
        for approximate, face in ((False, "black"), (True, "none")):
            part = sub[sub["paper_approximate"] == approximate]
            ax.scatter(part["paper"], [order.index(shown[v]) for v in part["variant"]], marker="D",
                       facecolors=face, edgecolors="black", zorder=5,
                       label="paper (hollow: read off a figure)" if not approximate else None)
        if metric in report.chance:
            ax.axvline(report.chance[metric], color="gray", linestyle="--", linewidth=1, zorder=4, label="chance")
        missing = report.summary[(report.summary["metric"] == metric) & (report.summary["not_applicable"] != "")]
        for variant in missing["variant"]:
            ax.text(0.01, order.index(shown[variant]), "not applicable", va="center", fontsize=7,
                    color="gray")
        ax.set_xlim(0, 1.02)  # a t interval of few seeds can reach past [0, 1]
    grid.set_axis_labels("balanced accuracy", "")
    grid.set_titles("{col_name}")
    handles, labels = grid.axes.flat[0].get_legend_handles_labels()
    if handles:
        grid.figure.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(handles),
                           frameon=False)
    grid.figure.suptitle(_subtitle(report), fontsize=8, y=1.02)
    return save(grid.figure, out, "bars")


def patch_length(report: Report, out: Path) -> list[Path]:
    """Metric against EMG patch length over the patch-length variants and CPEP itself."""
    values = report.values
    df = values[(values["group"] == PATCH_GROUP) | (values["variant"] == REFERENCE_VARIANT)]
    if (values["group"] != PATCH_GROUP).all() or df["patch"].nunique() < 2:
        return []
    df = df.assign(metric=df["metric"].map(metric_name))
    metrics = [metric_name(m) for m in report.metrics]
    grid = sns.relplot(df, kind="line", x="patch", y="value", col="metric", col_order=metrics,
                       col_wrap=min(4, len(metrics)), errorbar=stats.errorbar(report.method, report.level),
                       err_style="bars", err_kws={"capsize": 3}, marker="o", height=3, aspect=1.0)
    patches = sorted(df["patch"].unique())
    default = df.loc[df["variant"] == REFERENCE_VARIANT, "patch"]
    for metric, ax in zip(report.metrics, grid.axes.flat):
        if metric in report.chance:
            ax.axhline(report.chance[metric], color="gray", linestyle="--", linewidth=1)
        ax.set_xscale("log", base=2)
        ax.set_xticks(patches, [str(p) for p in patches])
        ax.minorticks_off()
        ax.set_ylim(0, 1.02)  # a t interval of few seeds can reach past [0, 1]
        if len(default):
            ax.axvline(default.iloc[0], color="gray", linestyle=":", linewidth=1)
    grid.set_titles("{col_name}")
    grid.set_axis_labels("EMG patch (samples)", "balanced accuracy")
    grid.figure.suptitle(f"EMG patch length (the paper: longer patches are worse; dotted: CPEP's patch; dashed: "
                         f"chance)\n"
                         f"{_subtitle(report)}", fontsize=8, y=1.08)
    return save(grid.figure, out, "patch_length")


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


def _sweep(report: Report, df, x: str, xlabel: str, title: str, stem: str, out: Path, ticks, log=False) -> list[Path]:
    """Metric against a swept setting `x`, one line per method, with intervals over seeds; chance dashed."""
    df = df.assign(metric=df["metric"].map(metric_name))
    metrics = [metric_name(m) for m in report.metrics]
    grid = sns.relplot(df, kind="line", x=x, y="value", hue="method", col="metric", col_order=metrics,
                       col_wrap=min(4, len(metrics)), errorbar=stats.errorbar(report.method, report.level),
                       err_style="bars", err_kws={"capsize": 3}, marker="o", height=3, aspect=1.0)
    for metric, ax in zip(report.metrics, grid.axes.flat):
        if metric in report.chance:
            ax.axhline(report.chance[metric], color="gray", linestyle="--", linewidth=1)
        if log:
            ax.set_xscale("log")
        ax.set_xticks(*ticks)
        ax.minorticks_off()
        ax.set_ylim(0, 1.02)
    grid.set_titles("{col_name}")
    grid.set_axis_labels(xlabel, "balanced accuracy")
    grid.figure.suptitle(f"{title}; dashed: chance\n{_subtitle(report)}", fontsize=8, y=1.08)
    return save(grid.figure, out, stem)


def data_fraction(report: Report, out: Path) -> list[Path]:
    """Metric against the fraction of the pre-training windows the alignment read, for suites that vary it."""
    df = report.values
    varied = df.groupby("method")["fraction"].nunique()
    df = df[df["method"].isin(varied[varied > 1].index)]  # methods whose runs vary it
    if df.empty:
        return []
    fractions = sorted(df["fraction"].unique())
    return _sweep(report, df.assign(fraction=df["fraction"] * 100), "fraction", "alignment windows (%)",
                  "data efficiency: the alignment on a fraction of the paired windows", "data_fraction", out,
                  ([f * 100 for f in fractions], [f"{f * 100:g}" for f in fractions]), log=True)


def user_variability(report: Report, out: Path) -> list[Path]:
    """Metric against the synthetic users' variability level (USER_KNOBS), for suites that vary it."""
    df = report.values[report.values["users"].notna()]
    levels = sorted(set(df["users"]))
    if len(levels) < 2:
        return []
    names = "; ".join(f"{i + 1}: " + ", ".join(f"{k} {v:g}" for k, v in zip(USER_KNOBS, level))
                      for i, level in enumerate(levels))
    ticks = list(range(1, len(levels) + 1))
    return _sweep(report, df.assign(level=df["users"].map(levels.index) + 1), "level", "users' variability level",
                  f"cross-user: metric against how much users differ (data.synth {names})", "user_variability",
                  out, (ticks, [str(t) for t in ticks]))


FEW_SHOT = re.compile(r"lp_k(\d+)_(id|unseen)$")  # bench/metrics/few_shot.py's record keys


def few_shot(report: Report, out: Path) -> list[Path]:
    """The few-shot probes' balanced accuracy against k labelled windows per class, one line per variant and a
    panel per class set, with intervals over seeds; chance dashed."""
    parts = report.values["metric"].str.extract(FEW_SHOT)
    df = report.values.assign(k=parts[0].astype(float), classes=parts[1].map({"id": "in-distribution",
                                                                              "unseen": "unseen"}))
    df = df[df["k"].notna()]
    if df.empty:
        return []
    df = df.assign(label=df["variant"].map(report.labels))
    grid = sns.relplot(df, kind="line", x="k", y="value", hue="label", col="classes",
                       col_order=[c for c in ("in-distribution", "unseen") if c in set(df["classes"])],
                       errorbar=stats.errorbar(report.method, report.level), err_style="bars",
                       err_kws={"capsize": 3}, marker="o", height=3, aspect=1.2)
    ks = sorted(df["k"].unique())
    for classes, ax in grid.axes_dict.items():
        chance = report.chance.get(df.loc[df["classes"] == classes, "metric"].iloc[0])
        if chance is not None:
            ax.axhline(chance, color="gray", linestyle="--", linewidth=1)
        ax.set_xscale("log")
        ax.set_xticks(ks, [f"{k:g}" for k in ks])
        ax.minorticks_off()
        ax.set_ylim(0, 1.02)
    grid.set_titles("{col_name}")
    grid.set_axis_labels("labelled windows per class (k)", "balanced accuracy")
    if grid.legend is not None:
        grid.legend.set_title("")
    grid.figure.suptitle(f"few-shot linear probes; dashed: chance\n{_subtitle(report)}", fontsize=8, y=1.08)
    return save(grid.figure, out, "few_shot")


def write_all(report: Report, out: Path) -> list[Path]:
    with sns.axes_style("whitegrid"), sns.plotting_context("paper"):
        return (bars(report, out) + patch_length(report, out) + training_curves(report, out) + few_shot(report, out)
                + data_fraction(report, out) + user_variability(report, out))
