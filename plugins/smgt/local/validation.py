"""CreateLabelingJob validation as Ground Truth does it, before a job exists.

Each rule raises the error code GT returns: malformed fields, unknown task types, mismatched ARNs,
missing or unparsable S3 inputs and missing work teams are `ValidationException`; a name already
taken (by any job ever, ignoring case) is `ResourceInUse` and is checked by the store. Sequence files
referenced by the manifest are read later, while the job runs, as GT does; a bad one fails the job.

The task type is derived from the pre-human-task Lambda ARN (`PRE-<TaskType>`) through the registry,
so this module and the request builder can never disagree on what a modality needs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from smgt.registry import (
    GT_LAMBDA_ACCOUNTS,
    HUMAN_TASK_UI_ACCOUNT,
    MediaKind,
    Modality,
    UnknownModalityError,
    get_modality,
    modality_for_task_type,
)

from .errors import ValidationException
from .s3io import S3

JOB_NAME_RE = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
LABEL_ATTRIBUTE_RE = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,126}")
ROLE_ARN_RE = re.compile(r"arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+")
S3_PATH_RE = re.compile(r"s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(/.*)?")
LAMBDA_RE = re.compile(r"arn:aws:lambda:([a-z0-9-]+):(\d{12}):function:(PRE|ACS)-([A-Za-z0-9]+)")
VIDEO_ANNOTATION_TYPES = {"BoundingBox", "Polyline", "Polygon", "Keypoint"}
# GT's limits per task: video and 3D tasks may run up to 7 days, other built-in tasks 8 hours.
LONG_TASK_LIMIT = 604_800
SHORT_TASK_LIMIT = 28_800


@dataclass(frozen=True)
class JobSpec:
    """What a validated request resolves to; everything the lifecycle and the workforce need."""

    modality: Modality
    manifest_lines: list[dict[str, Any]]
    category_config: dict[str, Any]
    output_path: str  # S3OutputPath without a trailing slash

    def to_dict(self) -> dict[str, Any]:
        # GT snapshots the input manifest and label config at create; so does the state file.
        return {"modality": self.modality.name, "manifest_lines": self.manifest_lines,
                "category_config": self.category_config, "output_path": self.output_path}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobSpec:
        return cls(modality=get_modality(data["modality"]), manifest_lines=data["manifest_lines"],
                   category_config=data["category_config"], output_path=data["output_path"])


def _fail(field: str, value: Any, rule: str) -> ValidationException:
    return ValidationException(
        f"1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: {rule}"
    )


def _get(data: dict[str, Any], *path: str) -> Any:
    cur: Any = data
    for key in path:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(key)
    return cur


def split_s3_path(uri: str, field: str) -> tuple[str, str]:
    """(bucket, key-or-prefix) of an s3:// URI; the key may be empty (an output path)."""
    match = S3_PATH_RE.fullmatch(uri) if isinstance(uri, str) else None
    if not match:
        raise _fail(field, uri, "Member must satisfy regular expression pattern: ^(https|s3)://([^/]+)/?(.*)$")
    return match.group(1), (match.group(2) or "/").lstrip("/")


def validate_create(
    request: dict[str, Any],
    *,
    region: str,
    s3: S3,
    workteam_exists: Callable[[str], bool],
) -> JobSpec:
    name = request.get("LabelingJobName")
    if not isinstance(name, str) or not JOB_NAME_RE.fullmatch(name):
        raise _fail("labelingJobName", name,
                    "Member must satisfy regular expression pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
    if region not in GT_LAMBDA_ACCOUNTS:
        raise ValidationException(f"Ground Truth built-in task types are not available in region {region}")

    modality = _task_modality(request, region)
    _check_label_attribute(request.get("LabelAttributeName"), modality)

    role = request.get("RoleArn")
    if not isinstance(role, str) or not ROLE_ARN_RE.fullmatch(role):
        raise _fail("roleArn", role, "Member must satisfy regular expression pattern: "
                    "^arn:aws[a-z\\-]*:iam::\\d{12}:role/?[a-zA-Z_0-9+=,.@\\-_/]+$")

    human = request.get("HumanTaskConfig") or {}
    _check_ui(human, modality, region, s3)
    _check_task_limits(human, modality)
    team = human.get("WorkteamArn")
    if not isinstance(team, str) or not workteam_exists(team):
        raise ValidationException(f"Workteam {team} does not exist")

    out_bucket, out_prefix = split_s3_path(_get(request, "OutputConfig", "S3OutputPath"), "outputConfig.s3OutputPath")
    if not s3.bucket_exists(out_bucket):
        raise ValidationException(f"The output bucket {out_bucket} does not exist or is not accessible")
    output_path = f"s3://{out_bucket}/{out_prefix}".rstrip("/")

    config = _read_category_config(request.get("LabelCategoryConfigS3Uri"), modality, s3)
    lines = _read_manifest(_get(request, "InputConfig", "DataSource", "S3DataSource", "ManifestS3Uri"), s3)
    if modality.is_audit:
        audit_attr = config.get("auditLabelAttributeName")
        if not isinstance(audit_attr, str) or not audit_attr:
            raise ValidationException(
                f"An adjustment job ({modality.task_type}) needs auditLabelAttributeName in its label "
                "category configuration file")
        for number, line in enumerate(lines, 1):
            if audit_attr not in line:
                raise ValidationException(
                    f"auditLabelAttributeName '{audit_attr}' is missing from line {number} of the input manifest")
    return JobSpec(modality=modality, manifest_lines=lines, category_config=config, output_path=output_path)


def _task_modality(request: dict[str, Any], region: str) -> Modality:
    human = request.get("HumanTaskConfig") or {}
    pre = human.get("PreHumanTaskLambdaArn")
    acs = _get(human, "AnnotationConsolidationConfig", "AnnotationConsolidationLambdaArn")
    pre_m = LAMBDA_RE.fullmatch(pre) if isinstance(pre, str) else None
    acs_m = LAMBDA_RE.fullmatch(acs) if isinstance(acs, str) else None
    # Only GT's built-in tasks are emulated: custom Lambdas cannot run here.
    if not pre_m or pre_m.group(3) != "PRE":
        raise ValidationException(f"Invalid PreHumanTaskLambdaArn {pre}: not a Ground Truth built-in task Lambda")
    if not acs_m or acs_m.group(3) != "ACS":
        raise ValidationException(
            f"Invalid AnnotationConsolidationLambdaArn {acs}: not a Ground Truth built-in consolidation Lambda")
    for match, arn in ((pre_m, pre), (acs_m, acs)):
        if match.group(1) != region or match.group(2) != GT_LAMBDA_ACCOUNTS[region]:
            raise ValidationException(f"Lambda {arn} is not a Ground Truth built-in Lambda of region {region}")
    if pre_m.group(4) != acs_m.group(4):
        raise ValidationException(
            f"PreHumanTaskLambdaArn ({pre_m.group(4)}) and AnnotationConsolidationLambdaArn "
            f"({acs_m.group(4)}) are for different task types")
    try:
        return modality_for_task_type(pre_m.group(4))
    except UnknownModalityError:
        raise ValidationException(f"Unsupported task type {pre_m.group(4)} in {pre}") from None


def _check_label_attribute(attr: Any, modality: Modality) -> None:
    if not isinstance(attr, str) or not LABEL_ATTRIBUTE_RE.fullmatch(attr):
        raise _fail("labelAttributeName", attr,
                    "Member must satisfy regular expression pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,126}")
    if attr.endswith("-metadata"):
        raise ValidationException(f"LabelAttributeName {attr} must not end with -metadata")
    if modality.requires_ref_suffix and not attr.endswith("-ref"):
        raise ValidationException(f"LabelAttributeName {attr} must end with -ref for {modality.task_type}")
    if not modality.requires_ref_suffix and attr.endswith("-ref"):
        raise ValidationException(f"LabelAttributeName {attr} must not end with -ref for {modality.task_type}")


def _check_ui(human: dict[str, Any], modality: Modality, region: str, s3: S3) -> None:
    ui = human.get("UiConfig") or {}
    ui_arn, template = ui.get("HumanTaskUiArn"), ui.get("UiTemplateS3Uri")
    if modality.ui_name is not None:
        expected = f"arn:aws:sagemaker:{region}:{HUMAN_TASK_UI_ACCOUNT}:human-task-ui/{modality.ui_name}"
        if template is not None:
            raise ValidationException(f"{modality.task_type} requires HumanTaskUiArn, not UiTemplateS3Uri")
        if ui_arn != expected:
            raise ValidationException(
                f"HumanTaskUiArn {ui_arn} does not match task type {modality.task_type}; expected {expected}")
        return
    if ui_arn is not None:
        raise ValidationException(f"{modality.task_type} takes a UiTemplateS3Uri, not a HumanTaskUiArn")
    split_s3_path(template, "humanTaskConfig.uiConfig.uiTemplateS3Uri")
    if not s3.exists(template):
        raise ValidationException(f"Cannot read the UI template at {template}")


def _check_task_limits(human: dict[str, Any], modality: Modality) -> None:
    workers = human.get("NumberOfHumanWorkersPerDataObject")
    if modality.media is not MediaKind.IMAGE and workers != 1:
        raise ValidationException(
            f"NumberOfHumanWorkersPerDataObject must be 1 for {modality.task_type}, got {workers}")
    if not isinstance(workers, int) or not 1 <= workers <= 9:
        raise _fail("humanTaskConfig.numberOfHumanWorkersPerDataObject", workers,
                    "Member must have value between 1 and 9")
    limit = human.get("TaskTimeLimitInSeconds")
    max_limit = SHORT_TASK_LIMIT if modality.media is MediaKind.IMAGE else LONG_TASK_LIMIT
    if not isinstance(limit, int) or not 30 <= limit <= max_limit:
        raise ValidationException(f"TaskTimeLimitInSeconds must be between 30 and {max_limit} for "
                                  f"{modality.task_type}, got {limit}")
    lifetime = human.get("TaskAvailabilityLifetimeInSeconds")
    if lifetime is not None and not (isinstance(lifetime, int) and 60 <= lifetime <= 864_000):
        raise _fail("humanTaskConfig.taskAvailabilityLifetimeInSeconds", lifetime,
                    "Member must have value between 60 and 864000")
    count = human.get("MaxConcurrentTaskCount")
    if count is not None and not (isinstance(count, int) and 1 <= count <= 5000):
        raise _fail("humanTaskConfig.maxConcurrentTaskCount", count, "Member must have value between 1 and 5000")


def _read_category_config(uri: Any, modality: Modality, s3: S3) -> dict[str, Any]:
    if uri is None:
        raise ValidationException(f"LabelCategoryConfigS3Uri is required for {modality.task_type}")
    split_s3_path(uri, "labelCategoryConfigS3Uri")
    try:
        config = s3.get_json(uri)
    except json.JSONDecodeError as exc:
        raise ValidationException(f"The label category configuration file {uri} is not valid JSON: {exc}") from None
    except Exception:
        raise ValidationException(f"Cannot read the label category configuration file at {uri}") from None
    labels = config.get("labels") if isinstance(config, dict) else None
    if not isinstance(labels, list) or not labels or not all(
        isinstance(lab, dict) and isinstance(lab.get("label"), str) and lab["label"] for lab in labels
    ):
        raise ValidationException(f"The label category configuration file {uri} needs a non-empty 'labels' "
                                  "list of {\"label\": ...} objects")
    names = [lab["label"] for lab in labels]
    if len(set(names)) != len(names):
        raise ValidationException(f"Duplicate label categories in {uri}")
    if modality.media is MediaKind.VIDEO:
        kind = config.get("annotationType", "BoundingBox")
        if kind not in VIDEO_ANNOTATION_TYPES:
            raise ValidationException(f"annotationType {kind!r} in {uri} is not one of {sorted(VIDEO_ANNOTATION_TYPES)}")
    return config


def _read_manifest(uri: Any, s3: S3) -> list[dict[str, Any]]:
    split_s3_path(uri, "inputConfig.dataSource.s3DataSource.manifestS3Uri")
    try:
        text = s3.get_text(uri)
    except Exception:
        raise ValidationException(f"Cannot read the input manifest at {uri}") from None
    lines: list[dict[str, Any]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except json.JSONDecodeError:
            raise ValidationException(f"Line {number} of the input manifest {uri} is not valid JSON") from None
        if not isinstance(line, dict) or not ({"source-ref", "source"} & set(line)):
            raise ValidationException(f"Line {number} of the input manifest {uri} has no source-ref or source")
        lines.append(line)
    if not lines:
        raise ValidationException(f"The input manifest {uri} is empty")
    return lines
