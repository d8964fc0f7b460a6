"""The Label Studio workforce on the local deployment (SeaweedFS, Label Studio, the local Ground
Truth, Airflow), with people stood in for by a script that uses only Label Studio's REST API.

- The notebook's 4-job batch: vehicle boxes (object numbers, attributes, the frame attribute) and
  lane polylines on every frame at level 1; the batch waits; 50 % is posted; level 2 opens
  pre-filled on exactly the sampled frames; one box is moved and the rest passed; the outputs carry
  the submitted geometry within 1 px, identities kept, the moved box adjusted.
- workforce/show names the labeling portal and every member can log in.
- Image boxes and a segmentation mask round-trip to GT's format; a bad result is set aside, its
  correction counts.
- Label Studio or the emulator SIGKILLed mid-job or mid-level: no submitted annotation is lost and
  the job or batch completes (the Label Studio rows of the restart matrix).
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
    with LocalDeployment(tmp_path_factory.mktemp("ls-deployment"), workforce="labelstudio", preferred_ports=False,
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


# ---------------------------------------------------------------------------------------------------------
# Image jobs through the local Ground Truth's API (boto3), labeled in Label Studio


@pytest.fixture(scope="module")
def image_inputs(local: LocalDeployment) -> dict[str, str]:
    """Two demo frames as an image manifest, a UI template, and label configs for boxes and masks."""
    bucket = local.settings.input_bucket
    s3 = local.client("s3")
    frames = f"s3://{bucket}/MOT17/train/MOT17-13-SDP/img1"
    put = {
        "ls-tests/images.manifest": "".join(json.dumps({"source-ref": f"{frames}/{n:06d}.jpg"}) + "\n" for n in (1, 3)),
        "ls-tests/template.liquid.html": "<crowd-form></crowd-form>",
        "ls-tests/boxes.json": json.dumps({"document-version": "2018-11-28", "labels": [{"label": "Car"},
                                                                                          {"label": "Truck"}]}),
        "ls-tests/masks.json": json.dumps({"document-version": "2018-11-28", "labels": [{"label": "Road"},
                                                                                          {"label": "Car"}]}),
    }
    for key, body in put.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body.encode())
    return {name.split("/")[1].split(".")[0]: f"s3://{bucket}/{name}" for name in put}


def image_job(local: LocalDeployment, inputs: dict[str, str], modality: str, config: str, prefix: str) -> str:
    from local.local_gt_helpers import job_request, unique

    name = unique(prefix)
    local.client("sagemaker").create_labeling_job(**job_request(name, modality, inputs["images"], inputs[config],
                                                                template=inputs["template"]))
    return name


def wait_job(local: LocalDeployment, name: str, timeout: float = 120) -> dict[str, Any]:
    sm = local.client("sagemaker")
    return wait_until(f"job {name} to end", lambda: (d := sm.describe_labeling_job(LabelingJobName=name))[
        "LabelingJobStatus"] in ("Completed", "Failed", "Stopped") and d, timeout, 1)


def image_task(annotator: ScriptedAnnotator, project: dict[str, Any], index: int) -> dict[str, Any]:
    return next(t for t in annotator.tasks(project["id"]) if t["data"]["gt_index"] == index)


def test_image_boxes_and_a_mask_round_trip_to_gt_format(local: LocalDeployment, image_inputs: dict) -> None:
    from PIL import Image

    from smgt.local.labelstudio.rle import encode_mask

    labeler = ScriptedAnnotator(local.labelstudio.url, local.worker_tokens["labeler-2@example.com"])
    boxes_job = image_job(local, image_inputs, "BoundingBox", "boxes", "ls-boxes")
    masks_job = image_job(local, image_inputs, "SemanticSegmentation", "masks", "ls-masks")

    project = labeler.project(boxes_job)
    controls = labeler.controls(project)
    drawn = {0: [("Car", (10, 20, 50, 30)), ("Truck", (100, 40, 60, 50))], 1: [("Car", (5, 5, 40, 40))]}
    for index, shapes in drawn.items():
        task = image_task(labeler, project, index)
        labeler.submit(task["id"], [r for label, box in shapes
                                    for r in labeler.region(controls, label=label, item=None, size=FRAME_SIZE, box=box)])
    desc = wait_job(local, boxes_job)
    assert desc["LabelingJobStatus"] == "Completed" and desc["LabelCounters"]["HumanLabeled"] == 2
    lines = s3_lines(local, desc["LabelingJobOutput"]["OutputDatasetS3Uri"])
    for index, line in enumerate(lines):
        value = line[f"{boxes_job}"]
        assert value["image_size"] == [{"width": 320, "height": 180, "depth": 3}]
        got = sorted((a["class_id"], a["left"], a["top"], a["width"], a["height"]) for a in value["annotations"])
        want = sorted((["Car", "Truck"].index(label), *box) for label, box in drawn[index])
        assert len(got) == len(want) and all(max(abs(a - b) for a, b in zip(g, w, strict=True)) <= 1
                                             for g, w in zip(got, want, strict=True)), (got, want)
        assert line[f"{boxes_job}-metadata"]["class-map"] == {str(c): n for c, n in enumerate(["Car", "Truck"])
                                                               if c in {g[0] for g in got}}

    # A mask painted with the brush: the road (lower rows) and a car (a rectangle on it).
    width, height = FRAME_SIZE
    road = bytearray(255 if y >= 120 else 0 for y in range(height) for _ in range(width))
    car = bytearray(255 if 140 <= x < 200 and 130 <= y < 160 else 0 for y in range(height) for x in range(width))
    project = labeler.project(masks_job)
    controls = labeler.controls(project)
    for index in (0, 1):
        task = image_task(labeler, project, index)
        labeler.submit(task["id"], [
            {"id": f"b{label}", "from_name": controls["tool"], "to_name": controls["object"], "type": "brushlabels",
             "original_width": width, "original_height": height, "image_rotation": 0,
             "value": {"format": "rle", "rle": encode_mask(bytes(mask), width, height), "brushlabels": [label]}}
            for label, mask in (("Road", road), ("Car", car))])
    desc = wait_job(local, masks_job)
    assert desc["LabelingJobStatus"] == "Completed", desc
    line = s3_lines(local, desc["LabelingJobOutput"]["OutputDatasetS3Uri"])[0]
    colors = line[f"{masks_job}-ref-metadata"]["internal-color-map"]
    rgb = {colors[k]["class-name"]: tuple(int(colors[k]["hex-color"][i:i + 2], 16) for i in (1, 3, 5)) for k in colors}
    bucket, key = line[f"{masks_job}-ref"][5:].split("/", 1)
    import io

    png = Image.open(io.BytesIO(local.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())).convert("RGB")
    assert png.size == FRAME_SIZE
    for x, y in ((0, 0), (319, 119), (10, 60)):
        assert png.getpixel((x, y)) == rgb["BACKGROUND"], (x, y)
    for x, y in ((0, 120), (319, 179), (139, 150), (200, 150)):
        assert png.getpixel((x, y)) == rgb["Road"], (x, y)
    for x, y in ((140, 130), (199, 159), (170, 145)):
        assert png.getpixel((x, y)) == rgb["Car"], (x, y)


def test_a_bad_result_is_set_aside_with_the_reason_and_its_correction_counts(local: LocalDeployment,
                                                                             image_inputs: dict) -> None:
    """Label Studio stores whatever is posted (a label the job does not have goes through unchecked):
    such an annotation is never a label; it is set aside, the task says why, and the labeler's
    corrected annotation completes the data object. Nothing of the job is failed."""
    labeler = ScriptedAnnotator(local.labelstudio.url, local.worker_tokens["labeler-3@example.com"])
    name = image_job(local, image_inputs, "BoundingBox", "boxes", "ls-bad")
    project = labeler.project(name)
    controls = labeler.controls(project)
    first = image_task(labeler, project, 0)
    media = labeler.ls.get_task(first["id"])["data"]["image"]
    bad = labeler.submit(first["id"], labeler.region(controls, label="Bicycle", item=None, size=FRAME_SIZE,
                                                     box=(10, 10, 20, 20)))
    labeler.submit(image_task(labeler, project, 1)["id"],
                   labeler.region(controls, label="Car", item=None, size=FRAME_SIZE, box=(30, 30, 20, 20)))
    # Marked skipped first, then the reason goes into the task: wait for both.
    task = wait_until("the bad annotation to be set aside with its reason", lambda: (
        labeler.ls.get_annotation(bad["id"])["was_cancelled"]
        and "smgt_set_aside" in (t := labeler.ls.get_task(first["id"]))["data"] and t), 60, 1)
    assert not task["is_labeled"]  # back in the queue
    note = task["data"]["smgt_set_aside"]
    assert note.startswith(f"annotation {bad['id']} by labeler-3 set aside: ") and "Bicycle" in note, note
    assert task["data"]["image"] == media  # the note was added to the task's data as imported
    sm = local.client("sagemaker")
    assert sm.describe_labeling_job(LabelingJobName=name)["LabelCounters"]["FailedNonRetryableError"] == 0

    # Corrected in place, as the labeler's Update in Label Studio's editor does: it counts again.
    labeler.ls.update_annotation(bad["id"], result=labeler.region(controls, label="Truck", item=None,
                                                                  size=FRAME_SIZE, box=(10, 10, 20, 20)))
    desc = wait_job(local, name)
    assert desc["LabelingJobStatus"] == "Completed"
    assert desc["LabelCounters"]["HumanLabeled"] == 2 and desc["LabelCounters"]["FailedNonRetryableError"] == 0
    corrected, labeled = s3_lines(local, desc["LabelingJobOutput"]["OutputDatasetS3Uri"])
    assert [a["class_id"] for a in corrected[name]["annotations"]] == [1]  # the correction, not "Bicycle"
    assert labeled[name]["annotations"][0]["class_id"] == 0
    assert labeler.ls.get_annotation(bad["id"])["was_cancelled"] is False  # no longer a skip


def test_label_studio_killed_mid_job_loses_no_submitted_annotation(local: LocalDeployment,
                                                                   image_inputs: dict) -> None:
    labeler = ScriptedAnnotator(local.labelstudio.url, local.worker_tokens["labeler-1@example.com"])
    name = image_job(local, image_inputs, "BoundingBox", "boxes", "ls-restart")
    project = labeler.project(name)
    controls = labeler.controls(project)
    first = labeler.submit(image_task(labeler, project, 0)["id"],
                           labeler.region(controls, label="Truck", item=None, size=FRAME_SIZE, box=(50, 60, 70, 40)))
    local.kill("labelstudio")  # right after the submit: the emulator may not have seen it yet
    local.start_component("labelstudio")
    assert labeler.ls.get_annotation(first["id"])["result"] == first["result"]
    labeler.submit(image_task(labeler, project, 1)["id"],
                   labeler.region(controls, label="Car", item=None, size=FRAME_SIZE, box=(1, 2, 30, 40)))
    desc = wait_job(local, name)
    assert desc["LabelingJobStatus"] == "Completed" and desc["LabelCounters"]["HumanLabeled"] == 2
    lines = s3_lines(local, desc["LabelingJobOutput"]["OutputDatasetS3Uri"])
    assert [(a["class_id"], a["left"], a["top"]) for line in lines for a in line[name]["annotations"]] == [
        (1, 50, 60), (0, 1, 2)]


# ---------------------------------------------------------------------------------------------------------
# Restart matrix rows under the Label Studio workforce: SIGKILL the emulator or Label Studio while a
# batch's level 1 is half labeled; the batch still completes with what people submitted.


@pytest.mark.parametrize("component", ["emulator", "labelstudio"])
def test_sigkill_mid_level_with_people_labeling(local: LocalDeployment, component: str) -> None:
    from .deployment_helpers import batch_with_rates, job_statuses, store_snapshot

    batch_id = f"ls-kill-{component[:3]}-{int(time.time())}"
    create_batch(local, batch_with_rates(batch_id))
    labeler = ScriptedAnnotator(local.labelstudio.url, local.worker_tokens["labeler-2@example.com"])
    reviewer = ScriptedAnnotator(local.labelstudio.url, local.worker_tokens["qa-manager-2@example.com"])
    gt, lanes = references(local)
    boxes = label_vehicles(labeler, labeler.project(f"{batch_id}-vehicle"), gt)
    lane_project = labeler.project(f"{batch_id}-lane")

    before = store_snapshot(local)
    local.kill(component)
    local.start_component(component)
    label_lanes(labeler, lane_project, lanes)
    review(reviewer, reviewer.project(f"{batch_id}-vehicle-audit"), move=False)
    review(reviewer, reviewer.project(f"{batch_id}-lane-audit"), move=False)
    done = wait_batch(local, batch_id, timeout=300)

    assert done["status"] == "COMPLETE", done
    mine = {n: s for n, s in job_statuses(local).items() if n.startswith(batch_id)}
    assert sorted(mine) == sorted(j["jobName"] for j in batch_with_rates(batch_id)["labelingJobs"])
    assert set(mine.values()) == {"Completed"}
    after = store_snapshot(local)
    assert not [key for key, etag in before.items() if after.get(key) != etag]
    vehicle = {j["labelingJobName"]: j for j in done["firstLevel"]["jobLevels"]}[f"{batch_id}-vehicle"]
    seq_label = s3_json(local, s3_lines(local, vehicle["jobOutputS3Uri"])[0]["vehicle-ref"])["tracking-annotations"]
    written = {(f["frame"], int(a["object-name"].split(":")[1])): (a["left"], a["top"], a["width"], a["height"])
               for f in seq_label for a in f["annotations"]}
    assert written == boxes


def test_stop_expiry_and_point_clouds_under_the_label_studio_workforce(local: LocalDeployment,
                                                                       image_inputs: dict) -> None:
    """StopLabelingJob keeps what was submitted; tasks still open when TaskAvailabilityLifetimeInSeconds
    runs out count as unlabeled (GT's expiry reason in the manifest); point clouds stay simulated."""
    from local.local_gt_helpers import job_request, unique

    sm = local.client("sagemaker")
    labeler = ScriptedAnnotator(local.labelstudio.url, local.worker_tokens["labeler-3@example.com"])
    expiring = unique("ls-expire")
    request = job_request(expiring, "BoundingBox", image_inputs["images"], image_inputs["boxes"],
                          template=image_inputs["template"])
    request["HumanTaskConfig"]["TaskAvailabilityLifetimeInSeconds"] = 60  # GT's minimum
    sm.create_labeling_job(**request)
    stopped = image_job(local, image_inputs, "BoundingBox", "boxes", "ls-stop")
    for name in (expiring, stopped):  # one of the two images labeled, the other left open
        project = labeler.project(name)
        labeler.submit(image_task(labeler, project, 0)["id"], labeler.region(
            labeler.controls(project), label="Car", item=None, size=FRAME_SIZE, box=(10, 10, 30, 30)))
    wait_until("the first image of the stopped job to be collected", lambda: sm.describe_labeling_job(
        LabelingJobName=stopped)["LabelCounters"]["HumanLabeled"] == 1, 60, 1)
    sm.stop_labeling_job(LabelingJobName=stopped)
    desc = wait_job(local, stopped)
    assert desc["LabelingJobStatus"] == "Stopped"
    bucket = local.settings.processing_bucket
    key = f"gt-output/{stopped}/manifests/output/output.manifest"
    [line] = s3_lines(local, f"s3://{bucket}/{key}")
    assert line[stopped]["annotations"][0]["left"] == 10

    # A point-cloud job on this deployment is labeled by the simulated workforce, and says so.
    s3 = local.client("s3")
    base = f"s3://{local.settings.input_bucket}/ls-tests/cloud"
    cloud = "".join(f"{x * 0.5} {x * 0.25} {x % 3} 0.{x % 9}\n" for x in range(50))
    s3.put_object(Bucket=local.settings.input_bucket, Key="ls-tests/cloud/frame0.txt", Body=cloud.encode())
    s3.put_object(Bucket=local.settings.input_bucket, Key="ls-tests/cloud/cloud.manifest", Body=json.dumps(
        {"source-ref": f"{base}/frame0.txt", "source-ref-metadata": {"format": "text/xyzi",
                                                                    "unix-timestamp": 1566861644.0}}).encode())
    s3.put_object(Bucket=local.settings.input_bucket, Key="ls-tests/cloud/cuboids.json", Body=json.dumps(
        {"document-version": "2020-03-01", "labels": [{"label": "Car"}]}).encode())
    cloud_job = unique("ls-cloud")
    sm.create_labeling_job(**job_request(cloud_job, "PointCloudObjectDetection", f"{base}/cloud.manifest",
                                         f"{base}/cuboids.json"))
    cloud_desc = wait_job(local, cloud_job)
    assert cloud_desc["LabelingJobStatus"] == "Completed", cloud_desc
    assert {"Key": "smgt-local:workforce", "Value": "simulated"} in cloud_desc["Tags"]
    assert {"Key": "smgt-local:workforce", "Value": "labelstudio"} in sm.describe_labeling_job(
        LabelingJobName=stopped)["Tags"]

    desc = wait_job(local, expiring, timeout=180)
    assert desc["LabelingJobStatus"] == "Completed"
    assert desc["LabelCounters"]["HumanLabeled"] == 1 and desc["LabelCounters"]["Unlabeled"] == 1
    labeled, expired = s3_lines(local, desc["LabelingJobOutput"]["OutputDatasetS3Uri"])
    assert labeled[expiring]["annotations"][0]["left"] == 10
    assert expiring not in expired
    assert expired[f"{expiring}-metadata"]["failure-reason"].startswith("ClientError: Annotation tasks expired.")


def test_an_annotation_by_someone_outside_the_work_team_is_set_aside(local: LocalDeployment,
                                                                     image_inputs: dict) -> None:
    """Every Label Studio user sees every project: a level-2 reviewer labeling a level-1 task does not
    count (GT's work teams), and the task goes back to the level-1 team's queue."""
    outsider = ScriptedAnnotator(local.labelstudio.url, local.worker_tokens["qa-manager-1@example.com"])
    labeler = ScriptedAnnotator(local.labelstudio.url, local.worker_tokens["labeler-1@example.com"])
    name = image_job(local, image_inputs, "BoundingBox", "boxes", "ls-team")
    project = outsider.project(name)
    controls = outsider.controls(project)
    task = image_task(outsider, project, 0)
    theirs = outsider.submit(task["id"], outsider.region(controls, label="Car", item=None, size=FRAME_SIZE,
                                                          box=(5, 5, 10, 10)))
    wait_until("the outsider's annotation to be set aside",
               lambda: outsider.ls.get_annotation(theirs["id"])["was_cancelled"], 60, 1)
    assert not outsider.ls.get_task(task["id"])["is_labeled"]  # back in the queue
    sm = local.client("sagemaker")
    assert sm.describe_labeling_job(LabelingJobName=name)["LabelCounters"]["HumanLabeled"] == 0
    for index in (0, 1):
        labeler.submit(image_task(labeler, project, index)["id"], labeler.region(
            controls, label="Truck", item=None, size=FRAME_SIZE, box=(20, 20, 40, 40)))
    desc = wait_job(local, name)
    assert desc["LabelingJobStatus"] == "Completed" and desc["LabelCounters"]["HumanLabeled"] == 2
    assert [a["class_id"] for line in s3_lines(local, desc["LabelingJobOutput"]["OutputDatasetS3Uri"])
            for a in line[name]["annotations"]] == [1, 1]
