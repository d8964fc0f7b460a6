"""Airflow's Required Actions form stores any answer (it does not check the rate Param's schema): a
rate outside 0 < rate <= 100 given there is refused and asked again, the batch keeps waiting and
batch/show says why, and a good answer then completes the batch. Through Airflow's own HITL
endpoint, the one the form calls."""

from __future__ import annotations

import time
from typing import Any

import pytest
from api_helpers import BATCH_DAG_ID, new_batch_id, notebook_batch, wait_for

from smgt.metadata import PARK_SETTLE_SECONDS

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

RATE_TASK = "level_2.down_sampling_rate"


def rate_task_state(stack, batch_id: str) -> dict[str, Any]:
    url = f"{stack.url}/api/v2/dags/{BATCH_DAG_ID}/dagRuns/{batch_id}/taskInstances/{RATE_TASK}"
    return stack.session("admin").get(url, timeout=30).json()


def batch_waiting_for_the_rate(stack, prefix: str) -> tuple[str, Any]:
    """A new notebook batch, once it waits for its rate; and an admin session."""
    batch_id = new_batch_id(prefix)
    admin = stack.session("admin")
    resp = admin.post(stack.api("batch/create"), json=notebook_batch(batch_id), timeout=120)
    assert resp.status_code == 200, resp.text
    wait_for(stack, batch_id, lambda d: d["status"] == "WAIT_FOR_META_DATA_INPUT", 240, "never waited for the rate")
    return batch_id, admin


def test_a_rate_out_of_range_in_airflows_form_is_refused_and_asked_again(stack) -> None:
    batch_id, admin = batch_waiting_for_the_rate(stack, "form-rate")
    # A person takes longer than the worker that parked the task takes to exit (PARK_SETTLE_SECONDS
    # says why an answer within seconds races Airflow 3.3's executor event; batch-metadata/post waits).
    time.sleep(PARK_SETTLE_SECONDS)

    hitl = f"{stack.url}/api/v2/dags/{BATCH_DAG_ID}/dagRuns/{batch_id}/taskInstances/{RATE_TASK}/-1/hitlDetails"
    answered = admin.patch(hitl, json={"chosen_options": ["OK"], "params_input": {"downSamplingRate": 500}},
                           timeout=30)
    assert answered.status_code == 200, answered.text  # Airflow takes it: its form does not validate

    refused = "the last answer was refused: downSamplingRate: must be a number with 0 < rate <= 100, got 500"
    detail = wait_for(stack, batch_id, lambda d: refused in d.get("message", ""), 120,
                      "the refused answer was not reported")
    assert detail["status"] == "WAIT_FOR_META_DATA_INPUT"
    task = rate_task_state(stack, batch_id)
    assert task["state"] == "awaiting_input" and task["try_number"] == 1, task  # asked again, same try
    again = admin.get(hitl, timeout=30).json()
    assert again["response_received"] is False and again["params_input"] == {}
    # Asked again with nothing pre-filled: not a 100 % that a plain OK would send.
    assert again["params"]["downSamplingRate"]["value"] is None, again["params"]

    resp = admin.post(stack.api("batch-metadata/post"), json={"batchId": batch_id, "downSamplingRate": 50},
                      timeout=120)
    assert resp.status_code == 200, resp.text
    detail = wait_for(stack, batch_id, lambda d: d["status"] in ("COMPLETE", "INTERNAL_ERROR"), 300,
                      "the batch did not finish")
    assert detail["status"] == "COMPLETE", detail
    assert {j["downSamplingRate"] for j in detail["secondLevel"]["jobLevels"]} == {50}


def test_batch_metadata_post_right_after_the_park_answers_within_seconds_and_completes(stack) -> None:
    # An API client posts the moment it sees WAIT_FOR_META_DATA_INPUT. batch-metadata/post waits
    # until the worker that parked the rate task is gone and the scheduler has taken its exit
    # (smgt.metadata.parked_worker_settled), not the whole PARK_SETTLE_SECONDS; the resumed try
    # must then not be failed by that exit ("task state changed externally").
    batch_id, admin = batch_waiting_for_the_rate(stack, "post-rate")
    start = time.monotonic()
    resp = admin.post(stack.api("batch-metadata/post"), json={"batchId": batch_id, "downSamplingRate": 50},
                      timeout=120)
    took = time.monotonic() - start
    assert resp.status_code == 200, resp.text
    # Waiting out the whole settle would take PARK_SETTLE_SECONDS less the park's age (1-2 s here).
    assert took < PARK_SETTLE_SECONDS - 3, f"batch-metadata/post took {took:.1f} s"
    detail = wait_for(stack, batch_id, lambda d: d["status"] in ("COMPLETE", "INTERNAL_ERROR"), 300,
                      "the batch did not finish")
    assert detail["status"] == "COMPLETE", detail
    task = rate_task_state(stack, batch_id)
    assert task["state"] == "success" and task["try_number"] == 1, task


def test_two_rates_posted_at_once_one_is_taken_and_the_other_gets_409(stack) -> None:
    # Two clients (or a double click) answer the same waiting batch at the same moment: one answer
    # is taken, the other is told so (SPEC section 7: 409 when metadata was already given), and the
    # level-2 jobs run at the rate of the answer that got 200.
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    batch_id, _ = batch_waiting_for_the_rate(stack, "race-rate")
    together = Barrier(2)
    sessions = {20: stack.session("admin"), 80: stack.session("user")}

    def post(rate: int) -> tuple[int, int, str]:
        together.wait()
        resp = sessions[rate].post(stack.api("batch-metadata/post"), json={"batchId": batch_id, "downSamplingRate": rate},
                                   timeout=120)
        return rate, resp.status_code, resp.text

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(post, (20, 80)))
    assert sorted(code for _, code, _ in answers) == [200, 409], answers
    taken = next(rate for rate, code, _ in answers if code == 200)
    assert "already given" in next(text for _, code, text in answers if code == 409), answers
    detail = wait_for(stack, batch_id, lambda d: d["status"] in ("COMPLETE", "INTERNAL_ERROR"), 300,
                      "the batch did not finish")
    assert detail["status"] == "COMPLETE", detail
    assert {j["downSamplingRate"] for j in detail["secondLevel"]["jobLevels"]} == {taken}
