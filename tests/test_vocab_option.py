"""The gesture vocabulary option: one name for it (`--set data.vocab=FILE.toml`, or `data.vocab` in a suite, relative
to the suite file), and the error of a selection without a window of a class names it."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import tiny_args
from test_ninapro import SETS, VOCAB, check_args, cli, save_v5, write_dataset

from bench import suites
from bench.run import planner
from cpep.data.gestures import load_vocab

SUITE = """description = "a floor on a vocabulary of its own"
seeds = [0]
[set]
"data.vocab" = "vocab.toml"
[[variants]]
name = "floor"
method = "emg_log_power"
[[variants]]
name = "ceiling"
method = "pose_features"
set = {"data.vocab" = "../other/other.toml"}
[[variants]]
name = "built_in"
method = "emg_log_power"
set = {"data.vocab" = "ninapro-db2-v1"}
"""


def suite_folder(base: Path, vocab: str = VOCAB) -> Path:
    """base/suite/suite.toml naming base/suite/vocab.toml, and base/other/other.toml; and a working directory
    base/elsewhere, which holds neither."""
    for folder in ("suite", "other", "elsewhere"):
        (base / folder).mkdir(parents=True)
    (base / "suite" / "suite.toml").write_text(SUITE)
    (base / "suite" / "vocab.toml").write_text(vocab)
    (base / "other" / "other.toml").write_text(VOCAB.replace('"ninapro-test"', '"ninapro-other"'))
    return base / "suite" / "suite.toml"


def test_a_suites_vocabulary_file_is_found_beside_the_suite_wherever_the_command_runs(tmp_path, monkeypatch):
    path = suite_folder(tmp_path)
    monkeypatch.chdir(tmp_path / "elsewhere")
    suite = suites.load(str(path))
    assert suite.overrides["data.vocab"] == str(tmp_path / "suite" / "vocab.toml")
    assert suite.variant("ceiling").overrides["data.vocab"] == str(tmp_path / "other" / "other.toml")
    assert suite.variant("built_in").overrides["data.vocab"] == "ninapro-db2-v1"  # a name is not a path
    runs = {r.variant.name: r for r in planner.plan(suite)}
    assert load_vocab(runs["floor"].config["data"]["vocab"]).ident == "ninapro-test-v1"
    assert load_vocab(runs["ceiling"].config["data"]["vocab"]).ident == "ninapro-other-v1"
    assert runs["built_in"].config["data"]["vocab"] == "ninapro-db2-v1"


@pytest.fixture(scope="module")
def db2(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("db2") / "v5", save_v5)


def test_a_class_without_windows_names_the_option_that_changes_the_vocabulary(db2, tmp_path):
    # Movement 5 is not in the files: class Fist has no window in any selection of the in-distribution classes.
    lacking = VOCAB.replace("ExtendIndexMiddle = [2]", "ExtendIndexMiddle = [2]\nFist = [5]")
    path = suite_folder(tmp_path, lacking)
    sets = [a for key, value in SETS.items() for a in ("--set", f"{key}={value}")]
    result = cli("run", "--suite", path, "--variants", "floor", "--data", "ninapro_db2", "--data-root", db2,
                 "--runs-dir", tmp_path / "results", *strip_vocab(tiny_args()), *sets)
    assert result.returncode == 2, result.stdout + result.stderr
    error = result.stderr.strip()
    assert error.count("\n") == 0 and "selection id_train has no window of class 'Fist' of ninapro-test-v1" in error
    assert error.endswith("choose a vocabulary whose classes the data has: --set data.vocab=FILE.toml")

    checked = cli("data", "check", db2, "--data", "ninapro_db2", "--runs-dir", tmp_path / "results",
                  *check_args(tmp_path / "suite" / "vocab.toml"))
    assert checked.returncode == 2 and "--set data.vocab=FILE.toml" in checked.stderr
    fixed = cli("data", "check", db2, "--data", "ninapro_db2", "--runs-dir", tmp_path / "results",
                *check_args(tmp_path / "other" / "other.toml"))
    assert fixed.returncode == 0 and "ok (ninapro-other-v1)" in fixed.stdout


def strip_vocab(args: list[str]) -> list[str]:
    """`--set` arguments without their data.vocab: the suite's applies."""
    pairs = zip(args[::2], args[1::2])
    return [a for flag, value in pairs if not value.startswith("data.vocab=") for a in (flag, value)]
