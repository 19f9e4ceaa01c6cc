"""The evaluation stage: a trained method's embeddings of each class set, scored by the metric plug-ins.

Each (embedding function, selection) pair is computed once and shared by the metrics that read it. Embeddings or
scores that are not finite fail the stage: a number computed from NaN is never recorded.
"""

from __future__ import annotations

import math

from bench import plugins
from cpep.evaluate import embed

CLASS_SETS = ("id", "unseen")


def evaluate(cfg: dict, data, device, method: plugins.Method, models: dict[str, dict],
             seed: int = 0) -> tuple[dict, dict]:
    """(metrics {KEY_id: value, ...}, not applicable {KEY_id: reason}); a metric the method cannot feed is None.
    `seed` (the run's order seed, config.seeds) goes to the metrics that sample (Metric.seeded)."""
    emb = method.embeddings(cfg, data, models)
    emb.model.to(device).eval()
    in_mem, workers = cfg["data"]["in_memory_gb"] * 1e9, cfg["train"]["workers"]
    metrics = [plugins.get("metric", name) for name in cfg["eval"]["metrics"]]
    values, not_applicable = {}, {}
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
        for metric in metrics:
            names = [f"{key}_{kind}" for key in metric.keys]
            if metric.needs == "zs" and emb.zs_query is None:
                values.update(dict.fromkeys(names))
                not_applicable.update(dict.fromkeys(names, method.no_zero_shot or "no zero-shot embedding"))
                continue
            train_field, test_field = ("lp", "lp") if metric.needs == "lp" else ("zs_reference", "zs_query")
            train, test = embedded(train_field, f"{kind}_train"), embedded(test_field, f"{kind}_test")
            scores = metric.compute(train, test, n, cfg, device, **({"seed": seed} if metric.seeded else {}))
            if set(scores) != set(metric.keys):
                raise ValueError(f"metric {metric.name} returned {sorted(scores)}, declared {list(metric.keys)}")
            for key, value in scores.items():
                value = float(value)
                if not math.isfinite(value):
                    raise ValueError(f"metric {metric.name} gave {key}_{kind} = {value}")
                values[f"{key}_{kind}"] = value
    return values, not_applicable
