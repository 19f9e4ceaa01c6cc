"""The results table: every record of a runs directory as one parquet file, rebuilt by `run` and `report`,
which reads its records back from it."""

from __future__ import annotations

import json

import pandas as pd
from conftest import tiny_args
from test_cli import cli

from bench.run import records_table
from cpep import config


def test_run_writes_the_table_and_report_reads_a_record_written_by_hand(make_results, tmp_path):
    results = make_results(tmp_path / "results")
    cli("run", "--suite", "smoke", "--variants", "emg_log_power,pose_features", "--runs-dir", results,
        *tiny_args())

    table = pd.read_parquet(results / "records.parquet")
    assert set(table["variant"]) == {"emg_log_power", "pose_features"}
    assert set(table["metric"]) == {"lp_id", "lp_unseen", "zs_id", "zs_unseen"}
    assert len(table) == 2 * 4  # a row per run x metric
    assert (table["suite"] == "smoke").all() and (table["dataset"] == "synthetic").all()
    assert (table["seed"] == 0).all() and (table["status"] == "done").all()
    lp = table[table["metric"] == "lp_id"].set_index("variant")["value"]
    (data_dir,) = (results / "runs/smoke").glob("synthetic-*")  # the records of one data identity
    record = json.loads((data_dir / "emg_log_power/seed-0.json").read_text())
    assert lp["emg_log_power"] == record["metrics"]["lp_id"]
    zs = table[table["metric"] == "zs_id"]
    assert zs["value"].isna().all() and zs["not_applicable"].str.len().gt(0).all()  # no zero-shot: its reason
    provenance = ["commit", "dirty", "config_hash", "data_key", "data_root", "device", "device_name", "precision",
                  "threads", "version_torch", "version_pandas", "version_python"]
    assert table[provenance].notna().all().all()
    assert table["commit"].iloc[0] == record["provenance"]["git"]["commit"]
    assert table["precision"].iloc[0] == "float32" and table["device"].iloc[0] == "cpu"
    assert table["config_hash"].iloc[0] == config.digest(record["config"])
    assert table["data_key"].iloc[0] == record["data_key"] == data_dir.name.split("-")[1]
    # the report reads every record back whole, per-user scores included
    on_disk = [json.loads(p.read_text()) for p in sorted(data_dir.glob("*/seed-0.json"))]
    assert records_table.records(table.sort_values("variant")) == on_disk and "by_user" in on_disk[0]

    # A record written by hand (as a SLURM job writes its own) reaches the table and the report.
    # Without per-user scores, the report's estimate is the record's overall score.
    hand = record | {"variant": "by_hand", "label": "written by hand", "metrics": record["metrics"] | {"lp_id": 0.123},
                     "by_user": {}}
    path = data_dir / "by_hand/seed-0.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(hand))
    out = cli("report", "--suite", "smoke", "--runs-dir", results, "--format", "csv")
    table = pd.read_parquet(results / "records.parquet")
    assert table.loc[(table["variant"] == "by_hand") & (table["metric"] == "lp_id"), "value"].tolist() == [0.123]
    csv = pd.read_csv(results / "report/smoke" / data_dir.name / "table.csv")
    assert csv.loc[(csv["variant"] == "by_hand") & (csv["metric"] == "lp_id"), "mean"].tolist() == [0.123]
    assert "written by hand" in out.stdout
    assert not list(results.glob(".records.parquet.*"))  # written to a temporary file and renamed

    # A table that cannot be written (here a folder in its place) is one warning; the report reads the records.
    (results / "records.parquet").unlink()
    (results / "records.parquet").mkdir()
    out = cli("report", "--suite", "smoke", "--runs-dir", results, "--format", "csv")
    assert out.stderr.count("warning: ") == 1 and "records.parquet not written" in out.stderr
    assert "written by hand" in out.stdout and "Traceback" not in out.stderr
