"""Helpers of the emulator tests: CreateLabelingJob requests built the way the product builds them
(every ARN from the modality registry), polling, reading outputs. A uniquely named module (not
conftest) so other test folders cannot shadow it."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from smgt.registry import get_modality
from smgt.settings import Settings

REGION = "us-east-1"
SETTINGS = Settings()
OUTPUT_PATH = f"s3://{SETTINGS.processing_bucket}/gt-output/"
TERMINAL = {"Completed", "Failed", "Stopped"}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def job_request(name: str, modality: str, manifest: str, category: str, *, label_attribute: str | None = None,
                workteam: str | None = None, template: str | None = None, region: str = REGION) -> dict[str, Any]:
    m = get_modality(modality)
    ui = {"HumanTaskUiArn": m.human_task_ui_arn(region)} if m.ui_name else {"UiTemplateS3Uri": template}
    return {
        "LabelingJobName": name,
        "LabelAttributeName": label_attribute or m.default_label_attribute(name),
        "InputConfig": {"DataSource": {"S3DataSource": {"ManifestS3Uri": manifest}},
                        "DataAttributes": {"ContentClassifiers": ["FreeOfPersonallyIdentifiableInformation",
                                                                  "FreeOfAdultContent"]}},
        "OutputConfig": {"S3OutputPath": OUTPUT_PATH},
        "RoleArn": SETTINGS.role_arn,
        "LabelCategoryConfigS3Uri": category,
        "StoppingConditions": {"MaxPercentageOfInputDatasetLabeled": 100},
        "HumanTaskConfig": {
            "WorkteamArn": workteam or (SETTINGS.second_level_workteam_arn if m.is_audit
                                        else SETTINGS.first_level_workteam_arn),
            "UiConfig": ui,
            "PreHumanTaskLambdaArn": m.pre_human_task_lambda_arn(region),
            "TaskTitle": f"{modality} task", "TaskDescription": f"Label {modality}",
            "NumberOfHumanWorkersPerDataObject": 1,
            "TaskTimeLimitInSeconds": 3600, "TaskAvailabilityLifetimeInSeconds": 864000,
            "MaxConcurrentTaskCount": 100,
            "AnnotationConsolidationConfig": {"AnnotationConsolidationLambdaArn": m.consolidation_lambda_arn(region)},
        },
    }


def wait_terminal(sm, name: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.time() + timeout
    while True:
        desc = sm.describe_labeling_job(LabelingJobName=name)
        if desc["LabelingJobStatus"] in TERMINAL or time.time() > deadline:
            return desc
        time.sleep(0.05)


def audit_config(emu, source_uri: str, parent_attribute: str) -> str:
    """The audit category config as the product sends it: with auditLabelAttributeName."""
    config = emu.s3.get_json(source_uri)
    uri = source_uri.replace(".json", f"-audit-{parent_attribute}.json")
    emu.s3.put_json(uri, {**config, "auditLabelAttributeName": parent_attribute})
    return uri


def read_manifest(emu, uri: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in emu.s3.get_text(uri).splitlines() if line.strip()]
