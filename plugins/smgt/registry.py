"""Modality registry (SPEC section 4): one table from jobModality to what Ground Truth needs.

Everything region- or task-specific that a CreateLabelingJob request carries (task type, UI, the
AWS-owned pre-human-task and consolidation Lambdas, the label-attribute rule) is derived here, so the
config model, the request builder and the local emulator cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# Account that owns the managed human-task UIs in every region.
HUMAN_TASK_UI_ACCOUNT = "394669845002"

# Account that owns the Ground Truth built-in Lambdas (PRE-*/ACS-*) per region.
GT_LAMBDA_ACCOUNTS: dict[str, str] = {
    "us-east-1": "432418664414",
    "us-east-2": "266458841044",
    "us-west-2": "081040173940",
    "eu-west-1": "568282634449",
    "ap-northeast-1": "477331159723",
    "ap-southeast-2": "454466003867",
    "ap-south-1": "565803892007",
    "eu-central-1": "203001061592",
    "ap-northeast-2": "845288260483",
    "eu-west-2": "487402164563",
    "ap-southeast-1": "377565633583",
    "ca-central-1": "918755190332",
}
SUPPORTED_REGIONS = tuple(GT_LAMBDA_ACCOUNTS)


class UnsupportedRegionError(ValueError):
    """Ground Truth's built-in Lambdas are not published in the region."""

    def __init__(self, region: str) -> None:
        super().__init__(
            f"region: Ground Truth built-in task types are not available in {region!r}; "
            f"supported regions: {', '.join(SUPPORTED_REGIONS)}"
        )
        self.region = region


class MediaKind(StrEnum):
    """What a manifest line points at; decides how down-sampling and the emulator treat it."""

    VIDEO = "video"  # source-ref -> sequence file of frames
    POINT_CLOUD = "point_cloud"  # source-ref -> point-cloud sequence file (or a single frame)
    IMAGE = "image"  # source-ref -> one image


@dataclass(frozen=True)
class Modality:
    name: str  # jobModality as users write it
    task_type: str  # GT task type, as in PRE-{task_type} / ACS-{task_type}
    is_audit: bool
    media: MediaKind
    ui_name: str | None  # managed HumanTaskUi name, None when a UiTemplateS3Uri is used
    ui_template: str | None  # file under include/ui_templates/ for template-based tasks
    requires_ref_suffix: bool  # label attribute must end with -ref (else must not)
    output_type: str  # "type" in the output manifest's -metadata
    annotations_key: str | None  # key of the per-frame list in SeqLabel.json (video/point cloud)
    base: str  # the first-level modality an audit adjusts (itself for non-audits)

    def human_task_ui_arn(self, region: str) -> str | None:
        check_region(region)
        if self.ui_name is None:
            return None
        return f"arn:aws:sagemaker:{region}:{HUMAN_TASK_UI_ACCOUNT}:human-task-ui/{self.ui_name}"

    def pre_human_task_lambda_arn(self, region: str) -> str:
        return f"arn:aws:lambda:{region}:{lambda_account(region)}:function:PRE-{self.task_type}"

    def consolidation_lambda_arn(self, region: str) -> str:
        return f"arn:aws:lambda:{region}:{lambda_account(region)}:function:ACS-{self.task_type}"

    def default_label_attribute(self, job_name: str) -> str:
        return f"{job_name}-ref" if self.requires_ref_suffix else job_name

    @property
    def workers_per_object(self) -> int:
        # GT allows only one worker per video / point-cloud object; images use one too by default.
        return 1


def check_region(region: str) -> str:
    if region not in GT_LAMBDA_ACCOUNTS:
        raise UnsupportedRegionError(region)
    return region


def lambda_account(region: str) -> str:
    return GT_LAMBDA_ACCOUNTS[check_region(region)]


def _pair(
    name: str,
    task_type: str,
    media: MediaKind,
    *,
    ui_name: str | None,
    ui_template: str | None = None,
    ref: bool,
    output_type: str,
    annotations_key: str | None = None,
) -> tuple[Modality, Modality]:
    first = Modality(
        name, task_type, False, media, ui_name, ui_template, ref, output_type, annotations_key, name
    )
    audit = Modality(
        f"{name}Audit",
        f"Adjustment{task_type}",
        True,
        media,
        ui_name,
        ui_template,
        ref,
        output_type,
        annotations_key,
        name,
    )
    return first, audit


_TABLE: tuple[tuple[Modality, Modality], ...] = (
    _pair(
        "VideoObjectTracking",
        "VideoObjectTracking",
        MediaKind.VIDEO,
        ui_name="VideoObjectTracking",
        ref=True,
        output_type="groundtruth/video-object-tracking",
        annotations_key="tracking-annotations",
    ),
    _pair(
        "VideoObjectDetection",
        "VideoObjectDetection",
        MediaKind.VIDEO,
        ui_name="VideoObjectDetection",
        ref=True,
        output_type="groundtruth/video-object-detection",
        annotations_key="detection-annotations",
    ),
    _pair(
        "PointCloudObjectDetection",
        "3DPointCloudObjectDetection",
        MediaKind.POINT_CLOUD,
        ui_name="PointCloudObjectDetection",
        ref=False,
        output_type="groundtruth/point_cloud_object_detection",
    ),
    _pair(
        "PointCloudObjectTracking",
        "3DPointCloudObjectTracking",
        MediaKind.POINT_CLOUD,
        ui_name="PointCloudObjectTracking",
        ref=True,
        output_type="groundtruth/point_cloud_object_tracking",
        annotations_key="tracking-annotations",
    ),
    _pair(
        "PointCloudSemanticSegmentation",
        "3DPointCloudSemanticSegmentation",
        MediaKind.POINT_CLOUD,
        ui_name="PointCloudSemanticSegmentation",
        ref=True,
        output_type="groundtruth/point_cloud_single_frame_semantic_segmentation",
    ),
    _pair(
        "BoundingBox",
        "BoundingBox",
        MediaKind.IMAGE,
        ui_name=None,
        ui_template="bounding_box.liquid.html",
        ref=False,
        output_type="groundtruth/object-detection",
    ),
    _pair(
        "SemanticSegmentation",
        "SemanticSegmentation",
        MediaKind.IMAGE,
        ui_name=None,
        ui_template="semantic_segmentation.liquid.html",
        ref=True,
        output_type="groundtruth/semantic-segmentation",
    ),
)

MODALITIES: dict[str, Modality] = {m.name: m for pair in _TABLE for m in pair}
BY_TASK_TYPE: dict[str, Modality] = {m.task_type: m for m in MODALITIES.values()}


class UnknownModalityError(ValueError):
    pass


def get_modality(name: str) -> Modality:
    try:
        return MODALITIES[name]
    except KeyError:
        raise UnknownModalityError(
            f"jobModality: {name!r} is not supported; choose one of {', '.join(sorted(MODALITIES))}"
        ) from None


def modality_for_task_type(task_type: str) -> Modality:
    """Reverse look-up by GT task type (used by the emulator from the Lambda ARN)."""
    try:
        return BY_TASK_TYPE[task_type]
    except KeyError:
        raise UnknownModalityError(f"unknown Ground Truth task type {task_type!r}") from None
