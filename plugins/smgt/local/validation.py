"""CreateLabelingJob validation as Ground Truth does it, before a job exists.

Each rule raises the error code GT returns: malformed fields, unknown task types, mismatched ARNs,
missing or unparsable S3 inputs and missing work teams are `ValidationException`; a name already
taken (by any job ever, ignoring case) is `ResourceInUse` and is checked by the store. Sequence files
referenced by the manifest are read later, while the job runs, as GT does; a bad one fails the job.

Field constraints (required, length, value range, pattern, valid values) are those of the SageMaker
API reference, https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateLabelingJob.html
and the pages of its types (API_HumanTaskConfig.html, API_LabelingJobOutputConfig.html, API_Tag.html,
...). botocore's service model is generated from the same definition, so `check_request` reads them
from it instead of copying them, and reports every violated one at once in the shape AWS uses:
"2 validation errors detected: Value 'a_b' at 'labelingJobName' failed to satisfy constraint: Member
must satisfy regular expression pattern: ...; Value null at 'roleArn' failed to satisfy constraint:
Member must not be null". Rules the reference states in prose follow (`validate_create`): the
TaskTimeLimitInSeconds maximum per task type, the TaskAvailabilityLifetimeInSeconds maximum per
workforce, the LabelAttributeName suffixes, an adjustment's LabelAttributeName differing from the
labels it adjusts, unique tag keys.

The task type is derived from the pre-human-task Lambda ARN (`PRE-<TaskType>`) through the registry,
so this module and the request builder can never disagree on what a modality needs.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import regex

from smgt.registry import (
    GT_LAMBDA_ACCOUNTS,
    HUMAN_TASK_UI_ACCOUNT,
    MediaKind,
    Modality,
    UnknownModalityError,
    get_modality,
    modality_for_task_type,
)

from .errors import ApiError, ValidationException
from .s3io import S3

S3_PATH_RE = re.compile(r"s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(/.*)?")
LAMBDA_RE = re.compile(r"arn:aws:lambda:([a-z0-9-]+):(\d{12}):function:(PRE|ACS)-([A-Za-z0-9]+)")
VIDEO_ANNOTATION_TYPES = {"BoundingBox", "Polyline", "Polygon", "Keypoint"}
# HumanTaskConfig.TaskTimeLimitInSeconds (API_HumanTaskConfig.html): "For image and text labeling
# jobs, the maximum is 8 hours (28,800 seconds). For 3D point cloud and video frame labeling jobs,
# the maximum is 30 days" (the page prints "2952,000 seconds"; 30 days are 2,592,000).
SHORT_TASK_LIMIT = 28_800
LONG_TASK_LIMIT = 2_592_000
# HumanTaskConfig.TaskAvailabilityLifetimeInSeconds (same page): Amazon Mechanical Turk (the public
# work team), at most 12 hours; a private or vendor workforce, at most 30 days.
PUBLIC_LIFETIME_LIMIT = 43_200
PRIVATE_LIFETIME_LIMIT = 2_592_000
PUBLIC_WORKTEAM_RE = re.compile(r"arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]*:\d{12}:workteam/public-crowd/default")


class SerializationException(ApiError):
    """A member of the wrong JSON type (AWS answers these before any constraint is looked at)."""

    code = "SerializationException"


# --------------------------------------------------------------------------------------------------
# Field constraints from the API definition


@functools.cache
def _operation(name: str) -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model("sagemaker").operation_model(name)


@functools.cache
def _pattern(pattern: str) -> Any:
    # Java regular expressions (\p{L} and friends): the `regex` module reads them, `re` does not.
    return regex.compile(pattern)


# Shapes whose pattern AWS prints without the trailing "$" (the names; the others print ^...$).
_OPEN_ENDED = {"LabelingJobName", "LabelAttributeName", "WorkteamName"}


def _shown_pattern(shape: Any) -> str:
    pattern = shape.metadata["pattern"]
    return "^" + pattern + ("" if shape.name in _OPEN_ENDED or pattern.endswith("$") else "$")


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def _shown_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_shown_value(v) for v in value) + "]"
    if isinstance(value, dict):  # as Java prints a structure: {Key=k, Value=v}
        return "{" + ", ".join(f"{k}={_shown_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def _scalar_problems(shape: Any, value: Any, path: str) -> list[str]:
    """The constraints a string or number violates (type errors raise SerializationException)."""
    meta, kind = shape.metadata, shape.type_name
    problems = []
    if kind == "string":
        if not isinstance(value, str):
            raise SerializationException(f"Value at '{path}' must be a string, got {type(value).__name__}")
        if "min" in meta and len(value) < meta["min"]:
            problems.append(f"Member must have length greater than or equal to {meta['min']}")
        if "max" in meta and len(value) > meta["max"]:
            problems.append(f"Member must have length less than or equal to {meta['max']}")
        if "pattern" in meta and not _pattern(meta["pattern"]).fullmatch(value):
            problems.append(f"Member must satisfy regular expression pattern: {_shown_pattern(shape)}")
        if "enum" in meta and value not in meta["enum"]:
            problems.append(f"Member must satisfy enum value set: [{', '.join(meta['enum'])}]")
    elif kind in ("integer", "long", "float", "double"):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or (
                kind in ("integer", "long") and value != int(value)):
            raise SerializationException(f"Value at '{path}' must be a number of type {kind}, got {value!r}")
        if "min" in meta and value < meta["min"]:
            problems.append(f"Member must have value greater than or equal to {meta['min']}")
        if "max" in meta and value > meta["max"]:
            problems.append(f"Member must have value less than or equal to {meta['max']}")
    elif kind == "boolean" and not isinstance(value, bool):
        raise SerializationException(f"Value at '{path}' must be a boolean, got {value!r}")
    return problems


def _walk(shape: Any, value: Any, path: str, errors: list[tuple[str, Any, str]]) -> None:
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            raise SerializationException(f"Value at '{path or 'request'}' must be an object")
        for name in shape.required_members:
            if value.get(name) is None:
                errors.append((".".join(filter(None, (path, _camel(name)))), None, "Member must not be null"))
        for name, member in shape.members.items():
            if value.get(name) is not None:
                _walk(member, value[name], ".".join(filter(None, (path, _camel(name)))), errors)
    elif kind == "list":
        if not isinstance(value, list):
            raise SerializationException(f"Value at '{path}' must be a list")
        meta = shape.metadata
        if "min" in meta and len(value) < meta["min"]:
            errors.append((path, value, f"Member must have length greater than or equal to {meta['min']}"))
        if "max" in meta and len(value) > meta["max"]:
            errors.append((path, value, f"Member must have length less than or equal to {meta['max']}"))
        member = shape.member
        if member.type_name in ("structure", "list", "map"):
            for i, item in enumerate(value, 1):
                _walk(member, item, f"{path}.{i}.member", errors)
        else:  # AWS reports the constraints of scalar members on the list: "Member must satisfy constraint: [...]"
            problems = [p for item in value for p in _scalar_problems(member, item, f"{path}.member")]
            if problems:
                errors.append((path, value, f"Member must satisfy constraint: [{', '.join(dict.fromkeys(problems))}]"))
    elif kind == "map":
        if not isinstance(value, dict):
            raise SerializationException(f"Value at '{path}' must be an object")
        for key, item in value.items():
            _walk(shape.value, item, f"{path}.{key}", errors)
    else:
        errors.extend((path, value, problem) for problem in _scalar_problems(shape, value, path))


def _validation_error(errors: list[tuple[str, Any, str]]) -> ValidationException:
    def shown(value: Any) -> str:
        return "null" if value is None else f"'{_shown_value(value)}'"

    details = "; ".join(f"Value {shown(value)} at '{path}' failed to satisfy constraint: {problem}"
                        for path, value, problem in errors)
    count = len(errors)
    return ValidationException(f"{count} validation error{'s' if count > 1 else ''} detected: {details}")


def check_request(operation: str, request: dict[str, Any]) -> None:
    """Check a SageMaker request against the API definition of `operation` (e.g. "CreateLabelingJob").

    Raises ValidationException listing every violated constraint (required members, lengths, value
    ranges, patterns, valid values) with the member's path as AWS writes it ('humanTaskConfig.taskTitle',
    'tags.2.member.key'), or SerializationException when a member has the wrong JSON type.
    """
    errors: list[tuple[str, Any, str]] = []
    _walk(_operation(operation).input_shape, request, "", errors)
    if errors:
        raise _validation_error(errors)


def _fail(field: str, value: Any, rule: str) -> ValidationException:
    return _validation_error([(field, value, rule)])


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


def _get(data: dict[str, Any], *path: str) -> Any:
    cur: Any = data
    for key in path:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(key)
    return cur


def split_s3_path(uri: str, field: str) -> tuple[str, str]:
    """(bucket, key-or-prefix) of an s3:// URI; the key may be empty (an output path).

    The API also accepts https:// URIs (pattern ^(https|s3)://([^/]+)/?(.*)$); this emulator reads S3
    through s3:// only and says so.
    """
    match = S3_PATH_RE.fullmatch(uri) if isinstance(uri, str) else None
    if not match:
        if isinstance(uri, str) and uri.startswith("https://"):
            raise ValidationException(f"{field}: the local Ground Truth reads s3:// URIs only, got {uri}")
        raise _fail(field, uri, "Member must satisfy regular expression pattern: ^(https|s3)://([^/]+)/?(.*)$")
    return match.group(1), (match.group(2) or "/").lstrip("/")


def validate_create(
    request: dict[str, Any],
    *,
    region: str,
    s3: S3,
    workteam_exists: Callable[[str], bool],
) -> JobSpec:
    """Everything GT checks before CreateLabelingJob answers; the JobSpec of a valid request.

    Raises ValidationException (or SerializationException for a member of the wrong JSON type) naming
    the field, in the order: field constraints of the API definition (all at once), region, task type,
    label attribute, UI, task limits, work team, tags, output bucket, label category config, manifest.
    """
    check_request("CreateLabelingJob", request)
    if region not in GT_LAMBDA_ACCOUNTS:
        raise ValidationException(f"Ground Truth built-in task types are not available in region {region}")
    if _get(request, "InputConfig", "DataSource", "S3DataSource") is None:
        raise ValidationException("InputConfig.DataSource: streaming labeling jobs (SnsDataSource) are not emulated "
                                  "by the local Ground Truth; give an S3DataSource with a ManifestS3Uri")

    modality = _task_modality(request, region)
    _check_label_attribute(request["LabelAttributeName"], modality)

    human = request["HumanTaskConfig"]
    _check_ui(human, modality, region, s3)
    _check_task_limits(human, modality)
    team = human["WorkteamArn"]
    if not workteam_exists(team):
        raise ValidationException(f"Workteam {team} does not exist")
    _check_tags(request.get("Tags") or [])

    out_bucket, out_prefix = split_s3_path(request["OutputConfig"]["S3OutputPath"], "outputConfig.s3OutputPath")
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
        # API_CreateLabelingJob.html, LabelAttributeName: "If you are creating an adjustment or verification
        # labeling job, you must use a different LabelAttributeName than the one used in the original labeling job."
        if request["LabelAttributeName"] == audit_attr:
            raise ValidationException(
                f"LabelAttributeName {audit_attr} is the label attribute of the labels to adjust "
                "(auditLabelAttributeName); an adjustment job must use a different LabelAttributeName")
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


def _check_label_attribute(attr: str, modality: Modality) -> None:
    """API_CreateLabelingJob.html, LabelAttributeName: "The name can't end with "-metadata"", and must end
    with "-ref" exactly for the task types listed there (semantic segmentation, video frame object
    detection and tracking, 3D point cloud semantic segmentation and object tracking, and their
    adjustments); the registry's requires_ref_suffix follows that list. Length and pattern: check_request."""
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
    """Limits the API reference states in prose (ranges of the API definition: check_request)."""
    workers = human["NumberOfHumanWorkersPerDataObject"]
    if modality.media is not MediaKind.IMAGE and workers != 1:
        raise ValidationException(
            f"NumberOfHumanWorkersPerDataObject must be 1 for {modality.task_type}, got {workers}")
    max_limit = SHORT_TASK_LIMIT if modality.media is MediaKind.IMAGE else LONG_TASK_LIMIT
    if human["TaskTimeLimitInSeconds"] > max_limit:
        raise _fail("humanTaskConfig.taskTimeLimitInSeconds", human["TaskTimeLimitInSeconds"],
                    f"Member must have value less than or equal to {max_limit}")
    lifetime = human.get("TaskAvailabilityLifetimeInSeconds")
    public = bool(PUBLIC_WORKTEAM_RE.fullmatch(human["WorkteamArn"]))
    max_lifetime = PUBLIC_LIFETIME_LIMIT if public else PRIVATE_LIFETIME_LIMIT
    if lifetime is not None and lifetime > max_lifetime:
        raise _fail("humanTaskConfig.taskAvailabilityLifetimeInSeconds", lifetime,
                    f"Member must have value less than or equal to {max_lifetime}")


def _check_tags(tags: list[dict[str, Any]]) -> None:
    # API_Tag.html: "Tag keys must be unique per resource." (counts, lengths, pattern: check_request)
    keys = [t["Key"] for t in tags]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise ValidationException(f"Tags: duplicate tag keys {duplicates}; tag keys must be unique per resource")


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
