"""Which records may share a table: one data identity, the current code, and a stated environment.

Two records are comparable when they have the same suite, variant, data identity (dataset, the root's content,
reader protocol, windows, vocabulary) and code fingerprint, and an environment that does not change results, or one
the table states. A report holds one data identity (others are named, never pooled); a record whose code is not
the current code's is left out and listed (or, with --reuse-stale, counted and marked); seeds that ran in different
environments (threads, device, precision, CPU kernels, torch) are named under the table.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from cpep.errors import UserError

UNKNOWN = "unknown"  # records written before data identities were recorded


def data_key(record: dict) -> str:
    return record.get("data_key") or UNKNOWN


def describe(key: str, records: list[dict]) -> str:
    """One identity in a few words: its dataset, key, where it was read from and how many runs it has."""
    roots = sorted({r.get("data_root") or "" for r in records})
    where = ", ".join(root or "generated" for root in roots)
    return f"{records[0]['dataset']}-{key} ({where}; {len(records)} runs)"


def pick_identity(records: list[dict], suite: str, data: str | None = None, data_root: Path | None = None,
                  data_id: str | None = None) -> list[dict]:
    """The records of one data identity: the one the options select (dataset name, data root, or identity key
    prefix), or the only one there is; a UserError listing them when several remain."""
    chosen = records
    if data is not None:
        chosen = [r for r in chosen if r["dataset"] == data]
    if data_root is not None:
        root = str(Path(data_root).expanduser().resolve())
        chosen = [r for r in chosen if (r.get("data_root") or "") == root]
    if data_id is not None:
        chosen = [r for r in chosen if data_key(r).startswith(data_id) or r["dataset"] + "-" + data_key(r) == data_id]
    groups: dict[str, list[dict]] = {}
    for r in chosen:
        groups.setdefault(data_key(r), []).append(r)
    everything = {}
    for r in records:
        everything.setdefault(data_key(r), []).append(r)
    listed = "; ".join(describe(k, rs) for k, rs in everything.items())
    if not groups:
        raise UserError(f"suite {suite!r} has no records on the data asked for (it has: {listed})")
    if len(groups) > 1:
        raise UserError(f"suite {suite!r} has records on {len(groups)} data identities, which a table never pools: "
                        f"{'; '.join(describe(k, rs) for k, rs in groups.items())}; choose one with --data-id "
                        f"(or --data-root)")
    return next(iter(groups.values()))


def code_changed(record: dict) -> str:
    """Why the record's result is not the current code's; "" when it is. The current fingerprint of each of its
    stages is computed here, from its method and configuration, as planning computes it."""
    if record.get("stale") or any(s.get("stale") for s in record.get("stages") or []):
        return "it reused stages of older code (--reuse-stale)"
    from bench.run.planner import run_code
    try:
        current = run_code(record["method"], record["config"])
    except (UserError, KeyError) as e:
        return f"its method cannot be planned by the code here ({type(e).__name__}: {e})"
    if current != record.get("code"):
        return f"computed by older code (fingerprint {str(record.get('code'))[:8]}, now {current[:8]})"
    return ""


def environments(records: list[dict]) -> Counter:
    """How many runs ran in each environment (bench.run.provenance.signature of their training stages, or of
    their evaluation where they train nothing)."""
    from bench.run.provenance import signature
    found = Counter()
    for r in records:
        stages = [s for s in r.get("stages") or [] if s.get("history")] or (r.get("stages") or [])
        found[" | ".join(sorted({signature(s.get("environment")) for s in stages})) or "unknown"] += 1
    return found


def environment_note(records: list[dict]) -> str:
    """A note when the table's runs ran in more than one environment, naming each and its runs."""
    found = environments([r for r in records if r["status"] == "done"])
    if len(found) < 2:
        return ""
    parts = "; ".join(f"{env} ({n} run{'s' * (n > 1)})" for env, n in found.most_common())
    return (f"the runs of this table ran in {len(found)} environments, which round differently (see `cpep-bench "
            f"spread` for how far that moves a number): {parts}")
