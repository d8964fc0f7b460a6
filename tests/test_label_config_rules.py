"""GT's label category config rules (smgt.label_config_rules): every rule, its limit and its message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from label_config_cases import (
    BOXES,
    CASES,
    CLOUD,
    CLOUD_SEG,
    MASKS,
    VIDEO,
    VIDEO_AUDIT,
    attr,
    case_config,
    video_config,
)

from smgt.label_config_rules import check_label_category_config

ROOT = Path(__file__).resolve().parents[1]
def test_the_notebooks_label_configs_follow_every_rule() -> None:
    for path in (ROOT / "include" / "label_configs").glob("*.json"):
        modality = VIDEO_AUDIT if path.stem.endswith("_audit") else VIDEO
        assert check_label_category_config(json.loads(path.read_text()), modality) == [], path.name


def test_a_valid_config_of_every_kind_passes() -> None:
    assert check_label_category_config(video_config(), VIDEO) == []
    spelled_as_in_gt_examples = video_config(documentVersion="2020-03-01")
    spelled_as_in_gt_examples.pop("document-version")
    assert check_label_category_config(spelled_as_in_gt_examples, VIDEO) == []
    cloud = video_config()
    cloud.pop("annotationType")
    assert check_label_category_config(cloud, CLOUD) == []
    image = {"document-version": "2018-11-28", "labels": [{"label": "Car"}, {"label": "Bus"}]}
    assert check_label_category_config(image, BOXES) == []
    assert check_label_category_config(image, MASKS) == []


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_rule_gives_its_message(case: str) -> None:
    modality, _, fragment = CASES[case]
    problems = check_label_category_config(case_config(case), modality)
    assert any(fragment in p for p in problems), problems


def test_point_cloud_segmentation_ignores_label_attributes_as_gt_does() -> None:
    # GT: label category attributes "are not supported for 3D point cloud semantic segmentation ...
    # they will be ignored"; frame attributes still count.
    config = video_config(labels=[{"label": "Car", "categoryAttributes": [attr(f"a{i}") for i in range(12)]}])
    config.pop("annotationType")
    assert check_label_category_config(config, CLOUD_SEG) == []


def test_notebook_style_attributes_and_long_frame_attribute_names_pass() -> None:
    # The reference notebook (run on GT) writes "attributes" and an 18-character frame attribute
    # name, with a number attribute without minimum/maximum.
    config = video_config(
        labels=[{"label": "Vehicle", "attributes": [attr("Vehicle_Type")]}],
        frameAttributes=[{"name": "Number_Of_Vehicles", "description": "How many?", "type": "number"}],
    )
    assert check_label_category_config(config, VIDEO) == []


def test_every_problem_is_reported_at_once() -> None:
    config = video_config(labels=[{"label": "A" * 20}, {"label": "A" * 20}], annotationType="Box")
    config.pop("document-version")
    problems = check_label_category_config(config, VIDEO)
    assert len(problems) >= 4
    assert [p.split(":", 1)[0] for p in problems] == [
        "document-version", "labels[0].label", "labels[1].label", "labels[1].label", "annotationType"]
