"""Label the demo video end to end with plain boto3 calls: what a newcomer runs after `serve`.

Level 1: vehicles (boxes) and lanes (polylines) on the demo video; level 2: one adjustment job per
level-1 job on its output manifest, with `auditLabelAttributeName` added to the audit category
config, exactly what Ground Truth expects. `python -m smgt.local label-demo --endpoint-url URL`.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import boto3

from smgt.registry import get_modality
from smgt.settings import Settings, get_settings

from .demo import MANIFEST_PREFIX, upload_demo_data
from .s3io import S3


def labeling_job_request(name: str, modality: str, manifest: str, category: str, label_attribute: str,
                         workteam: str, settings: Settings, output_path: str) -> dict[str, Any]:
    m = get_modality(modality)
    region = settings.region
    return {
        "LabelingJobName": name, "LabelAttributeName": label_attribute,
        "InputConfig": {"DataSource": {"S3DataSource": {"ManifestS3Uri": manifest}},
                        "DataAttributes": {"ContentClassifiers": ["FreeOfPersonallyIdentifiableInformation",
                                                                  "FreeOfAdultContent"]}},
        "OutputConfig": {"S3OutputPath": output_path},
        "RoleArn": settings.role_arn,
        "LabelCategoryConfigS3Uri": category,
        "StoppingConditions": {"MaxPercentageOfInputDatasetLabeled": 100},
        "HumanTaskConfig": {
            "WorkteamArn": workteam,
            "UiConfig": {"HumanTaskUiArn": m.human_task_ui_arn(region)},
            "PreHumanTaskLambdaArn": m.pre_human_task_lambda_arn(region),
            "TaskTitle": f"{modality}: {label_attribute}", "TaskDescription": f"Label {label_attribute}",
            "NumberOfHumanWorkersPerDataObject": 1, "TaskTimeLimitInSeconds": 604800,
            "TaskAvailabilityLifetimeInSeconds": 864000, "MaxConcurrentTaskCount": 100,
            "AnnotationConsolidationConfig": {"AnnotationConsolidationLambdaArn": m.consolidation_lambda_arn(region)},
        },
    }


def _wait(sm: Any, names: list[str], timeout: float) -> dict[str, dict[str, Any]]:
    deadline = time.time() + timeout
    done: dict[str, dict[str, Any]] = {}
    while len(done) < len(names):
        if time.time() > deadline:
            raise TimeoutError(f"jobs not finished after {timeout}s: {sorted(set(names) - set(done))}")
        for name in names:
            if name not in done:
                desc = sm.describe_labeling_job(LabelingJobName=name)
                if desc["LabelingJobStatus"] in ("Completed", "Failed", "Stopped"):
                    done[name] = desc
        time.sleep(0.1)
    return done


def label_demo(endpoint_url: str, *, timeout: float = 600.0, prefix: str | None = None) -> dict[str, str]:
    """Run the notebook's four jobs; return job name -> output manifest URI."""
    settings = get_settings()
    # The keys and S3 endpoint `serve` printed (S3 on the deployment's store, SeaweedFS).
    missing = [n for n in ("AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if not os.environ.get(n)]
    if missing:
        raise RuntimeError(f"label-demo needs the environment `serve` prints; missing: {', '.join(missing)}")
    session = boto3.session.Session(aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
                                    aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
                                    region_name=settings.region)
    sm = session.client("sagemaker", endpoint_url=endpoint_url)
    s3 = S3(session.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL_S3"]))
    bucket = settings.input_bucket
    manifest = f"s3://{bucket}/{MANIFEST_PREFIX}/MOT17-13-SDP.manifest"
    if not s3.exists(manifest):
        upload_demo_data(s3, bucket)
    configs = f"s3://{bucket}/{MANIFEST_PREFIX}"
    prefix = prefix or f"demo-{uuid.uuid4().hex[:6]}"
    output_path = f"s3://{settings.processing_bucket}/{settings.processing_prefix}/{prefix}"

    level1 = {"vehicle": "vehicle-ref", "lane": "lane-ref"}
    for kind, attr in level1.items():
        sm.create_labeling_job(**labeling_job_request(
            f"{prefix}-{kind}", "VideoObjectTracking", manifest, f"{configs}/{kind}_label_category.json", attr,
            settings.first_level_workteam_arn, settings, output_path))
    first = _wait(sm, [f"{prefix}-{k}" for k in level1], timeout)
    outputs = {}
    for kind, attr in level1.items():
        desc = first[f"{prefix}-{kind}"]
        if desc["LabelingJobStatus"] != "Completed":
            raise RuntimeError(f"{desc['LabelingJobName']} ended {desc['LabelingJobStatus']}: {desc.get('FailureReason')}")
        parent_out = desc["LabelingJobOutput"]["OutputDatasetS3Uri"]
        outputs[desc["LabelingJobName"]] = parent_out
        audit_config = f"{output_path}/configs/{kind}_label_category_audit.json"
        s3.put_json(audit_config, {**s3.get_json(f"{configs}/{kind}_label_category_audit.json"),
                                   "auditLabelAttributeName": attr})
        sm.create_labeling_job(**labeling_job_request(
            f"{prefix}-{kind}-audit", "VideoObjectTrackingAudit", parent_out, audit_config, f"{kind}-audit-ref",
            settings.second_level_workteam_arn, settings, output_path))
    for name, desc in _wait(sm, [f"{prefix}-{k}-audit" for k in level1], timeout).items():
        if desc["LabelingJobStatus"] != "Completed":
            raise RuntimeError(f"{name} ended {desc['LabelingJobStatus']}: {desc.get('FailureReason')}")
        outputs[name] = desc["LabelingJobOutput"]["OutputDatasetS3Uri"]
    return outputs
