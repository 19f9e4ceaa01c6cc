"""The runs directory: stage outputs (keyed by hash), run records, the synthetic data cache.

    <runs>/stages/<kind>-<key>/     model.pt, meta.json; checkpoint.pt and progress.json while training;
                                    failed.json and error.log (the traceback) after a failure
    <runs>/runs/<suite>/<dataset>-<data key>/<variant>/seed-<n>.json
                                    one record per run, filed under its data identity (bench.run.planner.Run):
                                    the records of two data roots, or of two contents of one, never meet
    <runs>/data/synthetic-<hash>/   generated once, reused by every run with the same synth settings
    <runs>/cache/                   window indices and normalisation statistics of each dataset
    <runs>/records.parquet          every record as one table (bench.run.records_table)
    <runs>/run.lock                 while a `cpep-bench run` works here: who holds it (see Store.lock)

Every file is written to a temporary name and renamed into place, so a reader never sees half a file and a
killed process never leaves a corrupt one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from bench.run.provenance import now
from cpep.errors import UserError
from cpep.files import replace_atomically, write_text_atomically

if TYPE_CHECKING:
    from bench.run.planner import Run, Stage

RECORD_SCHEMA = 1

# Descriptors of run.lock this process holds. A forked child (a data writer, a loader process) shares the lock
# with its parent, and would keep the runs directory locked after a killed parent: children close them.
_held_locks: set[int] = set()


def _close_held_locks() -> None:
    for fd in _held_locks:
        with contextlib.suppress(OSError):
            os.close(fd)
    _held_locks.clear()


os.register_at_fork(after_in_child=_close_held_locks)


def atomic_write_json(path: Path, obj) -> None:
    write_text_atomically(path, json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n")


def read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


class Store:
    def __init__(self, root: Path):
        self.root = Path(root).expanduser().resolve()

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    @contextlib.contextmanager
    def lock(self, command: str):
        """Hold <results>/run.lock, an exclusive flock, or raise UserError naming its holder.

        The kernel releases the lock when the process ends, however it ends, so a killed holder leaves no stale
        lock. The file is removed on release, and so is the runs directory when this created it and nothing
        else was written: a refused run leaves nothing behind.
        """
        path = self.root / "run.lock"
        made_root = not self.root.exists()
        fd = self._acquire(path)
        _held_locks.add(fd)
        try:
            holder = {"host": socket.gethostname(), "pid": os.getpid(), "command": command, "since": now()}
            os.ftruncate(fd, 0)
            os.write(fd, (json.dumps(holder) + "\n").encode())
            yield
        finally:
            path.unlink(missing_ok=True)  # while still locked, so no other process holds this file
            _held_locks.discard(fd)
            os.close(fd)
            if made_root:
                with contextlib.suppress(OSError):
                    self.root.rmdir()  # fails when the directory is not empty

    def lock_holder(self) -> dict | None:
        """Who holds run.lock, as it wrote there (host, pid, command, since); None when nobody wrote it. A killed
        holder's file may remain: check that its process lives."""
        return read_json(self.root / "run.lock")

    def check_writable(self) -> None:
        """UserError (one line) unless this process may write in the runs directory, or make it where it is
        missing; checked before any work, and nothing is made."""
        existing = self.root
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise UserError(f"runs directory {self.root} cannot be made: {existing} is not a directory")
        if not os.access(existing, os.W_OK | os.X_OK):
            why = ("on a read-only file system" if os.statvfs(existing).f_flag & os.ST_RDONLY
                   else f"no permission to write in {existing}")
            raise UserError(f"runs directory {self.root} is not writable ({why}); use another --runs-dir")

    def _acquire(self, path: Path) -> int:
        while True:
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            except FileNotFoundError:  # the directory was removed by a releasing holder: make it again
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                text = os.read(fd, 4096).decode(errors="replace")
                os.close(fd)
                raise UserError(self._in_use(text)) from None
            # The holder before us may have removed the file between our open and flock: lock the current one.
            with contextlib.suppress(FileNotFoundError):
                if os.path.samestat(os.fstat(fd), os.stat(path)):
                    return fd
            os.close(fd)

    def _in_use(self, text: str) -> str:
        try:
            h = json.loads(text)
            who = f"pid {h['pid']} on host {h['host']} since {h['since']} ({h['command']})"
        except (ValueError, KeyError, TypeError):
            who = "another cpep-bench run"
        return f"runs directory {self.root} is in use by {who}; wait for it or use another --runs-dir"

    # stages
    def stage_dir(self, stage: Stage) -> Path:
        return self.root / "stages" / stage.name

    def stage_meta(self, stage: Stage) -> dict | None:
        return read_json(self.stage_dir(stage) / "meta.json")

    def stage_done(self, stage: Stage) -> bool:
        return self.stage_meta(stage) is not None

    def stage_failure(self, stage: Stage) -> str | None:
        return self.failure(stage.kind, stage.key)

    def failure(self, kind: str, key: str) -> str | None:
        failed = read_json(self.root / "stages" / f"{kind}-{key}" / "failed.json")
        return failed["error"] if failed else None

    def error_log(self, stage: Stage) -> Path:
        return self.stage_dir(stage) / "error.log"

    def find_by_config_key(self, kind: str, config_key: str) -> str | None:
        """The key of the latest finished `kind` stage with this configuration key (made by any code)."""
        found = []
        for meta_file in (self.root / "stages").glob(f"{kind}-*/meta.json"):
            meta = read_json(meta_file)
            if meta and meta.get("config_key") == config_key:
                found.append((meta.get("finished", ""), meta["key"]))
        return max(found)[1] if found else None

    def checkpoint_path(self, stage: Stage) -> Path:
        path = self.stage_dir(stage) / "checkpoint.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def load_model(self, kind: str, key: str) -> dict:
        import torch
        return torch.load(self.root / "stages" / f"{kind}-{key}" / "model.pt", map_location="cpu", weights_only=True)

    def save_stage(self, stage: Stage, meta: dict, state: dict | None = None) -> None:
        """Model first, meta.json last: meta.json is what marks the stage finished."""
        import torch
        d = self.stage_dir(stage)
        d.mkdir(parents=True, exist_ok=True)
        if state is not None:
            replace_atomically(d / "model.pt", lambda tmp: torch.save(state, tmp))
        atomic_write_json(d / "meta.json", meta)
        self.clear_failure(stage)
        (d / "checkpoint.pt").unlink(missing_ok=True)
        (d / "progress.json").unlink(missing_ok=True)

    def mark_failed(self, stage: Stage, error: str, traceback: str | None = None) -> None:
        """A failure beside the stage: its one-line reason, and the full traceback in error.log."""
        if traceback is not None:
            write_text_atomically(self.error_log(stage), traceback)
        atomic_write_json(self.stage_dir(stage) / "failed.json",
                          {"error": error, "log": str(self.error_log(stage)) if traceback is not None else None})
        (self.stage_dir(stage) / "progress.json").unlink(missing_ok=True)

    def remove_temporaries(self, directory: Path) -> None:
        """Temporary files a killed writer left in `directory` (see cpep.files). Only for a directory that no other
        process writes now: a stage's, or a run record's, before its one worker writes there."""
        for tmp in directory.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)

    def clear_failure(self, stage: Stage) -> None:
        (self.stage_dir(stage) / "failed.json").unlink(missing_ok=True)
        self.error_log(stage).unlink(missing_ok=True)

    def clear_stage(self, stage: Stage) -> None:
        """Forget a stage's output and checkpoint so it is computed from scratch (--force)."""
        for name in ("meta.json", "checkpoint.pt", "progress.json"):
            (self.stage_dir(stage) / name).unlink(missing_ok=True)

    # run records
    def record_path(self, suite: str, data_dir: str, variant: str, seed: int) -> Path:
        return self.root / "runs" / suite / data_dir / variant / f"seed-{seed}.json"

    def run_record_path(self, run: Run) -> Path:
        return self.record_path(run.suite, run.data_dir, run.variant.name, run.seed)

    def record(self, run: Run) -> dict | None:
        return read_json(self.run_record_path(run))

    def run_done(self, run: Run) -> bool:
        rec = self.record(run)
        return (bool(rec) and rec.get("status") == "done" and rec.get("run_key") == run.key
                and rec.get("stale", False) == run.stale)

    def write_record(self, run: Run, record: dict) -> None:
        atomic_write_json(self.run_record_path(run), record)

    def records(self, suite: str | None = None) -> list[dict]:
        """Every record of a suite (of every suite when None), every data identity."""
        found = (read_json(p) for p in sorted((self.root / "runs").glob(f"{suite or '*'}/*/*/seed-*.json")))
        return [r for r in found if r is not None]

    # data
    def synthetic_root(self, synth: dict) -> Path:
        """The synthetic dataset for these settings, generated on first use."""
        from bench.run import fingerprint
        from cpep.synth.config import SynthConfig
        from cpep.synth.simulator import generate
        cfg = SynthConfig(**synth)
        cfg.check()
        root = self.root / "data" / f"synthetic-{cfg.key()}-{fingerprint.simulator()}"
        if not (root / "metadata.csv").is_file():
            generate(cfg, root)
        return root
