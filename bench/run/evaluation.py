"""The evaluation stage: a trained method's embeddings of each class set, scored by the metric plug-ins.

Each (embedding function, selection) pair is computed once and shared by the metrics that read it. Embeddings or
scores that are not finite fail the stage: a number computed from NaN is never recorded.

Breakdowns: a metric that decides per test window (Metric.predict: the linear probe and zero-shot) is also scored
on each held-out user's windows alone, `by_user[KEY_kind][user]`, and, where the test windows of a class set carry
more than one value of metadata.csv's `generalization`, on each value's windows, `by_generalization[KEY_kind]`.
The overall score is the balanced accuracy over all test windows, as before; a user's score is the balanced
accuracy over the classes that user's windows hold. Metrics that only return a score (`compute`, e.g. the
few-shot probes, a mean over draws) have no breakdown.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from bench import plugins
from cpep.probes import balanced_accuracy, embed

CLASS_SETS = ("id", "unseen")
BREAKDOWNS = {"user": "by_user", "generalization": "by_generalization"}  # metadata column -> record field


def evaluate(cfg: dict, data, device, method: plugins.Method, models: dict[str, dict],
             seed: int = 0) -> tuple[dict, dict, dict]:
    """(metrics {KEY_id: value, ...}, not applicable {KEY_id: reason}, breakdowns {"by_user": {KEY_id: {user:
    value}}, "by_generalization": {...}}); a metric the method cannot feed is None. `seed` (the run's order seed,
    config.seeds) goes to the metrics that sample (Metric.seeded)."""
    emb = method.embeddings(cfg, data, models)
    emb.model.to(device).eval()
    in_mem, workers = cfg["data"]["in_memory_gb"] * 1e9, cfg["train"]["workers"]
    metrics = [plugins.get("metric", name) for name in cfg["eval"]["metrics"]]
    values, not_applicable = {}, {}
    breakdowns: dict[str, dict] = {field: {} for field in BREAKDOWNS.values()}
    done = {}

    def embedded(field: str, selection: str):
        """The embedding of a selection's windows by the function in `emb.<field>`, computed once per stage: fields
        that hold the same function share it."""
        fn = getattr(emb, field)
        if (fn, selection) not in done:
            x, labels = embed(fn, data.selection(selection), device, in_memory_bytes=in_mem, workers=workers)
            bad = int((~x.isfinite()).sum())
            if bad:
                raise ValueError(f"{field} embeddings of {selection} are not finite ({bad} of {x.numel()} values)")
            done[fn, selection] = x, labels
        return done[fn, selection]

    for kind in CLASS_SETS:
        done.clear()  # a selection belongs to one class set: keep only that set's embeddings in memory
        n = len(data.vocab.classes(kind))
        groups = None
        for metric in metrics:
            names = [f"{key}_{kind}" for key in metric.keys]
            if metric.needs == "zs" and emb.zs_query is None:
                values.update(dict.fromkeys(names))
                not_applicable.update(dict.fromkeys(names, method.why_no_zero_shot(cfg) or "no zero-shot embedding"))
                continue
            train_field, test_field = ("lp", "lp") if metric.needs == "lp" else ("zs_reference", "zs_query")
            train, test = embedded(train_field, f"{kind}_train"), embedded(test_field, f"{kind}_test")
            extra = {"seed": seed} if metric.seeded else {}
            if metric.per_window:
                decisions = metric.predict(train, test, n, cfg, device, **extra)
                _check_keys(metric, decisions)
                scores = {key: balanced_accuracy(pred.cpu(), test[1], n) for key, pred in decisions.items()}
                if groups is None:
                    groups = _groups(data, f"{kind}_test", len(test[1]))
                for key, pred in decisions.items():
                    for column, by_value in groups.items():
                        breakdowns[BREAKDOWNS[column]][f"{key}_{kind}"] = _scores_by(pred.cpu(), test[1], n, by_value)
            else:
                scores = metric.compute(train, test, n, cfg, device, **extra)
                _check_keys(metric, scores)
            for key, value in scores.items():
                value = float(value)
                if not math.isfinite(value):
                    raise ValueError(f"metric {metric.name} gave {key}_{kind} = {value}")
                values[f"{key}_{kind}"] = value
    return values, not_applicable, {field: found for field, found in breakdowns.items() if found}


def _check_keys(metric: plugins.Metric, scores: dict) -> None:
    if set(scores) != set(metric.keys):
        raise ValueError(f"metric {metric.name} returned {sorted(scores)}, declared {list(metric.keys)}")


def _groups(data, selection: str, windows: int) -> dict[str, np.ndarray]:
    """Per window of the selection, the value of each breakdown column; `generalization` only where the windows
    hold more than one value of it. Empty for a dataset that does not say (no `window_groups`)."""
    if not hasattr(data, "window_groups"):
        return {}
    found = data.window_groups(selection)
    if any(len(v) != windows for v in found.values()):
        raise ValueError(f"{selection}: {windows} windows embedded, but their groups count "
                         f"{', '.join(f'{c} {len(v)}' for c, v in found.items())}")
    return {c: v for c, v in found.items() if c in BREAKDOWNS and (c == "user" or len(set(v)) > 1)}


def _scores_by(pred, labels, num_classes: int, by_value: np.ndarray) -> dict[str, float]:
    """Balanced accuracy of the windows of each value (in sorted order)."""
    out = {}
    for value in sorted(set(by_value)):
        mask = torch.from_numpy(by_value == value)
        out[value] = balanced_accuracy(pred[mask], labels[mask], num_classes)
    return out
