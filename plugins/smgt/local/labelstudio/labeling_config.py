"""Ground Truth label category config + modality -> Label Studio 1.23.2 labeling config (XML) and project spec.

Ground Truth's label category config (https://docs.aws.amazon.com/sagemaker/latest/dg/sms-label-cat-config-attributes.html,
"Label category configuration file schema"; same text in awsdocs/amazon-sagemaker-developer-guide
doc_source/sms-label-cat-config-attributes.md):

    labels                    1..30 objects {"label": str (1..16 chars, unique), "categoryAttributes": [...]}
                              (the reference notebook, demo.py, writes the per-label list as "attributes":
                              both keys are read)
    categoryGlobalAttributes  attributes of every label (0..10 per label together with the label's own)
    frameAttributes           0..10 attributes of each video frame / point cloud
    attribute                 {"name" (1..16 chars), "type": "string" | "number", "enum": [1..10 strings],
                               "description", "minimum"/"maximum" (numbers), "isRequired": bool,
                               "editsAllowed"}; string without enum = free text (80 chars for label
                               attributes, 1000 for frame attributes)
    annotationType            video only: BoundingBox (default), Polyline, Polygon, Keypoint
    instructions              {"shortInstruction": < 255 chars, "fullInstruction": < 2048 chars}, HTML allowed
    auditLabelAttributeName   adjustment jobs: the parent job's label attribute

Label category attributes and frame attributes exist for video frame and 3D point cloud jobs only;
the image task types (bounding box, semantic segmentation) take labels alone, so their attributes,
if any, get no control here.

Label Studio side (tag names and attributes checked against the 1.23.2 frontend's tag schema and a
running server; see tests/local/test_labelstudio_convert.py for the captured browser results):

    image BoundingBox            <Image value="$image"> + RectangleLabels (canRotate="false": GT boxes are upright)
    image SemanticSegmentation   <Image value="$image"> + BrushLabels (colors of GT's internal-color-map)
    video (detection/tracking)   <Image valueList="$frames">: one task = the whole frame sequence, regions
                                 carry `item_index`; BoundingBox -> RectangleLabels, Polyline ->
                                 VectorLabels closable="false", Polygon -> PolygonLabels, Keypoint -> KeyPointLabels
    tracking identity            a per-region <Number name="object">: the same number on several frames is
                                 the same object (a frame list has no track object of its own)
    label attributes             per-region Choices (enum) / TextArea (free string) / Number (number), shown
                                 only while a region of a label they belong to is selected
    frame attributes             the same controls with perItem="true": one value per frame

Label Studio's `required` on a per-region control applies to every region, also those of labels the
control is hidden for (measured), so it is set only for global attributes and the object number;
a per-label isRequired is enforced by convert.py instead. perItem `required` is enforced per frame.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

from smgt.registry import MediaKind, Modality

from ..labels_common import PALETTE

# Label Studio project title limits (label_studio/core/settings/base.py PROJECT_TITLE_MIN_LEN/MAX_LEN).
PROJECT_TITLE_MIN = 3
PROJECT_TITLE_MAX = 50
# GT's free-text answer limits (label category config quotas, see the module docstring).
LABEL_TEXT_LIMIT = 80
FRAME_TEXT_LIMIT = 1000

IMAGE_OBJECT = "image"  # <Image value="$image">
FRAMES_OBJECT = "frames"  # <Image valueList="$frames">
TOOL = "label"  # from_name of the labels tag
OBJECT_NUMBER = "object"  # from_name of the tracking identity Number

# GT annotationType -> (Label Studio labels tag, result type, extra tag attributes).
_VIDEO_TOOLS: dict[str, tuple[str, str, dict[str, str]]] = {
    "BoundingBox": ("RectangleLabels", "rectanglelabels", {"canRotate": "false"}),
    "Polyline": ("VectorLabels", "vectorlabels", {"closable": "false", "curves": "false"}),
    "Polygon": ("PolygonLabels", "polygonlabels", {}),
    "Keypoint": ("KeyPointLabels", "keypointlabels", {}),
}


class UnsupportedModality(ValueError):
    """The modality has no Label Studio tool (point clouds): it keeps the simulated workforce."""


@dataclass(frozen=True)
class Attribute:
    """One label-category or frame attribute of the GT config, as one Label Studio control."""

    name: str
    kind: str  # "enum" -> Choices, "text" -> TextArea, "number" -> Number
    enum: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    required: bool = False
    labels: tuple[str, ...] | None = None  # labels it belongs to; None = every label (global) or a frame attribute
    text_limit: int = LABEL_TEXT_LIMIT
    description: str = ""

    @property
    def result_type(self) -> str:
        return {"enum": "choices", "text": "textarea", "number": "number"}[self.kind]

    def applies_to(self, label: str) -> bool:
        return self.labels is None or label in self.labels

    def check(self, value: Any) -> Any:
        """The value as GT writes it; ValueError with a human reason when it is not valid for this attribute."""
        if self.kind == "enum":
            if value not in self.enum:
                raise ValueError(f"{value!r} is not one of {list(self.enum)}")
            return value
        if self.kind == "number":
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"{value!r} is not a number")
            if self.minimum is not None and value < self.minimum:
                raise ValueError(f"{value} is below the minimum {self.minimum}")
            if self.maximum is not None and value > self.maximum:
                raise ValueError(f"{value} is above the maximum {self.maximum}")
            return int(value) if float(value).is_integer() else value
        if not isinstance(value, str):
            raise ValueError(f"{value!r} is not text")
        if len(value) > self.text_limit:
            raise ValueError(f"text of {len(value)} characters, at most {self.text_limit} allowed")
        return value


@dataclass(frozen=True)
class Controls:
    """What every `from_name` in this project's results means; the converter's map back to GT."""

    annotation_type: str  # GT: BoundingBox, Polyline, Polygon, Keypoint, SemanticSegmentation
    video: bool  # a frame list (`item_index` on every region) rather than one image
    tracking: bool  # regions carry an object number (VideoObjectTracking)
    object_name: str  # to_name of every result
    tool_type: str  # result type of the labels tag: rectanglelabels, brushlabels, ...
    labels: tuple[str, ...]  # in GT order: class id = index
    region_attributes: dict[str, Attribute] = field(default_factory=dict)  # from_name -> attribute
    frame_attributes: dict[str, Attribute] = field(default_factory=dict)  # from_name -> attribute

    @property
    def tool(self) -> str:
        return TOOL

    @property
    def object_number(self) -> str | None:
        return OBJECT_NUMBER if self.tracking else None


@dataclass(frozen=True)
class ProjectSpec:
    """A Label Studio project for one labeling job. `payload()` is the body of POST /api/projects/."""

    title: str  # fitted to Label Studio's 3..50 characters
    description: str
    label_config: str  # XML
    expert_instruction: str  # HTML shown as the project's instructions
    controls: Controls

    def payload(self) -> dict[str, Any]:
        return {"title": self.title, "description": self.description, "label_config": self.label_config,
                "expert_instruction": self.expert_instruction, "show_instruction": bool(self.expert_instruction)}


def controls_for(modality: Modality, category_config: dict[str, Any]) -> Controls:
    """The controls a job's project has (pure: tasks.py and convert.py derive the same names).

    Raises UnsupportedModality for point clouds and ValueError naming the field for a malformed config.
    """
    if not isinstance(category_config, dict):
        raise ValueError("label category config: must be a JSON object")
    labels = _labels(category_config)
    if modality.media is MediaKind.IMAGE:
        if modality.base == "BoundingBox":
            return Controls("BoundingBox", False, False, IMAGE_OBJECT, "rectanglelabels", labels)
        if modality.base == "SemanticSegmentation":
            return Controls("SemanticSegmentation", False, False, IMAGE_OBJECT, "brushlabels", labels)
    if modality.media is MediaKind.VIDEO:
        kind = category_config.get("annotationType", "BoundingBox")
        if kind not in _VIDEO_TOOLS:
            raise ValueError(f"annotationType: {kind!r} is not one of {sorted(_VIDEO_TOOLS)}")
        region: dict[str, Attribute] = {}
        for j, spec in enumerate(category_config.get("categoryGlobalAttributes") or []):
            region[f"attr_g{j}"] = _attribute(spec, f"categoryGlobalAttributes[{j}]", None, LABEL_TEXT_LIMIT)
        for i, lab in enumerate(category_config["labels"]):
            for key in ("categoryAttributes", "attributes"):
                for j, spec in enumerate(lab.get(key) or []):
                    region[f"attr_{i}_{key[0]}{j}"] = _attribute(spec, f"labels[{i}].{key}[{j}]", (lab["label"],),
                                                                 LABEL_TEXT_LIMIT)
        frame = {f"frame_{j}": _attribute(spec, f"frameAttributes[{j}]", None, FRAME_TEXT_LIMIT)
                 for j, spec in enumerate(category_config.get("frameAttributes") or [])}
        tracking = modality.base == "VideoObjectTracking"
        return Controls(kind, True, tracking, FRAMES_OBJECT, _VIDEO_TOOLS[kind][1], labels, region, frame)
    raise UnsupportedModality(
        f"{modality.name}: Label Studio has no tool for {modality.media.value} labeling; "
        "this modality keeps the simulated workforce")


def labeling_config(modality: Modality, category_config: dict[str, Any], *, title: str,
                    description: str) -> ProjectSpec:
    """The Label Studio project for a labeling job of `modality` with GT's `category_config`.

    title/description: the job's TaskTitle/TaskDescription, shown in a <Header> above the task.
    Raises UnsupportedModality for point-cloud modalities, ValueError naming the field for a malformed config.
    """
    controls = controls_for(modality, category_config)
    view = ET.Element("View")
    ET.SubElement(view, "Header", value=title or modality.name)
    if description:
        ET.SubElement(view, "Header", value=description, size="6")
    if controls.video:
        ET.SubElement(view, "Image", name=FRAMES_OBJECT, valueList="$frames", zoom="true", zoomControl="true")
        tag, _, extra = _VIDEO_TOOLS[controls.annotation_type]
    else:
        ET.SubElement(view, "Image", name=IMAGE_OBJECT, value="$image", zoom="true", zoomControl="true")
        tag, extra = (("RectangleLabels", {"canRotate": "false"}) if controls.annotation_type == "BoundingBox"
                      else ("BrushLabels", {}))
    tool = ET.SubElement(view, tag, name=TOOL, toName=controls.object_name, **extra)
    for i, label in enumerate(controls.labels):
        ET.SubElement(tool, "Label", value=label, background=PALETTE[i % len(PALETTE)])
    if controls.tracking:
        box = ET.SubElement(view, "View", visibleWhen="region-selected")
        ET.SubElement(box, "Header", value="Object # (the same number on every frame = the same object)", size="6")
        ET.SubElement(box, "Number", name=OBJECT_NUMBER, toName=FRAMES_OBJECT, perRegion="true", min="1",
                      step="1", required="true")
    for name, attr in controls.region_attributes.items():
        shown = {"visibleWhen": "region-selected"}
        # whenLabelValue takes a comma-separated list: a label with a comma cannot be named there.
        if attr.labels is not None and not any("," in lab for lab in attr.labels):
            shown["whenLabelValue"] = ",".join(attr.labels)
        box = ET.SubElement(view, "View", **shown)
        _control(box, name, attr, per="perRegion", required=attr.required and attr.labels is None)
    if controls.frame_attributes:
        ET.SubElement(view, "Header", value="Frame attributes (this frame)", size="5")
        for name, attr in controls.frame_attributes.items():
            _control(view, name, attr, per="perItem", required=attr.required)
    ET.indent(view)
    return ProjectSpec(
        title=_fit_title(title or modality.name),
        description=description,
        label_config=ET.tostring(view, encoding="unicode"),
        expert_instruction=_instructions(category_config.get("instructions")),
        controls=controls,
    )


def _control(parent: ET.Element, name: str, attr: Attribute, *, per: str, required: bool) -> None:
    heading = f"{attr.name}: {attr.description}" if attr.description else attr.name
    ET.SubElement(parent, "Header", value=heading, size="6")
    opts = {per: "true", **({"required": "true"} if required else {})}
    if attr.kind == "enum":
        choices = ET.SubElement(parent, "Choices", name=name, toName=_to_name(parent), choice="single-radio", **opts)
        for value in attr.enum:
            ET.SubElement(choices, "Choice", value=value)
    elif attr.kind == "number":
        bounds = {k: _num(v) for k, v in (("min", attr.minimum), ("max", attr.maximum)) if v is not None}
        ET.SubElement(parent, "Number", name=name, toName=_to_name(parent), **bounds, **opts)
    else:
        ET.SubElement(parent, "TextArea", name=name, toName=_to_name(parent), maxSubmissions="1", editable="true",
                      rows="1", **opts)


def _to_name(_: ET.Element) -> str:
    return FRAMES_OBJECT  # attributes exist for video frame lists only


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _labels(config: dict[str, Any]) -> tuple[str, ...]:
    labels = config.get("labels")
    if not isinstance(labels, list) or not labels:
        raise ValueError("labels: the label category config needs a non-empty list of {\"label\": ...}")
    names = []
    for i, lab in enumerate(labels):
        if not isinstance(lab, dict) or not isinstance(lab.get("label"), str) or not lab["label"]:
            raise ValueError(f"labels[{i}].label: must be a non-empty string")
        names.append(lab["label"])
    if len(set(names)) != len(names):
        raise ValueError(f"labels: label names must be unique, got {names}")
    return tuple(names)


def _attribute(spec: Any, where: str, labels: tuple[str, ...] | None, text_limit: int) -> Attribute:
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not spec["name"]:
        raise ValueError(f"{where}.name: must be a non-empty string")
    kind = spec.get("type", "string")
    enum = spec.get("enum")
    if enum is not None and (not isinstance(enum, list) or not enum or not all(isinstance(v, str) for v in enum)):
        raise ValueError(f"{where}.enum: must be a non-empty list of strings")
    for bound in ("minimum", "maximum"):
        value = spec.get(bound)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ValueError(f"{where}.{bound}: must be a number, got {value!r}")
    if kind == "number":
        return Attribute(spec["name"], "number", minimum=spec.get("minimum"), maximum=spec.get("maximum"),
                         required=bool(spec.get("isRequired")), labels=labels, description=spec.get("description", ""))
    if kind != "string":
        raise ValueError(f"{where}.type: must be \"string\" or \"number\", got {kind!r}")
    return Attribute(spec["name"], "enum" if enum else "text", tuple(enum or ()), required=bool(spec.get("isRequired")),
                     labels=labels, text_limit=text_limit, description=spec.get("description", ""))


def _fit_title(title: str) -> str:
    title = " ".join(title.split())
    if len(title) > PROJECT_TITLE_MAX:
        title = title[: PROJECT_TITLE_MAX - 1] + "…"
    return title.ljust(PROJECT_TITLE_MIN, "_")


def _instructions(instructions: Any) -> str:
    if not isinstance(instructions, dict):
        return ""
    short, full = instructions.get("shortInstruction") or "", instructions.get("fullInstruction") or ""
    if short and full and short.strip() != full.strip():
        return f"{short}<hr>{full}"
    return short or full
