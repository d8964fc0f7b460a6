"""The smgt_batch trigger form in a real browser (headless Debian Chromium, tests/browser.py) on a real
Airflow (api-server, scheduler, dag-processor, triggerer: smgt.embedded.EmbeddedAirflow) against the
local Ground Truth emulator with the demo data:

- an admin opens the form, picks the notebook template, fills in a batch id and the input, triggers:
  the run starts, resolve_batch expands the template, and batch/show knows the batch;
- triggering again with the same batch id shows, in the dialog, batch/create's message, and no run
  is made;
- a bad value (an input manifest that does not exist) makes a run whose resolve_batch fails, and the
  batch page shows the pre-flight's message, as batch/create would have answered.

The form's fields are found by Airflow 3.3's `element_<param>` ids and the texts a person reads.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from smgt.api.auth import BATCH_DAG_ID
from smgt.embedded import EmbeddedAirflow

from .deployment_helpers import airflow_on_emulator, wait_until

pytest_plugins = ["browser"]
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedAirflow]:
    with airflow_on_emulator(tmp_path_factory, "form") as (stack, _emu, _demo):
        stack.input_bucket = _settings().input_bucket
        yield stack


def _settings() -> Any:
    from smgt.settings import get_settings

    return get_settings()


def login(page: Page, airflow: EmbeddedAirflow, then: str) -> None:
    page.goto(f"{airflow.url}{then}")
    page.wait_for_url(re.compile(r"/auth/login"))
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(airflow.passwords["admin"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{airflow.url}{then}")


def open_form(page: Page) -> Any:
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("Batch template")).to_be_visible()
    return dialog


def fill_form(dialog: Any, *, template_label: str, batch_id: str, input_uri: str) -> None:
    """Pick the template in the select (by its label) and type the batch id and the input."""
    dialog.locator("#element_template").click()
    dialog.page.get_by_role("option", name=template_label).click()
    expect(dialog.locator("#element_template")).to_contain_text(template_label)
    dialog.locator("#element_batchId").fill(batch_id)
    dialog.locator("#element_input").fill(input_uri)


def trigger(dialog: Any) -> None:
    dialog.get_by_role("button", name="Trigger").last.click()


def task_state(airflow: EmbeddedAirflow, run_id: str, task_id: str) -> str | None:
    resp = airflow.session("admin").get(
        f"{airflow.url}/api/v2/dags/{BATCH_DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}", timeout=30)
    return resp.json().get("state") if resp.ok else None


def runs_with_batch_id(airflow: EmbeddedAirflow, batch_id: str) -> list[dict[str, Any]]:
    resp = airflow.session("admin").get(f"{airflow.url}/api/v2/dags/{BATCH_DAG_ID}/dagRuns",
                                        params={"limit": 100}, timeout=30)
    resp.raise_for_status()
    return [r for r in resp.json()["dag_runs"] if (r.get("conf") or {}).get("batchId") == batch_id]


def wait_for(check: Any, what: str) -> Any:
    return wait_until(what, check, timeout=240, poll=2, retry_errors=False)


NOTEBOOK = "notebook_tracking: 4 jobs (batch id nb-track-...)"


def test_pick_the_template_trigger_the_run_starts_then_duplicate_and_bad_input_show_the_message(
        page: Page, airflow: EmbeddedAirflow, tmp_path: Path) -> None:
    demo_manifest = f"s3://{airflow.input_bucket}/tracking_manifests/MOT17-13-SDP.manifest"
    batch_id = f"form-{time.time_ns() % 10**9}"
    login(page, airflow, f"/dags/{BATCH_DAG_ID}")

    # 1. pick the template, batch id + input, trigger: the run starts and resolves to the template.
    dialog = open_form(page)
    fill_form(dialog, template_label=NOTEBOOK, batch_id=batch_id, input_uri=demo_manifest)
    trigger(dialog)
    page.wait_for_url(re.compile(rf"/dags/{BATCH_DAG_ID}/runs/"))
    run_id = page.url.rsplit("/runs/", 1)[1].split("?")[0].split("/")[0]
    assert runs_with_batch_id(airflow, batch_id)[0]["dag_run_id"] == run_id
    state = wait_for(lambda: task_state(airflow, run_id, "resolve_batch") in ("success", "failed")
                     and task_state(airflow, run_id, "resolve_batch"), "resolve_batch to finish")
    assert state == "success"
    shown = airflow.session("admin").get(f"{airflow.url}/smgt/batch/show", params={"batchId": batch_id}, timeout=60)
    assert shown.status_code == 200, shown.text
    detail = shown.json()
    assert detail["status"] in ("IN_PROGRESS", "WAIT_FOR_META_DATA_INPUT"), detail
    assert sorted(j["jobName"] for j in detail["inputLabelingJobs"]) == sorted(
        f"{batch_id}-{n}" for n in ("vehicle", "lane", "vehicle-audit", "lane-audit"))

    # 2. the same batch id again: refused in the dialog with batch/create's message, no second run.
    page.goto(f"{airflow.url}/dags/{BATCH_DAG_ID}")
    dialog = open_form(page)
    fill_form(dialog, template_label=NOTEBOOK, batch_id=batch_id, input_uri=demo_manifest)
    trigger(dialog)
    message = f"batchId: '{batch_id}' is already used by an existing batch"
    expect(page.get_by_text(message).first).to_be_visible()
    assert len(runs_with_batch_id(airflow, batch_id)) == 1

    # 3. a bad value: an input manifest that does not exist. The run fails at resolve_batch; the batch
    #    page shows the pre-flight's message (as batch/create would answer), nothing was created.
    bad_id = f"{batch_id}-bad"
    missing = f"s3://{airflow.input_bucket}/tracking_manifests/no-such.manifest"
    page.goto(f"{airflow.url}/dags/{BATCH_DAG_ID}")
    dialog = open_form(page)
    fill_form(dialog, template_label=NOTEBOOK, batch_id=bad_id, input_uri=missing)
    trigger(dialog)
    page.wait_for_url(re.compile(rf"/dags/{BATCH_DAG_ID}/runs/"))
    bad_run = page.url.rsplit("/runs/", 1)[1].split("?")[0].split("/")[0]
    wait_for(lambda: task_state(airflow, bad_run, "resolve_batch") == "failed", "resolve_batch to fail")
    shown = airflow.session("admin").get(f"{airflow.url}/smgt/batch/show", params={"batchId": bad_id}, timeout=60)
    assert shown.json()["status"] == "VALIDATION_FAIL", shown.text
    expected = f"labelingJobs[0] '{bad_id}-vehicle': inputConfig.inputManifestS3Uri"
    assert expected in shown.json()["message"], shown.text
    page.goto(f"{airflow.url}/smgt/ui")
    expect(page.get_by_text(bad_id).first).to_be_visible()
    assert "no-such.manifest" in page.inner_text("body")
    assert expected in page.inner_text("body")
