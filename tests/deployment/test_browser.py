"""The pages people use in the local deployment, in a real browser (headless Debian Chromium driven by
Playwright, see tests/browser.py), on one LocalDeployment with the Label Studio workforce and Airflow:

- a labeler logs in to Label Studio, opens an image bounding-box job's project and its tasks, picks a
  label, drags a box on each image and submits; the job's counters move and its output manifest has
  the boxes in image pixels, as dragged on the screen;
- an admin logs in to Airflow and watches a notebook batch on the batch page (/smgt/ui): its level-1
  jobs labeled by Label Studio, then (level 1 labeled by a scripted stand-in) waiting for the
  down-sampling rate, which the admin gives by following the page's link to Airflow's Required
  Actions form.

Label Studio's pages are found by what they show a person (texts, roles) where that is unambiguous,
else by the login form's input ids, a few `data-testid` hooks of its frontend, the image's `alt` (the
name of the <Image> tag in our labeling config) and Konva's stage element: measured on Label Studio
1.23.2 (a new Label Studio may move them; the failure screenshot shows where).
"""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from browser import assert_not_blank, require_chromium, save_screenshot
from labelstudio_annotator import ScriptedAnnotator
from PIL import Image, ImageChops, ImageStat
from playwright.sync_api import Page
from sample_batches import notebook_batch

from smgt.api.auth import BATCH_DAG_ID
from smgt.deployment import LocalDeployment
from smgt.gt.requests import ui_template
from smgt.local.references import parse_mot
from smgt.local.walkthrough import labeling_job_request
from smgt.metadata import PARK_SETTLE_SECONDS

from .deployment_helpers import create_batch, show, wait_until

# `browser`/`page` fixtures and the screenshot-on-failure hook; pytester to fail a browser test on purpose.
pytest_plugins = ["browser", "pytester"]

LABELER = "labeler-1@example.com"
VIDEO = "MOT17/train/MOT17-13-SDP"
LABELS = ["Car", "Truck"]
# What the labeler draws: frame number -> (label, MOT track id of the car they box, from gt.txt).
DRAWN = {1: ("Car", 4), 2: ("Truck", 1)}
TOLERANCE_PX = 2.0  # output box vs. the dragged one, in image pixels (Label Studio rounds to %, we to px)


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with LocalDeployment(tmp_path_factory.mktemp("browser-deployment"), workforce="labelstudio", preferred_ports=False,
                         labelstudio_poll_seconds=1.0) as deployment:
        yield deployment


def test_a_missing_chromium_fails_the_tests_saying_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception, match=r"apt-get install chromium"):
        require_chromium(tmp_path / "chromium")
    assert require_chromium() == Path("/usr/bin/chromium")


def test_a_failing_browser_test_leaves_a_screenshot(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(test_fails="""
        pytest_plugins = ["browser"]

        def test_wrong_heading(page):
            page.set_content("<h1 style='background: #234; color: #fff; height: 300px'>Labeling batches</h1>")
            assert page.inner_text("h1") == "Something else"
    """)
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parents[1]))  # tests/, where browser.py is
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*screenshot of about:blank when it failed: *failure-call.png"])
    [shot] = pytester.path.glob("**/test_wrong_heading0/failure-call.png")
    with Image.open(shot) as image:
        assert_not_blank(image, min_content=0.2, what="the failure screenshot")  # the dark heading: ~1/3


# ---------------------------------------------------------------- S3 and GT

def s3_text(local: LocalDeployment, uri: str) -> str:
    bucket, key = uri[5:].split("/", 1)
    return local.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode()


def frame_uri(local: LocalDeployment, frame: int) -> str:
    return f"s3://{local.settings.input_bucket}/{VIDEO}/img1/{frame:06d}.jpg"


def create_box_job(local: LocalDeployment, name: str, frames: list[int]) -> None:
    """An image bounding-box job on the demo video's frames, labels LABELS, for the first-level team.

    Built like the walkthrough's requests; BoundingBox has no managed HumanTaskUi, so it takes the
    product's own Liquid template as UiTemplateS3Uri, and a task time limit within GT's 8 h for images.
    """
    settings = local.settings
    s3, bucket, prefix = local.client("s3"), settings.input_bucket, f"browser-jobs/{name}"
    s3.put_object(Bucket=bucket, Key=f"{prefix}/template.liquid.html", Body=ui_template("BoundingBox").encode())
    s3.put_object(Bucket=bucket, Key=f"{prefix}/categories.json", Body=json.dumps(
        {"document-version": "2018-11-28", "labels": [{"label": label} for label in LABELS]}).encode())
    manifest = "".join(json.dumps({"source-ref": frame_uri(local, f)}) + "\n" for f in frames)
    s3.put_object(Bucket=bucket, Key=f"{prefix}/input.manifest", Body=manifest.encode())
    request = labeling_job_request(
        name, "BoundingBox", f"s3://{bucket}/{prefix}/input.manifest", f"s3://{bucket}/{prefix}/categories.json",
        "boxes", settings.first_level_workteam_arn, settings, f"s3://{settings.processing_bucket}/browser-jobs")
    request["HumanTaskConfig"]["UiConfig"] = {"UiTemplateS3Uri": f"s3://{bucket}/{prefix}/template.liquid.html"}
    request["HumanTaskConfig"]["TaskTimeLimitInSeconds"] = 3600
    local.client("sagemaker").create_labeling_job(**request)


def describe_job(local: LocalDeployment, name: str) -> dict[str, Any]:
    return local.client("sagemaker").describe_labeling_job(LabelingJobName=name)


# ---------------------------------------------------------------- Label Studio in the browser

def login_label_studio(page: Page, url: str, email: str, password: str) -> None:
    page.goto(f"{url}/user/login/")
    page.locator("#email").fill(email)
    page.locator("#password").fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()
    assert "/user/login" not in page.url, f"Label Studio did not log {email} in: {page.url}"


def open_project(page: Page, url: str, title: str) -> None:
    """From the projects list, the project card with this title; ends on its task table."""
    page.goto(f"{url}/projects/")
    page.get_by_text(title, exact=True).click()
    page.wait_for_url(re.compile(r"/projects/\d+/data"))


def open_task(page: Page, row: int) -> int:
    """Open the task in row `row` (0-based) of the task table; returns its Label Studio task id."""
    rows = page.get_by_test_id("table-row")
    rows.nth(row).wait_for()
    # Click the ID cell near the row's left end: the middle of a labeled row is the annotator's
    # avatar, which shows a tooltip instead of opening the task.
    rows.nth(row).click(position={"x": 70, "y": 20})
    task = re.compile(r"[?&]task=(\d+)")
    page.wait_for_url(task)
    return int(task.findall(page.url)[0])


Box = dict[str, float]  # a screen rectangle as Playwright gives it: x, y, width, height in CSS px


def shown_image(page: Page) -> tuple[Box, tuple[int, int], Box]:
    """The labeling image once loaded and laid out: its on-screen box (CSS px, zoom included), its
    natural size (px) and the visible part of it (the labeling canvas clips a zoomed image)."""
    image = page.locator('img[alt="image"]')
    image.wait_for(state="attached")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    width, height = image.evaluate("img => [img.naturalWidth, img.naturalHeight]")

    def settled() -> Box | None:  # two equal reads in a row: no zoom or layout running
        first = image.bounding_box()
        time.sleep(0.3)
        return first if first and first == image.bounding_box() else None

    box: Box = wait_until("the labeling image to settle", settled, timeout=30, poll=0.2)
    stage = page.locator(".konvajs-content").bounding_box()  # Konva's stage: where drawing happens
    assert stage is not None
    left, top = max(box["x"], stage["x"]), max(box["y"], stage["y"])
    right = min(box["x"] + box["width"], stage["x"] + stage["width"])
    bottom = min(box["y"] + box["height"], stage["y"] + stage["height"])
    visible = {"x": left, "y": top, "width": right - left, "height": bottom - top}
    return box, (width, height), visible


def screen_point(box: Box, natural: tuple[int, int], x: float, y: float) -> tuple[int, int]:
    """Image pixel (x, y) -> the nearest whole CSS pixel on screen."""
    return (round(box["x"] + x * box["width"] / natural[0]), round(box["y"] + y * box["height"] / natural[1]))


def image_point(box: Box, natural: tuple[int, int], sx: float, sy: float) -> tuple[float, float]:
    """Screen point (CSS px) -> image pixel."""
    return ((sx - box["x"]) * natural[0] / box["width"], (sy - box["y"]) * natural[1] / box["height"])


def draw_box(page: Page, label: str, box: Box, natural: tuple[int, int], visible: Box,
             target: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """Pick `label`, drag a box over `target` (left, top, width, height in image px); returns the
    box actually dragged, in image px (the drag runs between whole screen pixels)."""
    left, top, width, height = target
    x0, y0 = screen_point(box, natural, left, top)
    x1, y1 = screen_point(box, natural, left + width, top + height)
    for x, y in ((x0, y0), (x1, y1)):
        assert (visible["x"] <= x <= visible["x"] + visible["width"]
                and visible["y"] <= y <= visible["y"] + visible["height"]), f"({x}, {y}) is off the shown image {visible}"
    page.get_by_text(label, exact=True).first.click()
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x1, y1, steps=10)
    page.mouse.up()
    (l0, t0), (l1, t1) = image_point(box, natural, x0, y0), image_point(box, natural, x1, y1)
    return l0, t0, l1 - l0, t1 - t0


def submit(page: Page, task_id: int) -> None:
    """Click Submit; Label Studio must answer the annotation POST it sends with 201 Created."""
    def is_post(response: Any) -> bool:
        return response.request.method == "POST" and f"/api/tasks/{task_id}/annotations" in response.url

    with page.expect_response(is_post) as saved:
        page.get_by_test_id("bottombar-submit-button").click()
    assert saved.value.status == 201, f"Label Studio refused the annotation: {saved.value.status} {saved.value.text()}"


def check_shows_frame(page: Page, local: LocalDeployment, frame: int, box: Box, visible: Box, path: Path) -> None:
    """Screenshot the labeling page; the visible part of the image must be this frame: the mean
    absolute difference of its pixels (0..255) to the frame scaled as shown. Measured: this frame 0.8,
    the next frame 2.7, one 14 frames later 9.2, a white area 131."""
    shot = save_screenshot(page, path)
    assert_not_blank(shot, what="the labeling page")
    bucket, key = frame_uri(local, frame)[5:].split("/", 1)
    with Image.open(io.BytesIO(local.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())) as original:
        scaled = original.convert("RGB").resize((round(box["width"]), round(box["height"])))
    dx, dy = round(visible["x"] - box["x"]), round(visible["y"] - box["y"])
    w, h = round(visible["width"]), round(visible["height"])
    expected = scaled.crop((dx, dy, dx + w, dy + h))
    on_screen = shot.crop((round(visible["x"]), round(visible["y"]), round(visible["x"]) + w, round(visible["y"]) + h))
    assert_not_blank(on_screen, min_content=0.2, what="the image on the labeling page")
    difference = sum(ImageStat.Stat(ImageChops.difference(on_screen, expected)).mean) / 3
    assert difference < 2.0, f"the labeling page does not show frame {frame} (mean difference {difference:.1f}): {path}"


def test_labeler_draws_boxes_in_label_studio(local: LocalDeployment, page: Page, tmp_path: Path) -> None:
    name = "browser-boxes"
    frames = sorted(DRAWN)
    create_box_job(local, name, frames)
    bucket = local.settings.input_bucket
    reference = parse_mot(local.client("s3").get_object(Bucket=bucket, Key=f"{VIDEO}/gt/gt.txt")["Body"].read().decode())
    # The emulator makes the project and imports the tasks; wait for that through the API, then look.
    ScriptedAnnotator(local.labelstudio.url, local.worker_tokens[LABELER]).project(name)
    login = next(w for w in local.worker_logins() if w["email"] == LABELER)

    login_label_studio(page, local.labelstudio.url, login["email"], login["password"])
    open_project(page, local.labelstudio.url, name)
    dragged = {}
    for row, frame in enumerate(frames):
        task_id = open_task(page, row)
        box, natural, visible = shown_image(page)
        assert natural == (320, 180)  # the demo video's frames
        if row == 0:
            check_shows_frame(page, local, frame, box, visible, tmp_path / "labeling-page.png")
        label, track = DRAWN[frame]
        car = next(b for b in reference[frame] if b.track_id == track)
        dragged[frame_uri(local, frame)] = (label, draw_box(page, label, box, natural, visible,
                                                            (car.left, car.top, car.width, car.height)))
        submit(page, task_id)
        if row == 0:
            # The first submitted task is a human-labeled data object, the other one still open.
            job = wait_until("HumanLabeled to reach 1", lambda: (d := describe_job(local, name))["LabelCounters"][
                "HumanLabeled"] >= 1 and d, timeout=60, poll=0.5)
            assert job["LabelCounters"]["HumanLabeled"] == 1 and job["LabelCounters"]["Unlabeled"] == 1, job
            assert job["LabelingJobStatus"] == "InProgress"

    job = wait_until("the job to complete", lambda: (d := describe_job(local, name))["LabelingJobStatus"] in (
        "Completed", "Failed") and d, timeout=60, poll=0.5)
    assert job["LabelingJobStatus"] == "Completed", job
    assert job["LabelCounters"]["HumanLabeled"] == 2 and job["LabelCounters"]["FailedNonRetryableError"] == 0
    lines = [json.loads(line) for line in s3_text(local, job["LabelingJobOutput"]["OutputDatasetS3Uri"]).splitlines()]
    assert {line["source-ref"] for line in lines} == set(dragged)
    for line in lines:
        label, (left, top, width, height) = dragged[line["source-ref"]]
        assert line["boxes"]["image_size"] == [{"width": 320, "height": 180, "depth": 3}]
        [written] = line["boxes"]["annotations"]
        assert line["boxes-metadata"]["class-map"][str(written["class_id"])] == label
        assert max(abs(written["left"] - left), abs(written["top"] - top), abs(written["width"] - width),
                   abs(written["height"] - height)) <= TOLERANCE_PX, (written, (left, top, width, height))
        assert line["boxes-metadata"]["human-annotated"] == "yes"


# ---------------------------------------------------------------- the batch page in the browser

def login_airflow(page: Page, url: str, password: str, then: str) -> None:
    """Airflow's SimpleAuthManager login page, reached by opening `then` signed out; ends on `then`."""
    page.goto(f"{url}{then}")
    page.wait_for_url(re.compile(r"/auth/login"))
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{url}{then}")


def batch_rows(page: Page, batch_id: str) -> dict[str, Any]:
    """The batch page's table as a person reads it: {"header": the batch's header line, "links": its
    links {text: href}, "jobs": {job name: {column title: cell text}}} of the batch `batch_id`."""
    table = page.evaluate("""() => Array.from(document.querySelectorAll('table tr')).map(tr => ({
        cells: Array.from(tr.cells).map(c => c.innerText.replace(/\\s+/g, ' ').trim()),
        links: Array.from(tr.querySelectorAll('a')).map(a => [a.innerText.replace(/\\s+/g, ' ').trim(),
                                                               a.getAttribute('href')])}))""")
    columns, found, current = table[0]["cells"], None, None
    for row in table[1:]:
        if len(row["cells"]) == 1:  # a batch's header row spans the table
            current = row["cells"][0].split(" · ")[0]
            if current == batch_id:
                found = {"header": row["cells"][0], "links": dict(row["links"]), "jobs": {}}
        elif current == batch_id and found is not None:
            cells = dict(zip(columns, row["cells"], strict=True))
            found["jobs"][cells["Labeling job"]] = cells
    assert found is not None, f"batch {batch_id} is not on the page"
    return found


def reload_until(page: Page, what: str, check: Any, timeout: float) -> Any:
    """Reload the (static) page until `check()` returns something truthy."""
    def attempt() -> Any:
        page.reload()
        return check()
    return wait_until(what, attempt, timeout, poll=2)


def label_level_1(local: LocalDeployment, batch_id: str) -> None:
    """The labeler, scripted through Label Studio's API: one car and one lane on the first frame."""
    annotator = ScriptedAnnotator(local.labelstudio.url, local.worker_tokens[LABELER])
    for kind in ("vehicle", "lane"):
        project = annotator.project(f"{batch_id}-{kind}")
        controls = annotator.controls(project)
        [task] = annotator.tasks(project["id"])
        if kind == "vehicle":
            result = annotator.region(controls, label="Vehicle", item=0, size=(320, 180), box=(192, 101, 37, 24),
                                      number=1, attributes={"Moving": "Dynamic", "Vehicle_Type": "Car"})
            result += [annotator.frame_value(controls, "Number_Of_Vehicles", item, int(item == 0))
                       for item in range(len(task["data"]["frame_names"]))]
        else:
            result = annotator.region(controls, label="Lane", item=0, size=(320, 180),
                                      polyline=[(10, 170), (160, 63)], number=1)
        annotator.submit(task["id"], result)


def test_batch_page_shows_label_studio_jobs_and_the_rate_link(local: LocalDeployment, page: Page,
                                                              tmp_path: Path) -> None:
    assert local.airflow is not None
    batch_id = f"browser-nb-{int(time.time())}"
    create_batch(local, notebook_batch(batch_id))
    level1, level2 = [f"{batch_id}-vehicle", f"{batch_id}-lane"], [f"{batch_id}-vehicle-audit", f"{batch_id}-lane-audit"]
    login_airflow(page, local.airflow.url, local.airflow_passwords()["admin"], "/smgt/ui")

    # Labeling: both level-1 jobs are with Label Studio, level 2 waits.
    running = reload_until(page, "both level-1 jobs labeled by Label Studio on the page", lambda: (
        (b := batch_rows(page, batch_id)) and all(b["jobs"][j]["Labeled by"] == "Label Studio (local)"
                                                  for j in level1) and b), timeout=120)
    assert " · IN_PROGRESS" in running["header"]
    assert set(running["jobs"]) == {*level1, *level2}
    assert {running["jobs"][j]["Level"].split(" (")[0] for j in level1} == {"level 1"}
    assert all(running["jobs"][j]["Labeled by"] == "-" for j in level2)  # not created yet
    assert "give the down-sampling rate" not in running["links"]

    # Level 1 labeled: the batch waits for the rate, and the page says so with a link to give it.
    label_level_1(local, batch_id)
    waiting = reload_until(page, "the batch to wait for the down-sampling rate", lambda: (
        (b := batch_rows(page, batch_id)) and "WAIT_FOR_META_DATA_INPUT" in b["header"] and b), timeout=240)
    assert "waiting for downSamplingRate" in waiting["header"]
    for job in level1:
        assert waiting["jobs"][job]["Job status"] == "COMPLETE"
        assert waiting["jobs"][job]["Labeled by"] == "Label Studio (local)"
        assert waiting["jobs"][job]["Output"] == "output manifest"
    assert waiting["links"]["give the down-sampling rate"] == (
        f"/dags/{BATCH_DAG_ID}/runs/{batch_id}/tasks/level_2.down_sampling_rate/required_actions?map_index=-1")
    assert_not_blank(save_screenshot(page, tmp_path / "batch-page.png", full_page=True), what="the batch page")

    # The link opens Airflow's Required Actions form; giving 50 % there starts level 2. Answered
    # once the prompt is PARK_SETTLE_SECONDS old, as batch-metadata/post does: an answer while the
    # worker that parked the prompt is still exiting hits Airflow 3.3's stale executor event (the
    # resumed try fails and the prompt is asked again; see smgt.metadata).
    time.sleep(PARK_SETTLE_SECONDS)
    page.locator(f'[id="batch-{batch_id}"]').get_by_role("link", name="give the down-sampling rate").click()
    # 150 % is not a rate: the form takes it as typed (its field does not silently make it 100), the
    # batch refuses it and asks again, and the batch page says why (Airflow keeps the form's text).
    page.get_by_label(re.compile(r"^Down-sampling rate")).fill("150")
    page.get_by_role("button", name="OK").click()
    page.goto(f"{local.airflow.url}/smgt/ui")
    refused = reload_until(page, "the batch page to say 150 was refused", lambda: (
        (b := batch_rows(page, batch_id)) and "must be a number with 0 < rate <= 100, got 150" in b["header"] and b),
        timeout=120)
    assert "WAIT_FOR_META_DATA_INPUT" in refused["header"]
    time.sleep(PARK_SETTLE_SECONDS)
    page.locator(f'[id="batch-{batch_id}"]').get_by_role("link", name="give the down-sampling rate").click()
    page.get_by_label(re.compile(r"^Down-sampling rate")).fill("50")
    page.get_by_role("button", name="OK").click()
    wait_until("level 2 to start", lambda: show(local, batch_id)["secondLevel"]["status"] == "IN_PROGRESS",
               timeout=120, poll=2)
    page.goto(f"{local.airflow.url}/smgt/ui")
    started = reload_until(page, "both level-2 jobs labeled by Label Studio on the page", lambda: (
        (b := batch_rows(page, batch_id)) and all(b["jobs"][j]["Labeled by"] == "Label Studio (local)"
                                                  for j in level2) and b), timeout=120)
    assert " · IN_PROGRESS" in started["header"] and "give the down-sampling rate" not in started["links"]
