"""CreateLabelingJob requests for every modality, checked by botocore's own validator."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator

from smgt.config import LabelingJobConfig, validate_batch_config
from smgt.gt.requests import (
    CONTENT_CLASSIFIERS,
    RequestBuildError,
    audit_label_category_config,
    batch_output_path,
    build_create_labeling_job_request,
    label_category_config_for_job,
    output_manifest_uri,
    template_based_modalities,
    ui_template,
)
from smgt.registry import MODALITIES, UnsupportedRegionError
from smgt.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
INPUT = "s3://smgt-workflows-123456789012-us-east-1-batch-input"
SETTINGS = Settings()
BATCH = "b-1a2b3c4d"
TEMPLATE_URI = f"{INPUT}/ui/template.liquid.html"

SAGEMAKER = botocore.session.get_session().get_service_model("sagemaker")
CREATE_SHAPE = SAGEMAKER.operation_model("CreateLabelingJob").input_shape


def validate_create_request(request: dict[str, Any]) -> None:
    """botocore's validator (types, required members, min sizes, ranges) plus the model's
    patterns and max lengths, which botocore leaves to the service."""
    report = ParamValidator().validate(request, CREATE_SHAPE)
    assert not report.has_errors(), report.generate_report()
    problems: list[str] = []
    _check_constraints(request, CREATE_SHAPE, "CreateLabelingJob", problems)
    assert not problems, problems


def _check_constraints(value: Any, shape: Any, path: str, problems: list[str]) -> None:
    meta = shape.metadata
    if shape.type_name == "structure":
        for name, member in shape.members.items():
            if name in value:
                _check_constraints(value[name], member, f"{path}.{name}", problems)
    elif shape.type_name == "list":
        if "max" in meta and len(value) > meta["max"]:
            problems.append(f"{path}: more than {meta['max']} items")
        for i, item in enumerate(value):
            _check_constraints(item, shape.member, f"{path}[{i}]", problems)
    elif shape.type_name == "string":
        if "max" in meta and len(value) > meta["max"]:
            problems.append(f"{path}: longer than {meta['max']}")
        pattern = meta.get("pattern")
        # Java-only classes (\p{L}) have no `re` equivalent; those tag patterns are checked below.
        if pattern and "\\p{" not in pattern and not re.fullmatch(pattern, value):
            problems.append(f"{path}: {value!r} does not match {pattern}")
    elif shape.type_name == "integer" and "max" in meta and value > meta["max"]:
        problems.append(f"{path}: {value} > {meta['max']}")


def _modality_batch() -> dict[str, LabelingJobConfig]:
    """One level-1 job per first-level modality and its audit at level 2, defaults filled in."""
    jobs = []
    for name, modality in MODALITIES.items():
        if modality.is_audit:
            continue
        base = name.lower()[:40]
        jobs.append(
            {
                "jobName": base,
                "jobType": "BATCH",
                "jobModality": name,
                "labelCategoryConfigS3Uri": f"{INPUT}/{base}_label_category.json",
                "inputConfig": {"inputManifestS3Uri": f"{INPUT}/{base}.manifest"},
                "jobLevel": 1,
            }
        )
        jobs.append(
            {
                "jobName": f"{base}-audit",
                "jobType": "BATCH",
                "jobModality": f"{name}Audit",
                "inputConfig": {"chainFromJobName": base, "downSamplingRate": 50},
                "jobLevel": 2,
            }
        )
    batch = validate_batch_config({"batchId": BATCH, "labelingJobs": jobs})
    return {job.jobModality: job for job in batch.labelingJobs}


JOBS = _modality_batch()


def _request(job: LabelingJobConfig, **overrides: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "batch_id": BATCH,
        "settings": SETTINGS,
        "input_manifest_s3_uri": f"{INPUT}/{job.jobName}.manifest",
        "label_category_config_s3_uri": f"{INPUT}/{job.jobName}_label_category.json",
        "ui_template_s3_uri": TEMPLATE_URI if MODALITIES[job.jobModality].ui_template else None,
    }
    kwargs.update(overrides)
    return build_create_labeling_job_request(job, **kwargs)


def test_every_registry_modality_is_covered() -> None:
    assert set(JOBS) == set(MODALITIES)


@pytest.mark.parametrize("modality_name", sorted(MODALITIES))
def test_request_passes_botocore_validation(modality_name: str) -> None:
    job = JOBS[modality_name]
    modality = MODALITIES[modality_name]
    request = _request(job)
    validate_create_request(request)

    assert request["LabelingJobName"] == job.jobName
    assert request["LabelAttributeName"] == job.labelAttributeName
    assert request["InputConfig"]["DataSource"]["S3DataSource"]["ManifestS3Uri"] == f"{INPUT}/{job.jobName}.manifest"
    assert request["InputConfig"]["DataAttributes"]["ContentClassifiers"] == CONTENT_CLASSIFIERS
    assert request["OutputConfig"] == {"S3OutputPath": f"s3://{SETTINGS.processing_bucket}/batches/{BATCH}/output"}
    assert request["RoleArn"] == SETTINGS.role_arn
    assert request["StoppingConditions"] == {"MaxPercentageOfInputDatasetLabeled": 100}

    htc = request["HumanTaskConfig"]
    lambdas = "arn:aws:lambda:us-east-1:432418664414:function"
    assert htc["PreHumanTaskLambdaArn"] == f"{lambdas}:PRE-{modality.task_type}"
    assert htc["AnnotationConsolidationConfig"] == {
        "AnnotationConsolidationLambdaArn": f"{lambdas}:ACS-{modality.task_type}"
    }
    if modality.ui_name:
        assert htc["UiConfig"] == {
            "HumanTaskUiArn": f"arn:aws:sagemaker:us-east-1:394669845002:human-task-ui/{modality.ui_name}"
        }
    else:
        assert htc["UiConfig"] == {"UiTemplateS3Uri": TEMPLATE_URI}
    assert htc["NumberOfHumanWorkersPerDataObject"] == 1
    # GT's maximum per task type: 8 hours for image jobs, the config's 7-day default otherwise.
    assert htc["TaskTimeLimitInSeconds"] == (28_800 if modality.media.value == "image" else 604_800)
    assert htc["TaskAvailabilityLifetimeInSeconds"] == 864_000
    assert htc["MaxConcurrentTaskCount"] == 100
    assert job.jobName in htc["TaskTitle"]
    assert {"Key": "smgt:batch-id", "Value": BATCH} in request["Tags"]
    assert {"Key": "smgt:job-level", "Value": str(job.jobLevel)} in request["Tags"]
    tag_re = re.compile(r"[\w\s.:/=+\-@]*")  # the model's ([\p{L}\p{Z}\p{N}_.:/=+\-@]*)
    assert all(tag_re.fullmatch(t["Key"]) and tag_re.fullmatch(t["Value"]) for t in request["Tags"])
    # The request goes to create_labeling_job(**request) and through JSON as an XCom/template.
    assert json.loads(json.dumps(request)) == request


@pytest.mark.parametrize("modality_name", sorted(m for m in MODALITIES if MODALITIES[m].is_audit))
def test_audit_jobs_use_adjustment_lambdas(modality_name: str) -> None:
    htc = _request(JOBS[modality_name])["HumanTaskConfig"]
    assert ":function:PRE-Adjustment" in htc["PreHumanTaskLambdaArn"]
    assert ":function:ACS-Adjustment" in htc["AnnotationConsolidationConfig"]["AnnotationConsolidationLambdaArn"]
    assert "Review" in htc["TaskTitle"] or "review" in htc["TaskTitle"]


def test_work_team_by_level_and_override() -> None:
    audit = JOBS["VideoObjectTrackingAudit"]
    assert _request(JOBS["VideoObjectTracking"])["HumanTaskConfig"]["WorkteamArn"] == SETTINGS.first_level_workteam_arn
    assert _request(audit)["HumanTaskConfig"]["WorkteamArn"] == SETTINGS.second_level_workteam_arn
    level3 = audit.model_copy(update={"jobLevel": 3})
    assert _request(level3)["HumanTaskConfig"]["WorkteamArn"] == SETTINGS.second_level_workteam_arn
    own = "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/special"
    assert _request(audit.model_copy(update={"workteamArn": own}))["HumanTaskConfig"]["WorkteamArn"] == own


def test_level_two_non_audit_job_defaults_to_second_level_team() -> None:
    batch = validate_batch_config(
        {
            "batchId": BATCH,
            "labelingJobs": [
                {
                    "jobName": "cars",
                    "jobType": "BATCH",
                    "jobModality": "BoundingBox",
                    "labelCategoryConfigS3Uri": f"{INPUT}/cars.json",
                    "inputConfig": {"inputManifestS3Uri": f"{INPUT}/cars.manifest"},
                    "jobLevel": 1,
                },
                {
                    "jobName": "cars-again",
                    "jobType": "BATCH",
                    "jobModality": "BoundingBox",
                    "inputConfig": {"chainFromJobName": "cars"},
                    "jobLevel": 2,
                },
            ],
        }
    )
    request = _request(batch.job("cars-again"))
    validate_create_request(request)
    assert request["HumanTaskConfig"]["WorkteamArn"] == SETTINGS.second_level_workteam_arn
    assert request["LabelCategoryConfigS3Uri"].endswith("_label_category.json")


def test_job_limits_are_carried() -> None:
    job = JOBS["BoundingBox"].model_copy(
        update={"maxConcurrentTaskCount": 7, "taskAvailabilityLifetimeInSeconds": 3600, "taskTimeLimitInSeconds": 300}
    )
    htc = _request(job)["HumanTaskConfig"]
    assert (htc["MaxConcurrentTaskCount"], htc["TaskAvailabilityLifetimeInSeconds"], htc["TaskTimeLimitInSeconds"]) == (
        7,
        3600,
        300,
    )


@pytest.mark.parametrize("modality_name", template_based_modalities())
def test_template_modalities_require_a_template(modality_name: str) -> None:
    assert modality_name in {"BoundingBox", "BoundingBoxAudit", "SemanticSegmentation", "SemanticSegmentationAudit"}
    with pytest.raises(RequestBuildError, match=rf"{JOBS[modality_name].jobName}.*ui_template_s3_uri"):
        _request(JOBS[modality_name], ui_template_s3_uri=None)


def test_bad_inputs_are_named() -> None:
    job = JOBS["VideoObjectTracking"]
    with pytest.raises(RequestBuildError, match="inputManifestS3Uri"):
        _request(job, input_manifest_s3_uri="not-a-uri")
    with pytest.raises(RequestBuildError, match="batchId"):
        _request(job, batch_id="bad_id")
    with pytest.raises(UnsupportedRegionError):
        _request(job, settings=Settings(region="sa-east-1"))


def test_other_region_arns() -> None:
    request = _request(JOBS["PointCloudObjectDetection"], settings=Settings(region="eu-central-1"))
    validate_create_request(request)
    htc = request["HumanTaskConfig"]
    assert htc["PreHumanTaskLambdaArn"] == (
        "arn:aws:lambda:eu-central-1:203001061592:function:PRE-3DPointCloudObjectDetection"
    )
    assert htc["UiConfig"]["HumanTaskUiArn"].endswith("eu-central-1:394669845002:human-task-ui/PointCloudObjectDetection")


def test_output_layout() -> None:
    path = batch_output_path(SETTINGS, BATCH)
    assert path == f"s3://{SETTINGS.processing_bucket}/batches/{BATCH}/output"
    assert output_manifest_uri(path, "job-a") == f"{path}/job-a/manifests/output/output.manifest"
    assert output_manifest_uri(path + "/", "job-a") == f"{path}/job-a/manifests/output/output.manifest"
    no_prefix = Settings(processing_prefix="")
    assert batch_output_path(no_prefix, BATCH) == f"s3://{no_prefix.processing_bucket}/{BATCH}/output"


def test_audit_category_config_carries_parent_attribute() -> None:
    original = json.loads((ROOT / "include/label_configs/vehicle_label_category_audit.json").read_text())
    snapshot = json.loads(json.dumps(original))
    parent = JOBS["VideoObjectTracking"]
    audit = JOBS["VideoObjectTrackingAudit"]

    config = audit_label_category_config(original, parent.label_attribute)
    assert config["auditLabelAttributeName"] == parent.label_attribute == "videoobjecttracking-ref"
    assert {k: v for k, v in config.items() if k != "auditLabelAttributeName"} == original
    assert original == snapshot  # the caller's dict is untouched

    assert label_category_config_for_job(audit, original, parent.label_attribute) == config
    assert "auditLabelAttributeName" not in label_category_config_for_job(parent, original, None)
    with pytest.raises(RequestBuildError, match="parent's label attribute"):
        label_category_config_for_job(audit, original, None)
    with pytest.raises(RequestBuildError, match="metadata"):
        audit_label_category_config(original, "vehicle-ref-metadata")


def test_ui_templates() -> None:
    for name in ("BoundingBox", "SemanticSegmentation"):
        text = ui_template(name)
        tag = "crowd-bounding-box" if name == "BoundingBox" else "crowd-semantic-segmentation"
        assert f"<{tag}" in text and f"</{tag}>" in text and "<crowd-form>" in text
        assert "task.input.taskObject | grant_read_access" in text
        assert 'initial-value="' not in text and "$" not in text
        with pytest.raises(RequestBuildError, match="parent's label attribute"):
            ui_template(f"{name}Audit")

    box = ui_template("BoundingBoxAudit", parent_label_attribute="cars")
    assert "task.input.manifestLine.cars.annotations" in box
    assert "task.input.manifestLine.cars-metadata.class-map[class_id]" in box
    seg = ui_template("SemanticSegmentationAudit", parent_label_attribute="roads-ref")
    assert "task.input.manifestLine.roads-ref | grant_read_access" in seg
    assert "roads-ref-metadata.internal-color-map" in seg
    with pytest.raises(RequestBuildError, match="managed UI"):
        ui_template("VideoObjectTracking")
