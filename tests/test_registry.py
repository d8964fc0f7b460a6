"""Modality registry: ARNs per modality and region (SPEC section 4)."""

from __future__ import annotations

import pytest

from smgt.registry import MODALITIES, UnsupportedRegionError, get_modality, modality_for_task_type

EXPECTED = {
    # jobModality: (task type, UI name or None, must end with -ref)
    "VideoObjectTracking": ("VideoObjectTracking", "VideoObjectTracking", True),
    "VideoObjectTrackingAudit": ("AdjustmentVideoObjectTracking", "VideoObjectTracking", True),
    "VideoObjectDetection": ("VideoObjectDetection", "VideoObjectDetection", True),
    "VideoObjectDetectionAudit": ("AdjustmentVideoObjectDetection", "VideoObjectDetection", True),
    "PointCloudObjectDetection": ("3DPointCloudObjectDetection", "PointCloudObjectDetection", False),
    "PointCloudObjectDetectionAudit": ("Adjustment3DPointCloudObjectDetection", "PointCloudObjectDetection", False),
    "PointCloudObjectTracking": ("3DPointCloudObjectTracking", "PointCloudObjectTracking", True),
    "PointCloudObjectTrackingAudit": ("Adjustment3DPointCloudObjectTracking", "PointCloudObjectTracking", True),
    "PointCloudSemanticSegmentation": ("3DPointCloudSemanticSegmentation", "PointCloudSemanticSegmentation", True),
    "PointCloudSemanticSegmentationAudit": (
        "Adjustment3DPointCloudSemanticSegmentation", "PointCloudSemanticSegmentation", True),
    "BoundingBox": ("BoundingBox", None, False),
    "BoundingBoxAudit": ("AdjustmentBoundingBox", None, False),
    "SemanticSegmentation": ("SemanticSegmentation", None, True),
    "SemanticSegmentationAudit": ("AdjustmentSemanticSegmentation", None, True),
}


def test_registry_covers_every_modality_of_the_spec():
    assert set(MODALITIES) == set(EXPECTED)


@pytest.mark.parametrize("region,account", [("us-east-1", "432418664414"), ("eu-west-1", "568282634449")])
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_arns_per_modality_and_region(name, region, account):
    task_type, ui, ref = EXPECTED[name]
    modality = get_modality(name)
    assert modality.task_type == task_type
    assert modality.is_audit == name.endswith("Audit")
    assert modality.pre_human_task_lambda_arn(region) == f"arn:aws:lambda:{region}:{account}:function:PRE-{task_type}"
    assert modality.consolidation_lambda_arn(region) == f"arn:aws:lambda:{region}:{account}:function:ACS-{task_type}"
    expected_ui = f"arn:aws:sagemaker:{region}:394669845002:human-task-ui/{ui}" if ui else None
    assert modality.human_task_ui_arn(region) == expected_ui
    assert (modality.ui_template is None) == (ui is not None)  # template-based tasks need a template
    assert modality.default_label_attribute("job-1") == ("job-1-ref" if ref else "job-1")
    assert modality_for_task_type(task_type) is modality


def test_unknown_region_rejected():
    modality = get_modality("VideoObjectTracking")
    for call in (modality.pre_human_task_lambda_arn, modality.consolidation_lambda_arn, modality.human_task_ui_arn):
        with pytest.raises(UnsupportedRegionError, match="'sa-east-1'"):
            call("sa-east-1")


def test_unknown_modality_names_choices():
    with pytest.raises(ValueError, match="jobModality: 'Keypoint' is not supported; choose one of BoundingBox"):
        get_modality("Keypoint")
