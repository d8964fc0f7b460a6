"""Ground Truth's documented rules for label category configuration files, per task type.

`check_label_category_config(config, modality)` returns every problem of one parsed config as
text naming the field (e.g. ``labels[3].label: 'Very-long-label-name' has 20 characters; ...``);
an empty list means the config follows every rule below. Plain Python: no AWS, no Airflow.

Where each rule comes from (the sources are cited again next to each limit):

- API: the `LabelCategoryConfigS3Uri` member of CreateLabelingJob,
  https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateLabelingJob.html (the same
  text ships in botocore's service model): the `{"document-version", "labels": [{"label"}...]}`
  format, at least one label, every label unique.
- QUOTAS: "Input Data Quotas", https://docs.aws.amazon.com/sagemaker/latest/dg/input-data-limits.html
  (awsdocs/amazon-sagemaker-developer-guide doc_source/input-data-limits.md): label category
  quotas per task type through the API, label names at most 256 characters.
- ATTRS: "Labeling category configuration file with label category and frame attributes
  reference", https://docs.aws.amazon.com/sagemaker/latest/dg/sms-label-cat-config-attributes.html
  (doc_source/sms-label-cat-config-attributes.md): the schema for video frame and 3D point cloud
  jobs (`annotationType`, `categoryGlobalAttributes`, `categoryAttributes`, `frameAttributes`,
  `instructions`, `auditLabelAttributeName`, `editsAllowed`) and its quota table.

Deliberately not enforced, because what ran on GT contradicts the table: `minimum` and `maximum` of
a `"number"` attribute (the table says required; the page's own examples and the reference
notebook omit them), and the 16-character name quota for *frame* attributes (the reference
notebook's frame attribute is "Number_Of_Vehicles", 18 characters; the quota dates from the page's
earlier version, which had label category attributes only, and is kept for those). Label attributes
are read under `categoryAttributes` and under `attributes` (the reference notebook's key).
"""

from __future__ import annotations

import re
from typing import Any

from smgt.registry import MediaKind, Modality

# API: "document-version" in the documented format; ATTRS' examples write "documentVersion".
VERSION_KEYS = ("document-version", "documentVersion")
VERSION_RE = re.compile(r"\d{4}-\d{2}-\d{2}")

# ATTRS "annotationType ... Accepted Parameters: BoundingBox, Polyline, Polygon, Keypoint;
# Default: BoundingBox"; "The parameter annotationType is only supported for video frame labeling jobs."
VIDEO_ANNOTATION_TYPES = ("BoundingBox", "Polyline", "Polygon", "Keypoint")

# ATTRS quota table ("Label and label category attribute quotas"), video frame and 3D point cloud jobs.
SEQUENCE_TASK_MAX_LABELS = 30  # Labels: min 1, max 30 (QUOTAS: 30 for every video / 3D task type too)
SEQUENCE_TASK_LABEL_CHARS = 16  # Label name character quota: 1..16
MAX_ATTRIBUTES_PER_LABEL = 10  # sum of categoryAttributes and categoryGlobalAttributes
MAX_FREE_TEXT_ATTRIBUTES_PER_LABEL = 5  # free-form text label category attributes per label
MAX_FRAME_ATTRIBUTES = 10  # Frame attributes: 0..10
MAX_FREE_TEXT_FRAME_ATTRIBUTES = 5  # free-form text entry attributes in frameAttributes
ATTRIBUTE_NAME_CHARS = 16  # Attribute name character quota: 1..16 (label category attributes; see above)
ATTRIBUTE_DESCRIPTION_CHARS = 128  # Attribute description character quota: 0..128
ATTRIBUTE_TYPES = ("string", "number")  # type: "Required Values: "string" or "number""
MAX_ENUM_VALUES = 10  # Allowed values in the enum list for a string attribute: 1..10
ENUM_VALUE_CHARS = 16  # Character quota for a value in enum list: 1..16
EDITS_ALLOWED = ("none", "any")  # editsAllowed: "none" or "any" (default)
# ATTRS "instructions": "Short instructions must be under 255 characters and long instruction must
# be under 2,048 characters."
SHORT_INSTRUCTION_LIMIT = 255
FULL_INSTRUCTION_LIMIT = 2048

# QUOTAS "Label category names cannot exceed 256 characters"; "Label Category Quota - API":
# Bounding box 50; Semantic segmentation without active learning: unlimited (this package never
# turns on automated labeling).
LABEL_CHARS = 256
IMAGE_MAX_LABELS: dict[str, int | None] = {"BoundingBox": 50, "SemanticSegmentation": None}


def _chars(value: str) -> str:
    return f"{len(value)} character{'s' if len(value) != 1 else ''}"


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_sequence_task(modality: Modality) -> bool:
    """Video frame and 3D point cloud task types: the ATTRS schema and quotas apply to them."""
    return modality.media in (MediaKind.VIDEO, MediaKind.POINT_CLOUD)


def label_attributes(label: dict[str, Any]) -> tuple[str, list[Any]] | None:
    """(key, list) of a label's own attributes: `categoryAttributes` (GT's name) or `attributes`."""
    for key in ("categoryAttributes", "attributes"):
        if key in label:
            return key, label[key]
    return None


def check_label_category_config(config: Any, modality: Modality) -> list[str]:
    """Every way `config` breaks GT's documented rules for `modality`'s task type (empty: none).

    `config` is the parsed JSON of the file. Messages name the field and the limit, e.g.
    ``labels: 31 labels; Ground Truth allows at most 30 for VideoObjectTracking``.
    """
    if not isinstance(config, dict):
        return [f"must be a JSON object, got {type(config).__name__}"]
    problems: list[str] = []
    task = modality.name
    _check_version(config, problems)
    labels = _check_labels(config, modality, problems)

    kind = config.get("annotationType")
    if modality.media is MediaKind.VIDEO:
        if kind is not None and kind not in VIDEO_ANNOTATION_TYPES:
            problems.append(
                f"annotationType: {_short(kind)} is not one of {', '.join(VIDEO_ANNOTATION_TYPES)} "
                f"(Ground Truth's video frame annotation types; default BoundingBox)"
            )
    elif kind is not None:
        problems.append(
            f"annotationType: Ground Truth supports annotationType only for video frame labeling jobs, "
            f"not for {task}; remove it"
        )

    audit_attribute = config.get("auditLabelAttributeName")
    if audit_attribute is not None and not modality.is_audit:
        problems.append(
            f"auditLabelAttributeName: only adjustment (audit) jobs take it; {task} is not one "
            "(for an audit job this package fills it from the chained parent)"
        )

    if is_sequence_task(modality):
        # ATTRS: label category attributes are "not supported for 3D point cloud semantic
        # segmentation task types ... they will be ignored", so only their limits elsewhere matter.
        if modality.base != "PointCloudSemanticSegmentation":
            _check_label_attributes(config, labels, problems)
        _check_frame_attributes(config, problems)
        _check_instructions(config, problems)
    return problems


def _check_version(config: dict[str, Any], problems: list[str]) -> None:
    present = [key for key in VERSION_KEYS if key in config]
    if not present:
        problems.append(
            'document-version: required (Ground Truth\'s format starts with "document-version", e.g. '
            '"2018-11-28"; its video and 3D examples write "documentVersion": "2020-03-01")'
        )
        return
    for key in present:
        value = config[key]
        if not isinstance(value, str) or not VERSION_RE.fullmatch(value):
            problems.append(f"{key}: {_short(value)} is not a YYYY-MM-DD version string")


def _check_labels(config: dict[str, Any], modality: Modality, problems: list[str]) -> list[dict[str, Any]]:
    labels = config.get("labels")
    task = modality.name
    if labels is None:
        problems.append('labels: required (a list of {"label": <name>} objects)')
        return []
    if not isinstance(labels, list):
        problems.append(f"labels: must be a list of {{\"label\": <name>}} objects, got {type(labels).__name__}")
        return []
    if not labels:
        # API: "the minimum number of label categories required is one" (two for classification).
        problems.append("labels: at least one label is required")
        return []
    if is_sequence_task(modality):
        max_labels: int | None = SEQUENCE_TASK_MAX_LABELS
        max_chars = SEQUENCE_TASK_LABEL_CHARS
    else:
        max_labels, max_chars = IMAGE_MAX_LABELS.get(modality.base), LABEL_CHARS
    if max_labels is not None and len(labels) > max_labels:
        problems.append(f"labels: {len(labels)} labels; Ground Truth allows at most {max_labels} for {task}")

    good: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for i, label in enumerate(labels):
        where = f"labels[{i}]"
        if not isinstance(label, dict):
            problems.append(f"{where}: must be a JSON object with a \"label\", got {type(label).__name__}")
            continue
        name = label.get("label")
        if not isinstance(name, str) or not name:
            problems.append(f"{where}.label: required, a non-empty string")
            continue
        if len(name) > max_chars:
            problems.append(
                f"{where}.label: {_short(name)} has {_chars(name)}; Ground Truth allows at most {max_chars} for {task}"
            )
        if name in seen:
            # API: "Each label category must be unique, you cannot specify duplicate label categories."
            problems.append(f"{where}.label: {name!r} duplicates labels[{seen[name]}] (labels must be unique)")
        else:
            seen[name] = i
        edits = label.get("editsAllowed")
        if edits is not None and edits not in EDITS_ALLOWED:
            problems.append(f"{where}.editsAllowed: {_short(edits)} must be \"none\" or \"any\"")
        good.append(label)
    return good


def _attribute_list(value: Any, where: str, problems: list[str]) -> list[tuple[str, dict[str, Any]]]:
    if value is None:
        return []
    if not isinstance(value, list):
        problems.append(f"{where}: must be a list of attribute objects, got {type(value).__name__}")
        return []
    items = []
    for i, attribute in enumerate(value):
        if isinstance(attribute, dict):
            items.append((f"{where}[{i}]", attribute))
        else:
            problems.append(f"{where}[{i}]: must be a JSON object, got {type(attribute).__name__}")
    return items


def _is_free_text(attribute: dict[str, Any]) -> bool:
    # ATTRS: "string" without an enum: "workers can enter free form text".
    return attribute.get("type") == "string" and "enum" not in attribute


def _check_attribute(where: str, attribute: dict[str, Any], problems: list[str], *, frame: bool) -> None:
    name = attribute.get("name")
    if not isinstance(name, str) or not name:
        problems.append(f"{where}.name: required, a non-empty string")
    elif len(name) > ATTRIBUTE_NAME_CHARS and not frame:
        problems.append(
            f"{where}.name: {_short(name)} has {_chars(name)}; Ground Truth allows at most {ATTRIBUTE_NAME_CHARS}"
        )
    kind = attribute.get("type")
    if kind not in ATTRIBUTE_TYPES:
        problems.append(f"{where}.type: {'required' if kind is None else _short(kind)}; must be \"string\" or \"number\"")
    description = attribute.get("description")
    if description is None:
        if frame:  # ATTRS: description is required for frameAttributes only
            problems.append(f"{where}.description: required for a frame attribute")
    elif not isinstance(description, str):
        problems.append(f"{where}.description: must be a string")
    elif len(description) > ATTRIBUTE_DESCRIPTION_CHARS:
        problems.append(
            f"{where}.description: has {_chars(description)}; Ground Truth allows at most "
            f"{ATTRIBUTE_DESCRIPTION_CHARS}"
        )
    if "enum" in attribute:
        _check_enum(where, attribute["enum"], kind, problems)
    for bound in ("minimum", "maximum"):
        value = attribute.get(bound)
        if value is None:
            continue
        if kind != "number":
            problems.append(f"{where}.{bound}: only a \"number\" attribute takes minimum and maximum")
        elif isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{where}.{bound}: {_short(value)} must be an integer")
    low, high = attribute.get("minimum"), attribute.get("maximum")
    if isinstance(low, int) and isinstance(high, int) and low > high:
        problems.append(f"{where}: minimum {low} is greater than maximum {high}")
    required = attribute.get("isRequired")
    if required is not None and not isinstance(required, bool):
        problems.append(f"{where}.isRequired: must be true or false")
    edits = attribute.get("editsAllowed")
    if edits is not None and edits not in EDITS_ALLOWED:
        problems.append(f"{where}.editsAllowed: {_short(edits)} must be \"none\" or \"any\"")


def _check_enum(where: str, enum: Any, kind: Any, problems: list[str]) -> None:
    if kind != "string":
        problems.append(f"{where}.enum: only a \"string\" attribute takes an enum")
    if not isinstance(enum, list) or not enum:
        problems.append(f"{where}.enum: must be a list of 1 to {MAX_ENUM_VALUES} strings")
        return
    if len(enum) > MAX_ENUM_VALUES:
        problems.append(f"{where}.enum: {len(enum)} values; Ground Truth allows at most {MAX_ENUM_VALUES}")
    for i, value in enumerate(enum):
        if not isinstance(value, str) or not value:
            problems.append(f"{where}.enum[{i}]: must be a non-empty string")
        elif len(value) > ENUM_VALUE_CHARS:
            problems.append(
                f"{where}.enum[{i}]: {_short(value)} has {_chars(value)}; Ground Truth allows at most {ENUM_VALUE_CHARS}"
            )


def _check_label_attributes(config: dict[str, Any], labels: list[dict[str, Any]], problems: list[str]) -> None:
    global_attrs = _attribute_list(config.get("categoryGlobalAttributes"), "categoryGlobalAttributes", problems)
    for where, attribute in global_attrs:
        _check_attribute(where, attribute, problems, frame=False)
    global_names = {a.get("name") for _, a in global_attrs if isinstance(a.get("name"), str)}
    global_free = sum(_is_free_text(a) for _, a in global_attrs)
    for i, label in enumerate(labels):
        own = label_attributes(label)
        key, value = own if own else ("categoryAttributes", None)
        attrs = _attribute_list(value, f"labels[{i}].{key}", problems)
        names: set[str] = set()
        for where, attribute in attrs:
            _check_attribute(where, attribute, problems, frame=False)
            name = attribute.get("name")
            if isinstance(name, str) and name in global_names:
                # ATTRS: "Global label category attributes and label specific label category
                # attributes cannot have the same name."
                problems.append(f"{where}.name: {name!r} is also a categoryGlobalAttributes name")
            elif isinstance(name, str) and name in names:
                problems.append(f"{where}.name: {name!r} is used twice for label {label['label']!r}")
            if isinstance(name, str):
                names.add(name)
        total = len(attrs) + len(global_attrs)
        if total > MAX_ATTRIBUTES_PER_LABEL:
            problems.append(
                f"labels[{i}]: {total} label category attributes ({len(attrs)} own + {len(global_attrs)} global); "
                f"Ground Truth allows at most {MAX_ATTRIBUTES_PER_LABEL} per label"
            )
        free = sum(_is_free_text(a) for _, a in attrs) + global_free
        if free > MAX_FREE_TEXT_ATTRIBUTES_PER_LABEL:
            problems.append(
                f"labels[{i}]: {free} free-form text attributes (type \"string\" without enum); Ground Truth "
                f"allows at most {MAX_FREE_TEXT_ATTRIBUTES_PER_LABEL} per label"
            )


def _check_frame_attributes(config: dict[str, Any], problems: list[str]) -> None:
    attrs = _attribute_list(config.get("frameAttributes"), "frameAttributes", problems)
    names: set[str] = set()
    for where, attribute in attrs:
        _check_attribute(where, attribute, problems, frame=True)
        name = attribute.get("name")
        if isinstance(name, str) and name in names:
            problems.append(f"{where}.name: {name!r} is used twice in frameAttributes")
        if isinstance(name, str):
            names.add(name)
    if len(attrs) > MAX_FRAME_ATTRIBUTES:
        problems.append(
            f"frameAttributes: {len(attrs)} attributes; Ground Truth allows at most {MAX_FRAME_ATTRIBUTES}"
        )
    free = sum(_is_free_text(a) for _, a in attrs)
    if free > MAX_FREE_TEXT_FRAME_ATTRIBUTES:
        problems.append(
            f"frameAttributes: {free} free-form text attributes (type \"string\" without enum); Ground Truth "
            f"allows at most {MAX_FREE_TEXT_FRAME_ATTRIBUTES}"
        )


def _check_instructions(config: dict[str, Any], problems: list[str]) -> None:
    instructions = config.get("instructions")
    if instructions is None:
        return  # ATTRS: instructions are optional
    if not isinstance(instructions, dict):
        problems.append('instructions: must be an object {"shortInstruction": ..., "fullInstruction": ...}')
        return
    for key, limit in (("shortInstruction", SHORT_INSTRUCTION_LIMIT), ("fullInstruction", FULL_INSTRUCTION_LIMIT)):
        text = instructions.get(key)
        if text is None:
            problems.append(f"instructions.{key}: required when instructions are given")
        elif not isinstance(text, str):
            problems.append(f"instructions.{key}: must be a string")
        elif len(text) >= limit:
            problems.append(
                f"instructions.{key}: has {_chars(text)}; Ground Truth needs it under {limit} characters"
            )
