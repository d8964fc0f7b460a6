"""Recurring batch files: a DAG per scheduled file, runs to COMPLETE; a broken file stays local."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from airflow.utils.session import create_session
from dag_helpers import load_dag_module, snapshot_of

from smgt import batch_status
from smgt.batch_files import BatchFileError, read_batch_file

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(600)


def test_scheduled_batch_file_runs_once_to_complete(emulator):
    dag = load_dag_module("smgt_recurring").smgt_recurring_street_daily
    assert dag.schedule == "@daily" and "recurring" in dag.tags
    run = dag.test()
    assert run.state == "success"
    # batchId and job names are unique per run: {prefix}-{run time}.
    with create_session() as session:
        listed = batch_status.list_batches(session, limit=1000)
    batch_id = next(b for b in listed["COMPLETE"] if b.startswith("street-daily-"))
    assert batch_id.startswith("street-daily-") and len(batch_id) == len("street-daily-") + 14
    assert snapshot_of(batch_id).run_id == run.run_id
    detail = batch_status.describe_batch(snapshot_of(batch_id))
    assert detail["status"] == "COMPLETE"
    vehicle = detail["firstLevel"]["jobLevels"][0]
    assert vehicle["labelingJobName"] == f"{batch_id}-vehicle"
    # The input was built at run time from the frames prefix: one sequence for the demo video,
    # every other frame.
    sm = emulator.client("s3")
    bucket, key = vehicle["jobInputS3Uri"][5:].split("/", 1)
    lines = sm.get_object(Bucket=bucket, Key=key)["Body"].read().decode().splitlines()
    assert len(lines) == 1
    assert detail["secondLevel"]["jobLevels"][0]["sampling"]["rate"] == 50


def test_broken_batch_file_is_an_import_error_of_its_own(tmp_path, monkeypatch):
    folder = tmp_path / "batches"
    folder.mkdir()
    shutil.copy(ROOT / "include" / "batches" / "street_daily.yaml", folder / "good_one.yaml")
    (folder / "broken.yaml").write_text(
        "schedule: '@hourly'\nbatchIdPrefix: broken\nlabelingJobs:\n"
        "  - jobName: bad_name\n    jobModality: VideoObjectTracking\n"
        "    labelCategoryConfigFile: missing.json\n    inputConfig: {inputManifestS3Uri: s3://bucket-a/m}\n    jobLevel: 1\n"
    )
    (folder / "template_only.yaml").write_text((ROOT / "include" / "batches" / "notebook_tracking.yaml").read_text())
    monkeypatch.setenv("SMGT_BATCHES_DIR", str(folder))
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(ROOT / "dags" / "smgt_recurring.py"))
    assert sorted(bag.dags) == ["smgt_recurring_good_one"]
    assert list(bag.import_errors) and all(
        "broken.yaml" in error and "labelCategoryConfigFile: 'missing.json' not found" in error
        for error in bag.import_errors.values()
    )
    with pytest.raises(BatchFileError, match="labelCategoryConfigFile"):
        read_batch_file(folder / "broken.yaml")
