"""The two no-learning reference points of a synthetic dataset, on the linear probe's own selections.

    python -m bench.check.calibrate [--set data.synth.KEY=VALUE ...] [--runs-dir DIR]

Floor and ceiling: the suites' `emg_log_power` and `pose_features` rows (per-channel EMG log-power, the pose
summary; bench/methods), each into the linear probe. Each on the in-distribution and the unseen classes, and each
again on two disjoint halves of the test users (the same trained probe), whose difference says how much the choice
of test users moves a number. The default data is tuned on these two points only, never on a learned method.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from bench import plugins
from bench.run.store import Store
from cpep.errors import UserError

# (reference, class set): (low, high); None: unbounded. The ceiling's targets are the paper's pose upper bound
# (Pose-MAE, 0.85 / 0.65 within 0.05); the pose summary here is its no-learning stand-in, and the smoke suite's
# Pose-MAE row is the learned one.
TARGETS = {
    ("ceiling", "id"): (0.80, 0.90), ("ceiling", "unseen"): (0.60, 0.70),
    ("floor", "id"): (None, 0.65), ("floor", "unseen"): (None, 0.31),
}
MIN_GAP, MAX_SPREAD = 0.2, 0.03
METHODS = {"floor": "emg_log_power", "ceiling": "pose_features"}  # the suites' floor and ceiling rows

app = typer.Typer(add_completion=False)


def features(cfg: dict, data, selection: str, reference: str):
    """(features, labels, user of each window) of a selection, as the reference's method plug-in embeds them."""
    import numpy as np
    import torch

    from cpep.probes import embed
    windows = data.selection(selection)
    lp = plugins.get("method", METHODS[reference]).embeddings(cfg, data, {}).lp
    x, y = embed(lp, windows, torch.device("cpu"))
    user_of = dict(zip(data.meta["path"], data.meta["user"]))
    users = np.array([user_of[windows.paths[r]] for r in windows.recording])
    return x, y, users


def reference_points(cfg: dict, data) -> dict:
    """{(reference, class set): {"all": score, "halves": (a, b)}}."""
    import numpy as np
    import torch

    from cpep.probes import linear_probe
    weight_decay, max_iter = cfg["linear_probe"]["weight_decay"], cfg["linear_probe"]["max_iter"]
    out = {}
    for reference in METHODS:
        for kind in ("id", "unseen"):
            n = len(data.vocab.classes(kind))
            train_x, train_y, _ = features(cfg, data, f"{kind}_train", reference)
            test_x, test_y, users = features(cfg, data, f"{kind}_test", reference)
            order = sorted(set(users))
            half = torch.from_numpy(np.isin(users, order[::2]))

            def score(mask):
                return linear_probe(train_x, train_y, test_x[mask], test_y[mask], n, weight_decay, max_iter)
            out[reference, kind] = {"all": score(torch.ones_like(half)), "halves": (score(half), score(~half))}
    return out


def verdicts(points: dict) -> list[str]:
    """One line per target: met, or by how much it is missed."""
    lines = []
    for (reference, kind), (low, high) in TARGETS.items():
        v = points[reference, kind]["all"]
        miss = max((low - v) if low is not None else 0.0, (v - high) if high is not None else 0.0, 0.0)
        lines.append(f"{reference} {kind} {v:.3f} in [{low or '-'}, {high}]: " + ("met" if not miss else
                                                                                  f"missed by {miss:.3f}"))
    for kind in ("id", "unseen"):
        gap = points["ceiling", kind]["all"] - points["floor", kind]["all"]
        lines.append(f"ceiling - floor {kind} {gap:.3f} >= {MIN_GAP}: " + ("met" if gap >= MIN_GAP else
                                                                            f"missed by {MIN_GAP - gap:.3f}"))
    for key, p in points.items():
        spread = abs(p["halves"][0] - p["halves"][1])
        lines.append(f"{key[0]} {key[1]} halves spread {spread:.3f} < {MAX_SPREAD}: " +
                     ("met" if spread < MAX_SPREAD else f"missed by {spread - MAX_SPREAD:.3f}"))
    return lines


@app.command()
def main(
    set_: Optional[list[str]] = typer.Option(None, "--set", help="Configuration key=value (repeatable), e.g. "
                                                                  "data.synth.users=20."),
    runs_dir: Path = typer.Option(Path("cpep-runs/calibration"), help="Where the generated data and its window "
                                                                       "cache are kept (reused on the next call)."),
) -> None:
    """Print the floor (EMG log-power + linear probe) and the ceiling (pose summary + linear probe) of the
    synthetic data, in-distribution and unseen, with their spread between two halves of the test users."""
    from cpep import config
    try:
        cfg = plugins.resolve(dict(config.parse_assignment(s) for s in set_ or []))
        dataset = plugins.get("dataset", cfg["data"]["name"])
        store = Store(runs_dir)
        started = time.perf_counter()
        root = dataset.root(cfg, store)
        generated = time.perf_counter() - started
        points = reference_points(cfg, dataset.open(cfg, store))
    except UserError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2)
    typer.echo(f"data: {root} (ready in {generated:.0f} s)")
    typer.echo(f"{'reference':<10}{'LP id':>8}{'LP unseen':>11}{'id halves':>16}{'unseen halves':>16}")
    for reference in METHODS:
        i, u = points[reference, "id"], points[reference, "unseen"]
        typer.echo(f"{reference:<10}{i['all']:>8.3f}{u['all']:>11.3f}"
                   f"{i['halves'][0]:>8.3f}/{i['halves'][1]:.3f}{u['halves'][0]:>8.3f}/{u['halves'][1]:.3f}")
    typer.echo("\n".join(verdicts(points)))


if __name__ == "__main__":
    app()
