"""Shipped data: the notebook's label category configs and the sample batch file."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from smgt.config import validate_batch_config

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
    spec = yaml.safe_load((ROOT / "include" / "batches" / "notebook_tracking.yaml").read_text())
    batch_id = f"{spec['batchIdPrefix']}-0001"
    jobs = []
    for job in spec["labelingJobs"]:
        job = dict(job)
        category = LABEL_CONFIGS / job.pop("labelCategoryConfigFile")
        assert category.exists()
        job["labelCategoryConfigS3Uri"] = f"s3://bucket-a/{category.name}"
        job["jobName"] = f"{batch_id}-{job['jobName']}"
        if "chainFromJobName" in job["inputConfig"]:
            job["inputConfig"] = {"chainFromJobName": f"{batch_id}-{job['inputConfig']['chainFromJobName']}"}
        jobs.append(job)
    config = validate_batch_config({"batchId": batch_id, "labelingJobs": jobs})
    assert [j.jobModality for j in config.labelingJobs] == [
        "VideoObjectTracking", "VideoObjectTracking", "VideoObjectTrackingAudit", "VideoObjectTrackingAudit"]
