"""Lifecycle with simulated time: statuses and counters move as on GT, and Stopping is visible."""

from __future__ import annotations

import time

import pytest

from smgt.local import LocalGroundTruth

from .local_gt_helpers import job_request, unique, wait_terminal


@pytest.fixture(scope="module")
def slow_emu(emu, inputs, s3_store):
    # A second emulator in the same process shares the S3 store (inputs included) and moto's state,
    # but has its own jobs; its bootstrap finds the resources the first one created.
    with LocalGroundTruth(port=0, task_seconds=0.4, init_seconds=0.4, stop_seconds=0.4, seed=1, s3=s3_store) as slow:
        yield slow


def _observe(sm, name: str, until: set[str], timeout: float = 20) -> list[tuple[str, int]]:
    seen: list[tuple[str, int]] = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        desc = sm.describe_labeling_job(LabelingJobName=name)
        state = (desc["LabelingJobStatus"], desc["LabelCounters"]["HumanLabeled"])
        if not seen or seen[-1] != state:
            seen.append(state)
        if state[0] in until:
            return seen
        time.sleep(0.05)
    return seen


def test_statuses_and_counters_progress(slow_emu, inputs):
    sm = slow_emu.client("sagemaker")
    name = unique("timed")
    req = job_request(name, "BoundingBox", inputs["images"], inputs["car"], template=inputs["template"])
    req["HumanTaskConfig"]["MaxConcurrentTaskCount"] = 1  # one task at a time: 3 waves
    sm.create_labeling_job(**req)
    seen = _observe(sm, name, {"Completed", "Failed"})
    assert seen[0] == ("Initializing", 0)
    assert seen[-1] == ("Completed", 3)
    in_progress = [count for status, count in seen if status == "InProgress"]
    assert in_progress[0] == 0 and sorted(in_progress) == in_progress and len(set(in_progress)) >= 2
    desc = sm.describe_labeling_job(LabelingJobName=name)
    assert desc["LastModifiedTime"] > desc["CreationTime"]


def test_stop_passes_through_stopping(slow_emu, inputs):
    sm = slow_emu.client("sagemaker")
    name = unique("timed-stop")
    req = job_request(name, "BoundingBox", inputs["images"], inputs["car"], template=inputs["template"])
    req["HumanTaskConfig"]["MaxConcurrentTaskCount"] = 1
    sm.create_labeling_job(**req)
    assert _observe(sm, name, {"InProgress"})[-1][0] == "InProgress"
    sm.stop_labeling_job(LabelingJobName=name)
    seen = _observe(sm, name, {"Stopped"})
    assert [s for s, _ in seen][0] == "Stopping" and seen[-1][0] == "Stopped"
    desc = wait_terminal(sm, name)
    assert desc["LabelCounters"]["HumanLabeled"] < 3  # stopped before every task was done
