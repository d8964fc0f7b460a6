"""GT label category config cases shared by the unit, API and DAG tests of the pre-flight.

`CASES[name] = (modality, changes to video_config(), fragment of the expected message)`; the
sources of each limit are cited in plugins/smgt/label_config_rules.py.
"""

from __future__ import annotations

import copy
from typing import Any

from smgt.registry import get_modality

VIDEO = get_modality("VideoObjectTracking")
VIDEO_AUDIT = get_modality("VideoObjectTrackingAudit")
CLOUD = get_modality("PointCloudObjectTracking")
CLOUD_SEG = get_modality("PointCloudSemanticSegmentation")
BOXES = get_modality("BoundingBox")
MASKS = get_modality("SemanticSegmentation")


def video_config(**changes) -> dict:
    config = {
        "document-version": "2020-08-15",
        "labels": [{"label": "Vehicle", "categoryAttributes": [
            {"name": "Moving", "type": "string", "enum": ["Stationary", "Dynamic"]}]}],
        "frameAttributes": [{"name": "Weather", "description": "How is the weather?", "type": "string",
                             "enum": ["Sunny", "Rain"]}],
        "instructions": {"shortInstruction": "Box the vehicles.", "fullInstruction": "<p>Box every vehicle.</p>"},
        "annotationType": "BoundingBox",
    }
    config.update(changes)
    return config


def attr(name: str, **fields) -> dict:
    return {"name": name, "type": "string", "enum": ["a", "b"], **fields}


def free_text(name: str) -> dict:
    return {"name": name, "type": "string"}


CASES = {
    "not an object": (VIDEO, None, "must be a JSON object, got list"),
    "version missing": (VIDEO, {"document-version": "DROP"}, "document-version: required"),
    "version not a date": (VIDEO, {"document-version": "latest"}, "document-version: 'latest' is not a YYYY-MM-DD"),
    "labels missing": (VIDEO, {"labels": "DROP"}, "labels: required"),
    "labels not a list": (VIDEO, {"labels": {"label": "Car"}}, "labels: must be a list"),
    "no labels": (VIDEO, {"labels": []}, "labels: at least one label is required"),
    "label without name": (VIDEO, {"labels": [{"categoryAttributes": []}]}, "labels[0].label: required"),
    "31 video labels": (VIDEO, {"labels": [{"label": f"L{i}"} for i in range(31)]},
                        "labels: 31 labels; Ground Truth allows at most 30 for VideoObjectTracking"),
    "31 point-cloud labels": (CLOUD, {"labels": [{"label": f"L{i}"} for i in range(31)], "annotationType": "DROP"},
                              "labels: 31 labels; Ground Truth allows at most 30 for PointCloudObjectTracking"),
    "51 box labels": (BOXES, {"labels": [{"label": f"L{i}"} for i in range(51)], "annotationType": "DROP"},
                      "labels: 51 labels; Ground Truth allows at most 50 for BoundingBox"),
    "17-char video label": (VIDEO, {"labels": [{"label": "A" * 17}]},
                            "labels[0].label: 'AAAAAAAAAAAAAAAAA' has 17 characters; Ground Truth allows at most 16"),
    "257-char image label": (BOXES, {"labels": [{"label": "A" * 257}], "annotationType": "DROP"},
                             "has 257 characters; Ground Truth allows at most 256"),
    "duplicate labels": (VIDEO, {"labels": [{"label": "Car"}, {"label": "Bus"}, {"label": "Car"}]},
                         "labels[2].label: 'Car' duplicates labels[0] (labels must be unique)"),
    "label editsAllowed": (VIDEO_AUDIT, {"labels": [{"label": "Car", "editsAllowed": "some"}]},
                           "labels[0].editsAllowed: 'some' must be \"none\" or \"any\""),
    "unknown video annotationType": (VIDEO, {"annotationType": "Cuboid"},
                                     "annotationType: 'Cuboid' is not one of BoundingBox, Polyline, Polygon, Keypoint"),
    "annotationType on point clouds": (CLOUD, {}, "annotationType: Ground Truth supports annotationType only for video"),
    "annotationType on images": (BOXES, {"annotationType": "Polygon"}, "not for BoundingBox; remove it"),
    "audit attribute on a first-level job": (VIDEO, {"auditLabelAttributeName": "x-ref"},
                                             "auditLabelAttributeName: only adjustment (audit) jobs take it"),
    "11 attributes on a label": (VIDEO, {"categoryGlobalAttributes": [attr(f"g{i}") for i in range(4)],
                                         "labels": [{"label": "Car", "categoryAttributes": [attr(f"a{i}") for i in range(7)]}]},
                                 "labels[0]: 11 label category attributes (7 own + 4 global); Ground Truth allows at most 10"),
    "6 free-text label attributes": (VIDEO, {"labels": [{"label": "Car", "categoryAttributes": [free_text(f"t{i}") for i in range(6)]}]},
                                     "labels[0]: 6 free-form text attributes"),
    "17-char attribute name": (VIDEO, {"labels": [{"label": "Car", "categoryAttributes": [attr("N" * 17)]}]},
                               "labels[0].categoryAttributes[0].name: 'NNNNNNNNNNNNNNNNN' has 17 characters; Ground Truth allows at most 16"),
    "attribute without name": (VIDEO, {"categoryGlobalAttributes": [{"type": "string"}]},
                               "categoryGlobalAttributes[0].name: required"),
    "attribute of an unknown type": (VIDEO, {"labels": [{"label": "Car", "attributes": [{"name": "x", "type": "bool"}]}]},
                                     "labels[0].attributes[0].type: 'bool'; must be \"string\" or \"number\""),
    "129-char description": (VIDEO, {"categoryGlobalAttributes": [attr("x", description="d" * 129)]},
                             "categoryGlobalAttributes[0].description: has 129 characters; Ground Truth allows at most 128"),
    "11 enum values": (VIDEO, {"categoryGlobalAttributes": [attr("x", enum=[f"v{i}" for i in range(11)])]},
                       "categoryGlobalAttributes[0].enum: 11 values; Ground Truth allows at most 10"),
    "empty enum": (VIDEO, {"categoryGlobalAttributes": [attr("x", enum=[])]},
                   "categoryGlobalAttributes[0].enum: must be a list of 1 to 10 strings"),
    "17-char enum value": (VIDEO, {"categoryGlobalAttributes": [attr("x", enum=["V" * 17])]},
                           "categoryGlobalAttributes[0].enum[0]: 'VVVVVVVVVVVVVVVVV' has 17 characters"),
    "enum on a number": (VIDEO, {"categoryGlobalAttributes": [{"name": "x", "type": "number", "enum": ["1"]}]},
                         "categoryGlobalAttributes[0].enum: only a \"string\" attribute takes an enum"),
    "minimum above maximum": (VIDEO, {"categoryGlobalAttributes": [{"name": "x", "type": "number", "minimum": 5, "maximum": 1}]},
                              "categoryGlobalAttributes[0]: minimum 5 is greater than maximum 1"),
    "fractional minimum": (VIDEO, {"categoryGlobalAttributes": [{"name": "x", "type": "number", "minimum": 0.5}]},
                           "categoryGlobalAttributes[0].minimum: 0.5 must be an integer"),
    "isRequired not a boolean": (VIDEO, {"categoryGlobalAttributes": [attr("x", isRequired="yes")]},
                                 "categoryGlobalAttributes[0].isRequired: must be true or false"),
    "attribute editsAllowed": (VIDEO_AUDIT, {"categoryGlobalAttributes": [attr("x", editsAllowed="never")]},
                               "categoryGlobalAttributes[0].editsAllowed: 'never' must be"),
    "global and own attribute with one name": (VIDEO, {"categoryGlobalAttributes": [attr("occluded")],
                                                       "labels": [{"label": "Car", "categoryAttributes": [attr("occluded")]}]},
                                               "labels[0].categoryAttributes[0].name: 'occluded' is also a categoryGlobalAttributes name"),
    "11 frame attributes": (VIDEO, {"frameAttributes": [attr(f"f{i}", description="d") for i in range(11)]},
                            "frameAttributes: 11 attributes; Ground Truth allows at most 10"),
    "6 free-text frame attributes": (VIDEO, {"frameAttributes": [free_text(f"f{i}") | {"description": "d"} for i in range(6)]},
                                     "frameAttributes: 6 free-form text attributes"),
    "frame attribute without description": (VIDEO, {"frameAttributes": [attr("Weather")]},
                                            "frameAttributes[0].description: required for a frame attribute"),
    "duplicate frame attribute": (VIDEO, {"frameAttributes": [attr("w", description="d"), attr("w", description="d")]},
                                  "frameAttributes[1].name: 'w' is used twice in frameAttributes"),
    "short instruction of 255 chars": (VIDEO, {"instructions": {"shortInstruction": "s" * 255, "fullInstruction": "f"}},
                                       "instructions.shortInstruction: has 255 characters; Ground Truth needs it under 255"),
    "full instruction of 2048 chars": (VIDEO, {"instructions": {"shortInstruction": "s", "fullInstruction": "f" * 2048}},
                                       "instructions.fullInstruction: has 2048 characters; Ground Truth needs it under 2048"),
    "instructions without full": (CLOUD, {"instructions": {"shortInstruction": "s"}, "annotationType": "DROP"},
                                  "instructions.fullInstruction: required when instructions are given"),
}




def case_config(name: str) -> Any:
    """The config of one case: video_config() with the case's changes ("DROP" removes a key)."""
    _, changes, _ = CASES[name]
    if changes is None:
        return ["not", "an", "object"]
    config = copy.deepcopy(video_config())
    for key, value in changes.items():
        if value == "DROP":
            config.pop(key, None)
        else:
            config[key] = value
    return config
