"""The batch page shows each job's quality report, with the flagged frames as thumbnails, in a real
browser (headless Debian Chromium, tests/browser.py) on a real Airflow (api-server, scheduler,
dag-processor, triggerer: smgt.embedded.EmbeddedAirflow) against the local Ground Truth emulator with
the demo data and injected label errors.

A targeted notebook batch runs to COMPLETE through the batch API; the admin opens /smgt/ui: the
quality section of the batch shows, per job, the risk distribution, the thumbnails (loaded by the
browser from their presigned S3 URLs: naturalWidth > 0) with their reasons, the per-label and
per-worker tables and the residual error estimate of the audits. A screenshot is saved.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import assert_not_blank, save_screenshot
from playwright.sync_api import Page, expect
from sample_batches import targeted_demo_batch

from smgt.embedded import EmbeddedAirflow

from .deployment_helpers import airflow_on_emulator, wait_until

pytest_plugins = ["browser"]
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedAirflow]:
    with airflow_on_emulator(tmp_path_factory, "quality", seed=7) as (stack, emu, demo):
        stack.emu, stack.demo = emu, demo  # type: ignore[attr-defined]
        yield stack


def _show(airflow: EmbeddedAirflow, batch_id: str) -> dict[str, Any]:
    resp = airflow.session("admin").get(f"{airflow.url}/smgt/batch/show", params={"batchId": batch_id}, timeout=60)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_the_batch_page_shows_the_quality_report_with_its_thumbnails(page: Page, airflow: Any, tmp_path: Path) -> None:
    batch_id = "quality-1"  # fixed: injected errors are seeded with the job names
    conf = targeted_demo_batch(batch_id, airflow.demo)
    airflow.emu.set_faults({"label_errors": [{"pattern": f"{batch_id}-vehicle", "frames": [4, 10],
                                              "kinds": ["jitter", "miss"], "seed": 3}]})
    try:
        resp = airflow.session("admin").post(f"{airflow.url}/smgt/batch/create", json=conf, timeout=60)
        assert resp.status_code == 200, resp.text
        detail = wait_until(f"batch {batch_id} to end",
                            lambda: (d := _show(airflow, batch_id))["status"] in ("COMPLETE", "INTERNAL_ERROR") and d,
                            timeout=600, poll=2, retry_errors=False)
    finally:
        airflow.emu.set_faults({})
    assert detail["status"] == "COMPLETE", detail.get("message")
    assert detail["qualityReportS3Url"]
    vehicle = next(j for j in detail["firstLevel"]["jobLevels"] if j["labelingJobName"] == f"{batch_id}-vehicle")
    expected = len(vehicle["qualityReport"]["flaggedFrames"])
    assert expected > 0

    page.goto(f"{airflow.url}/smgt/ui")
    page.wait_for_url(re.compile(r"/auth/login"))
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(airflow.passwords["admin"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{airflow.url}/smgt/ui")

    section = page.locator(f"#quality-batch-{batch_id}")
    expect(section).to_be_visible()
    block = section.locator(f"[id='quality-{batch_id}-vehicle']")
    expect(block.get_by_text("Risk distribution (frames)")).to_be_visible()
    expect(block.get_by_text("objects labeled")).to_be_visible()  # the per-worker table
    expect(block.get_by_text("share adjusted at next level")).to_be_visible()
    audit = section.locator(f"[id='quality-{batch_id}-vehicle-audit']")
    expect(audit.get_by_text("Estimated residual error rate")).to_be_visible()
    expect(page.get_by_role("link", name="batch quality report")).to_have_count(1)

    thumbs = block.locator("img.thumb")
    expect(thumbs).to_have_count(expected)
    thumbs.first.scroll_into_view_if_needed()
    page.wait_for_function(
        "sel => Array.from(document.querySelectorAll(sel)).every(i => i.complete)",
        arg=f"[id='quality-{batch_id}-vehicle'] img.thumb", timeout=60_000)
    widths = thumbs.evaluate_all("imgs => imgs.map(i => i.naturalWidth)")
    assert widths == [320] * expected, widths  # every thumbnail decoded by the browser, 320 px wide
    captions = block.locator("figcaption").all_inner_texts()
    assert all("risk" in c and ":" in c.split("\n", 1)[-1] for c in captions), captions  # each with its reasons

    shot = save_screenshot(page, tmp_path / "quality-page.png", full_page=True)
    assert_not_blank(shot, what="the batch page with the quality report")
    print(f"screenshot: {tmp_path / 'quality-page.png'}")
