"""Shipped data: the notebook's label category configs and the sample batch file."""

from __future__ import annotations

import json
from pathlib import Path

from smgt.batch_files import read_batch_file

ROOT = Path(__file__).resolve().parents[1]
LABEL_CONFIGS = ROOT / "include" / "label_configs"


def test_label_configs_are_gt_category_configs():
    names = sorted(p.name for p in LABEL_CONFIGS.glob("*.json"))
    assert names == [
        "lane_label_category.json",
        "lane_label_category_audit.json",
        "vehicle_label_category.json",
        "vehicle_label_category_audit.json",
    ]
    for path in LABEL_CONFIGS.glob("*.json"):
        config = json.loads(path.read_text())
        assert config["document-version"] == "2020-08-15"
        assert config["labels"] and all("label" in label for label in config["labels"])
        assert config["annotationType"] in {"BoundingBox", "Polyline"}
        assert "shortInstruction" in config["instructions"]
        if path.stem.endswith("_audit"):
            assert {"name": "audit", "type": "string", "enum": ["Pass", "Fail"]} in config["labels"][0]["attributes"]


def test_notebook_sample_batch_file_becomes_a_valid_batch():
    batch_file = read_batch_file(ROOT / "include" / "batches" / "notebook_tracking.yaml")
    assert batch_file.schedule is None  # a template, not a DAG
    config = batch_file.config
    assert [j.jobModality for j in config.labelingJobs] == [
        "VideoObjectTracking", "VideoObjectTracking", "VideoObjectTrackingAudit", "VideoObjectTrackingAudit"]
    audit = config.job(f"{config.batchId}-vehicle-audit")
    assert config.parent(audit).jobName == f"{config.batchId}-vehicle"
    assert config.levels == [1, 2]


def test_every_shipped_batch_file_is_valid():
    for path in (ROOT / "include" / "batches").glob("*.yaml"):
        read_batch_file(path)


def test_example_conf_is_the_notebook_batch_and_valid():
    """examples/notebook_batch.json: what the README tells a new user to paste into the trigger form."""
    from sample_batches import notebook_batch

    from smgt.config import validate_batch_config

    conf = json.loads((ROOT / "examples" / "notebook_batch.json").read_text())
    assert conf == notebook_batch(conf["batchId"])
    config = validate_batch_config(conf, region="us-east-1", max_job_level=3, max_jobs=100)
    assert [j.jobLevel for j in config.labelingJobs] == [1, 1, 2, 2]
