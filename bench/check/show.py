"""What `cpep-bench data check` prints: for emg2pose the files, users, stages, sessions, hours and IK failures
found, for NinaPro DB2 the files, subjects, movements and hours; each selection's windows; each problem on a line
of its own."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from bench import plugins
from cpep.errors import DataError, UserError

SELECTION_LABELS = {"pretrain": "pre-training", "id_train": "id probe train", "id_test": "id probe test",
                    "unseen_train": "unseen probe train", "unseen_test": "unseen probe test"}


def selection_table(counts: dict[str, dict], title: str | None = None) -> Table:
    """check_files' counts: each selection's recordings, windows and windows per class."""
    table = Table("selection", "recordings", "windows", "windows per class", title=title)
    for name, c in counts.items():
        per_class = ", ".join(f"{cls} {n}" for cls, n in c["classes"].items())
        table.add_row(SELECTION_LABELS[name], str(c["recordings"]), str(c["windows"]), per_class)
    return table


def plain(console):
    """Print a line as it is: no markup or highlighting (paths hold brackets)."""
    return lambda text: console.print(text, markup=False, highlight=False)


def scan_progress(status):
    return lambda done, total: status.update(f"checking data: {done} of {total} recordings scanned")


def spans(numbers) -> str:
    """1, 2, 3, 5 -> "1-3, 5"."""
    out, numbers = [], sorted(numbers)
    for n in numbers:
        if out and n == out[-1][1] + 1:
            out[-1][1] = n
        else:
            out.append([n, n])
    return ", ".join(f"{a}-{b}" if b > a else str(a) for a, b in out)


def split_line(dataset) -> str:
    """How a NinaPro dataset's windows are split, in words."""
    from cpep.data.ninapro_windows import TEST_REPETITIONS, TRAIN_REPETITIONS
    if dataset.split.name == "within_subject":
        return (f"within_subject: repetitions {spans(TRAIN_REPETITIONS)} train and {spans(TEST_REPETITIONS)} test, "
                f"of every subject")
    return (f"cross_subject: subjects {spans(dataset.train_subjects)} pre-train and train the probes, "
            f"{spans(dataset.test_subjects)} only test them (data.ninapro.test_subjects="
            f"{dataset.split.test_subjects})")


def check_ninapro(cfg: dict, root: Path, store, console) -> None:
    """Scan every file found (those of exercises the vocabulary does not use too), print what was found and each
    problem, then count the windows of each selection. DataError (exit 2) when a file the protocol reads is
    unusable, or a selection lacks windows."""
    from cpep.data.ninapro import SAMPLE_RATE
    dataset = plugins.get("dataset", "ninapro_db2").open(cfg, store)
    with console.status("checking data") as status:
        verdicts = dataset.verdicts(dataset.files, scan_progress(status))
    used = {f.path for f in dataset.recordings}
    readable = [v for v in verdicts if "problem" not in v]
    movements = {int(segment[2]) for v in readable for segment in v["segments"]}
    hours = sum(v["rows"] for v in readable) / SAMPLE_RATE / 3600
    say = plain(console)
    subjects, exercises = {f.subject for f in dataset.files}, {f.exercise for f in dataset.files}
    say(f"files: {len(dataset.files)} ({len(readable)} readable), exercises {spans(exercises)}; "
        f"{len(dataset.skipped)} skipped")
    for path, why in dataset.skipped:
        say(f"skipped: {path}: {why}")
    say(f"subjects: {len(subjects)} ({spans(subjects)})")
    say(f"split: {split_line(dataset)}")
    say(f"movements: {len(movements)} ({spans(movements) or 'none'})")
    say(f"hours: {hours:.3f} (readable files, rest included)")
    fatal = 0
    for f, verdict in zip(dataset.files, verdicts):
        if "problem" in verdict:
            fatal += f.path in used
            note = "" if f.path in used else (f" (not read: {dataset.vocab.ident} has no movement of exercise "
                                              f"{f.exercise})")
            say(f"problem: {verdict['problem']}{note}")
    if fatal:
        raise DataError(f"{root}: {fatal} of the {len(used)} files the protocol reads are unusable (listed above)")
    console.print(selection_table(dataset.check_files()))
    say(f"{root}: ok ({dataset.vocab.ident})")


def check_emg2pose(cfg: dict, root: Path, store, console) -> None:
    """Survey the dataset (bench.check.survey), print it and each problem; UserError (exit 2) when there is one."""
    from bench.check.survey import survey
    from cpep.data.gestures import load_vocab
    with console.status("checking data") as status:
        s = survey(cfg, root, store.cache_dir, scan_progress(status))
    say = plain(console)
    f, u, st = s.files, s.users, s.stages
    say(f"files: {f['present']} present of {f['listed']} listed in metadata.csv ({f['absent']} absent), "
        f"{f['unlisted']} not listed")
    say(f"users: {u['total']}" + (f" (training {u['training']}; held out {u['held-out']}: validation "
                                  f"{u['validation']}, test {u['test']})" if "training" in u else ""))
    say(f"stages: {st['total']}" + (f" (training {st['training']}, held out {st['held-out']})"
                                    if "training" in st else ""))
    say(f"sessions: {s.sessions}")
    say(f"EMG: {s.hours:.3f} h in the recordings the scan accepts; IK failures: {100 * s.ik_fraction:.1f} % of "
        f"their rows")
    if s.selections:
        d = cfg["data"]
        console.print(selection_table(s.selections, f"windows of {d['window']} samples every {d['stride']} "
                                                    f"(protocol {d['protocol']})"))
    if s.still_hand is not None:
        say(f"{s.still_hand[0]} recordings of a hand not prompted to move (moving_hand names the other hand): not "
            f"in the probes; pre-training reads {s.still_hand[1]} of them")
    for line in s.notes:
        say(line)
    for problem in s.problems:
        say(f"problem: {problem}")
    if s.problems:
        more = f" ({len(s.problems)} problems, listed above)" if len(s.problems) > 1 else ""
        raise UserError(f"{s.problems[0]}{more}")
    say(f"{root}: ok ({load_vocab(cfg['data']['vocab']).ident})")
