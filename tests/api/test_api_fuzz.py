"""Hypothesis-generated bad bodies for batch/create: never a 5xx, never a run created.

Bodies are the notebook's valid batch with one to three random mutations (a field deleted, replaced
by random JSON, an unknown key added, a job duplicated or emptied ...), plus raw non-JSON bytes and
arbitrary JSON values. Any mutation that happens to leave a valid config is discarded with
`assume`, using the same validator without look-ups, so every request sent must be rejected.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from api_helpers import new_batch_id, notebook_batch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from smgt.config import BatchConfigError, validate_batch_config

pytestmark = pytest.mark.integration

EXAMPLES = 300
JOB_FIELDS = [
    "jobName",
    "jobType",
    "jobModality",
    "jobLevel",
    "labelAttributeName",
    "labelCategoryConfigS3Uri",
    "inputConfig",
    "workteamArn",
    "maxConcurrentTaskCount",
    "taskAvailabilityLifetimeInSeconds",
    "taskTimeLimitInSeconds",
]
INPUT_FIELDS = ["inputManifestS3Uri", "chainFromJobName", "downSamplingRate"]

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=80),
    st.sampled_from(["", "BATCH", "s3://", "s3://b/k", "VideoObjectTracking", "a_b", "-ref", "x" * 300]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def mutated_batch(draw: st.DrawFn) -> Any:
    body = notebook_batch(new_batch_id("fuzz"))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        jobs = body.get("labelingJobs") if isinstance(body, dict) else None
        kind = draw(st.sampled_from(["top", "job", "input", "jobs", "extra"]))
        if kind == "top" and isinstance(body, dict):
            key = draw(st.sampled_from(["batchId", "labelingJobs", "destinationSnsArn"]))
            if draw(st.booleans()):
                body.pop(key, None)
            else:
                body[key] = draw(json_values)
        elif kind == "job" and isinstance(jobs, list) and jobs and isinstance(jobs[0], dict):
            job = jobs[draw(st.integers(min_value=0, max_value=len(jobs) - 1))]
            if isinstance(job, dict):
                key = draw(st.sampled_from(JOB_FIELDS))
                if draw(st.booleans()):
                    job.pop(key, None)
                else:
                    job[key] = draw(json_values)
        elif kind == "input" and isinstance(jobs, list) and jobs:
            job = jobs[draw(st.integers(min_value=0, max_value=len(jobs) - 1))]
            if isinstance(job, dict) and isinstance(job.get("inputConfig"), dict):
                job["inputConfig"][draw(st.sampled_from(INPUT_FIELDS))] = draw(json_values)
        elif kind == "jobs" and isinstance(jobs, list):
            action = draw(st.sampled_from(["empty", "duplicate", "junk"]))
            if action == "empty":
                body["labelingJobs"] = []
            elif action == "duplicate" and jobs:
                jobs.append(copy.deepcopy(jobs[0]))
            else:
                jobs.append(draw(json_values))
        elif isinstance(body, dict):
            body[draw(st.text(min_size=1, max_size=12))] = draw(json_values)
    return body


def _locally_valid(body: Any) -> bool:
    try:
        validate_batch_config(body, region="us-east-1")
    except BatchConfigError:
        return False
    return True


bad_json_bodies = st.one_of(mutated_batch(), json_values)
raw_bodies = st.one_of(
    st.binary(max_size=200),
    st.sampled_from([b"{", b'{"batchId": Infinity}', b"\xff\xfe", b"null", b'"batch"', b"[]"]),
)


def test_bad_create_bodies_never_5xx_and_never_create_a_run(stack):
    http = stack.session("admin")
    url = stack.api("batch/create")
    runs_before = {r["dag_run_id"] for r in stack.dag_runs()}
    sent: list[str] = []
    statuses: dict[int, int] = {}

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(body=st.one_of(bad_json_bodies.map(lambda b: ("json", b)), raw_bodies.map(lambda b: ("raw", b))))
    def check(body: tuple[str, Any]) -> None:
        kind, value = body
        if kind == "json":
            assume(not _locally_valid(value))
            data = json.dumps(value).encode()
            if isinstance(value, dict) and isinstance(value.get("batchId"), str):
                sent.append(value["batchId"])
        else:
            data = value
        resp = http.post(url, data=data, headers={"Content-Type": "application/json"}, timeout=30)
        statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
        assert resp.status_code < 500, (data[:300], resp.text[:500])
        assert resp.status_code == 400, (data[:300], resp.status_code, resp.text[:500])
        answer = resp.json()
        assert answer["message"], answer

    check()
    assert sum(statuses.values()) >= EXAMPLES // 2, statuses
    runs_after = {r["dag_run_id"] for r in stack.dag_runs()}
    assert runs_after == runs_before, sorted(runs_after - runs_before)
    assert not set(sent) & runs_after
