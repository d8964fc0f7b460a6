"""The notebook's 4-job batch labeled by people in Label Studio (a scripted stand-in using only Label
Studio's REST API), on the local deployment with the Label Studio workforce and Airflow.

Level 1: vehicle boxes (with object numbers, attributes and the frame attribute) and lane polylines
on every frame; the batch waits; 50 % is posted; level 2 opens pre-filled with the level-1 labels on
exactly the sampled frames; the reviewer moves one box and passes the rest; the batch completes and
the outputs carry the submitted geometry within 1 px, the moved box adjusted.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests
from labelstudio_annotator import ScriptedAnnotator, login_session, whoami
from sample_batches import notebook_batch

from smgt.deployment import LocalDeployment
from smgt.local.references import parse_mot

from .deployment_helpers import create_batch, show, wait_batch, wait_until

FRAME_SIZE = (320, 180)  # the demo video
MOVE_PX = 12  # how far the reviewer moves one box


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with LocalDeployment(tmp_path_factory.mktemp("ls-deployment"), workforce="labelstudio",
                         labelstudio_poll_seconds=1.0) as deployment:
        yield deployment


def s3_json(local: LocalDeployment, uri: str) -> Any:
    bucket, key = uri[5:].split("/", 1)
    return json.loads(local.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


def s3_lines(local: LocalDeployment, uri: str) -> list[dict[str, Any]]:
    bucket, key = uri[5:].split("/", 1)
    body = local.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    return [json.loads(line) for line in body.splitlines() if line.strip()]


def references(local: LocalDeployment) -> tuple[dict[int, list], list[list[tuple[float, float]]]]:
    """The demo video's boxes (MOT gt.txt) and lanes: what the stand-in sees and draws."""
    bucket = local.settings.input_bucket
    s3 = local.client("s3")
    gt = parse_mot(s3.get_object(Bucket=bucket, Key="MOT17/train/MOT17-13-SDP/gt/gt.txt")["Body"].read().decode())
    lanes = json.loads(s3.get_object(Bucket=bucket, Key="MOT17/train/MOT17-13-SDP/gt/lanes.json")["Body"].read())
    return gt, [[tuple(p) for p in lane] for lane in lanes["lanes"]]


def frame_number(name: str) -> int:
    return int(name.split(".")[0])


def label_vehicles(annotator: ScriptedAnnotator, project: dict[str, Any], gt: dict[int, list]) -> dict:
    """Draw every reference box on every frame; returns {(frame name, track id): (l, t, w, h)}."""
    controls = annotator.controls(project)
    [task] = annotator.tasks(project["id"])
    drawn, result = {}, []
    for item, name in enumerate(task["data"]["frame_names"]):
        boxes = gt.get(frame_number(name), [])
        for b in boxes:
            drawn[(name, b.track_id)] = (b.left, b.top, b.width, b.height)
            result += annotator.region(controls, label="Vehicle", item=item, size=FRAME_SIZE,
                                       box=(b.left, b.top, b.width, b.height), number=b.track_id,
                                       attributes={"Moving": "Dynamic", "Vehicle_Type": "Car"})
        result.append(annotator.frame_value(controls, "Number_Of_Vehicles", item, len(boxes)))
    annotator.submit(task["id"], result)
    return drawn


def label_lanes(annotator: ScriptedAnnotator, project: dict[str, Any], lanes: list) -> dict:
    controls = annotator.controls(project)
    [task] = annotator.tasks(project["id"])
    drawn, result = {}, []
    for item, name in enumerate(task["data"]["frame_names"]):
        for number, lane in enumerate(lanes, 1):
            drawn[(name, number)] = lane
            result += annotator.region(controls, label="Lane", item=item, size=FRAME_SIZE, polyline=lane,
                                       number=number)
    annotator.submit(task["id"], result)
    return drawn


def review(annotator: ScriptedAnnotator, project: dict[str, Any], *, move: bool) -> tuple[dict, str | None]:
    """Open the level-2 task pre-filled from level 1, pass every object (moving one box first when
    `move`), say every frame is fine, submit. Returns the task and the moved region's id."""
    controls = annotator.controls(project)
    [task] = annotator.tasks(project["id"])
    prefilled = task["predictions"][0]["result"]
    tool = controls["tool"]
    regions = [r for r in prefilled if r["from_name"] == tool]
    moved = regions[0]["id"] if move else None
    result = []
    for r in prefilled:
        r = json.loads(json.dumps(r))
        if r["id"] == moved and "x" in r["value"]:
            r["value"]["x"] += 100 * MOVE_PX / r["original_width"]  # the UI moves a region's shared geometry
        if r["from_name"] != controls.get("audit"):
            result.append(r)
    for r in regions:
        geometry = next(x for x in result if x["id"] == r["id"] and x["from_name"] == tool)["value"]
        shape = {k: v for k, v in geometry.items() if k not in (controls["tool_type"],)}
        result.append({**{k: r[k] for k in ("id", "to_name", "original_width", "original_height", "item_index")},
                       "from_name": controls["audit"], "type": "choices",
                       "value": {**shape, "choices": ["Fail" if r["id"] == moved else "Pass"]}})
    if "Frame_Quality" in controls:
        result += [annotator.frame_value(controls, "Frame_Quality", item, "Pass")
                   for item in range(len(task["data"]["frame_names"]))]
    annotator.submit(task["id"], result)
    return task, moved


def test_notebook_batch_labeled_by_people_in_label_studio(local: LocalDeployment) -> None:
    batch_id = f"ls-nb-{int(time.time())}"
    config = notebook_batch(batch_id)
    create_batch(local, config)
    labeler = ScriptedAnnotator(local.labelstudio.url, local.worker_tokens["labeler-1@example.com"])
    reviewer = ScriptedAnnotator(local.labelstudio.url, local.worker_tokens["qa-manager-1@example.com"])
    gt, lanes = references(local)

    # --- level 1: boxes and polylines on every frame of the sequence
    vehicle_project = labeler.project(f"{batch_id}-vehicle")
    lane_project = labeler.project(f"{batch_id}-lane")
    assert "Please label vehicles." in vehicle_project["expert_instruction"]
    assert vehicle_project["maximum_annotations"] == 1
    shown = show(local, batch_id)
    assert {j["workforce"] for j in shown["firstLevel"]["jobLevels"]} == {"labelstudio"}
    boxes = label_vehicles(labeler, vehicle_project, gt)
    polylines = label_lanes(labeler, lane_project, lanes)

    waiting = wait_until("the batch to wait for the down-sampling rate",
                         lambda: (s := show(local, batch_id))["status"] == "WAIT_FOR_META_DATA_INPUT" and s, 240, 2)
    resp = local.airflow.session("admin").post(f"{local.airflow.url}/smgt/batch-metadata/post",
                                               json={"batchId": batch_id, "downSamplingRate": 50}, timeout=60)
    assert resp.status_code == 200, resp.text
    assert waiting["firstLevel"]["status"] == "COMPLETE"

    # --- level 1 output: the submitted geometry, in GT's layout
    level1 = {j["labelingJobName"]: j for j in show(local, batch_id)["firstLevel"]["jobLevels"]}
    vehicle_line = s3_lines(local, level1[f"{batch_id}-vehicle"]["jobOutputS3Uri"])[0]
    seq_label = s3_json(local, vehicle_line["vehicle-ref"])["tracking-annotations"]
    written = {(f["frame"], int(a["object-name"].split(":")[1])): a for f in seq_label for a in f["annotations"]}
    assert set(written) == set(boxes)
    for key, (left, top, width, height) in boxes.items():
        a = written[key]
        assert max(abs(a["left"] - left), abs(a["top"] - top), abs(a["width"] - width),
                   abs(a["height"] - height)) <= 1, (key, a)
        assert a["label-category-attributes"] == {"Moving": "Dynamic", "Vehicle_Type": "Car"}
    assert all(f["frame-attributes"]["Number_Of_Vehicles"] == len(f["annotations"]) for f in seq_label)
    object_ids = {key: a["object-id"] for key, a in written.items()}
    assert len({object_ids[k] for k in object_ids if k[1] == 1}) == 1  # one identity per track across frames
    lane_line = s3_lines(local, level1[f"{batch_id}-lane"]["jobOutputS3Uri"])[0]
    lane_label = s3_json(local, lane_line["lane-ref"])["tracking-annotations"]
    for frame in lane_label:
        for p in frame["polylines"]:
            want = polylines[(frame["frame"], int(p["object-name"].split(":")[1]))]
            got = [(v["x"], v["y"]) for v in p.get("vertices") or p.get("points")]
            assert len(got) == len(want) and all(abs(a - c) <= 1 and abs(b - d) <= 1
                                                 for (a, b), (c, d) in zip(got, want, strict=True))

    # --- level 2 opens pre-filled on exactly the sampled frames
    audit_project = reviewer.project(f"{batch_id}-vehicle-audit")
    lane_audit_project = reviewer.project(f"{batch_id}-lane-audit")
    level2 = {j["labelingJobName"]: j for j in show(local, batch_id)["secondLevel"]["jobLevels"]}
    audit_input = s3_lines(local, level2[f"{batch_id}-vehicle-audit"]["jobInputS3Uri"])[0]
    sampled = [f["frame"] for f in s3_json(local, audit_input["source-ref"])["frames"]]
    assert len(sampled) == 8  # ceil(15 * 50 %)
    task, moved = review(reviewer, audit_project, move=True)
    assert task["data"]["frame_names"] == sampled
    prefilled = [r for r in task["predictions"][0]["result"] if r["from_name"] == "label"]
    assert len(prefilled) == sum(len(gt.get(frame_number(name), [])) for name in sampled)
    moved_region = next(r for r in prefilled if r["id"] == moved)
    moved_key = (sampled[moved_region["item_index"]],
                 next(r["value"]["number"] for r in task["predictions"][0]["result"]
                      if r["id"] == moved and r["type"] == "number"))
    review(reviewer, lane_audit_project, move=False)

    done = wait_batch(local, batch_id, timeout=300)
    assert done["status"] == "COMPLETE", done
    level2 = {j["labelingJobName"]: j for j in done["secondLevel"]["jobLevels"]}

    # --- level 2 output: the moved box moved and adjusted, identities kept, the rest as level 1
    audit_line = requests.get(level2[f"{batch_id}-vehicle-audit"]["jobOutputS3Url"], timeout=30)
    audit_line.raise_for_status()  # the presigned URL batch/show hands out
    audit_line = json.loads(audit_line.text.splitlines()[0])
    assert audit_line["vehicle-audit-ref-metadata"]["adjustment-status"] == "adjusted"
    audit_label = s3_json(local, audit_line["vehicle-audit-ref"])["tracking-annotations"]
    assert [f["frame"] for f in audit_label] == sampled
    for frame in audit_label:
        for a in frame["annotations"]:
            key = (frame["frame"], int(a["object-name"].split(":")[1]))
            assert a["object-id"] == object_ids[key]
            left, top, width, height = boxes[key]
            if key == moved_key:
                assert abs(a["left"] - (left + MOVE_PX)) <= 1 and abs(a["top"] - top) <= 1, a
                assert a["label-category-attributes"]["audit"] == "Fail"
            else:
                assert abs(a["left"] - left) <= 1 and abs(a["top"] - top) <= 1, a
                assert a["label-category-attributes"]["audit"] == "Pass"
        # The reviewer's verdict, next to the level-1 frame attribute it keeps.
        assert frame["frame-attributes"] == {"Frame_Quality": "Pass",
                                             "Number_Of_Vehicles": len(gt.get(frame_number(frame["frame"]), []))}
    lane_audit = s3_lines(local, level2[f"{batch_id}-lane-audit"]["jobOutputS3Uri"])[0]
    assert lane_audit["lane-audit-ref-metadata"]["adjustment-status"] == "unadjusted"
    # Worker responses name the Label Studio user's GT worker identity and the time they spent.
    responses = local.client("s3").list_objects_v2(
        Bucket=local.settings.processing_bucket,
        Prefix=f"{local.settings.processing_prefix}/{batch_id}/output/{batch_id}-vehicle/annotations/worker-response/")
    [key] = [o["Key"] for o in responses["Contents"]]
    answer = json.loads(local.client("s3").get_object(Bucket=local.settings.processing_bucket,
                                                      Key=key)["Body"].read())["answers"][0]
    assert answer["workerId"].startswith("private.us-east-1.") and answer["timeSpentInSeconds"] == 42.0


def test_workforce_show_lists_label_studio_logins(local: LocalDeployment) -> None:
    resp = local.airflow.session("admin").get(f"{local.airflow.url}/smgt/workforce/show", timeout=60)
    assert resp.status_code == 200, resp.text
    teams = {t["category"]: t for t in resp.json()}
    assert {t["labelingPortalUrl"] for t in teams.values()} == {local.labelstudio.url}
    logins = {w["email"]: w for w in local.worker_logins()}
    for team in teams.values():
        for member in team["memberDefinitions"][0]["members"]:
            login = logins[member["email"]]
            assert login["team"] == team["workteamName"]
            session = login_session(local.labelstudio.url, login["email"], login["password"])
            assert whoami(local.labelstudio.url, session) == login["email"]
    assert whoami(local.labelstudio.url, login_session(local.labelstudio.url, "labeler-1@example.com", "wrong")) is None
