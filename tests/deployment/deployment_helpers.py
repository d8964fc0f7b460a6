"""Helpers of the deployment tests: run a batch through the batch API of a LocalDeployment, wait for
labeling-job states, snapshot and compare what the S3 store holds. A uniquely named module (not
conftest) so other test folders cannot shadow it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

from sample_batches import notebook_batch

from smgt.deployment import LocalDeployment

TERMINAL = {"COMPLETE", "INTERNAL_ERROR", "VALIDATION_FAIL"}


def wait_until(what: str, check: Callable[[], Any], timeout: float, poll: float = 0.5, *,
               retry_errors: bool = True) -> Any:
    """The first truthy `check()` within `timeout` s. `retry_errors`: an exception counts as "not yet"
    (a component being restarted); without it the exception (e.g. a failed assertion) ends the wait."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except Exception:
            if not retry_errors:
                raise
            value = None
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def batch_with_rates(batch_id: str, rate: float = 50) -> dict[str, Any]:
    """The notebook batch with its level-2 rates given (no human-in-the-loop wait)."""
    config = notebook_batch(batch_id)
    for job in config["labelingJobs"]:
        if job["jobLevel"] > 1:
            job["inputConfig"]["downSamplingRate"] = rate
    return config


def create_batch(local: LocalDeployment, config: dict[str, Any]) -> None:
    assert local.airflow is not None
    resp = local.airflow.session("admin").post(f"{local.airflow.url}/smgt/batch/create", json=config, timeout=60)
    assert resp.status_code == 200, resp.text


def show(local: LocalDeployment, batch_id: str) -> dict[str, Any]:
    assert local.airflow is not None
    resp = local.airflow.session("admin").get(f"{local.airflow.url}/smgt/batch/show", params={"batchId": batch_id},
                                              timeout=60)
    assert resp.status_code == 200, resp.text
    return resp.json()


def wait_batch(local: LocalDeployment, batch_id: str, timeout: float = 300) -> dict[str, Any]:
    return wait_until(f"batch {batch_id} to end", lambda: (s := show(local, batch_id))["status"] in TERMINAL and s,
                      timeout=timeout, poll=2)


def job_statuses(local: LocalDeployment) -> dict[str, str]:
    sm = local.client("sagemaker")
    return {j["LabelingJobName"]: j["LabelingJobStatus"]
            for j in sm.list_labeling_jobs(MaxResults=100)["LabelingJobSummaryList"]}


def store_snapshot(local: LocalDeployment) -> dict[tuple[str, str], str]:
    """(bucket, key) -> ETag of every object in the S3 store."""
    s3 = local.client("s3")
    out = {}
    for bucket in (b["Name"] for b in s3.list_buckets()["Buckets"]):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            out.update({(bucket, o["Key"]): o["ETag"] for o in page.get("Contents", [])})
    return out


def batch_files(local: LocalDeployment, batch_id: str) -> dict[str, bytes]:
    """Every file the batch wrote (chained inputs and GT output) under its processing prefix."""
    s3 = local.client("s3")
    bucket, prefix = local.settings.processing_bucket, f"{local.settings.processing_prefix}/{batch_id}/"
    files = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            files[obj["Key"]] = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
    return files


@contextlib.contextmanager
def airflow_on_emulator(tmp_path_factory: Any, name: str, seed: int = 0) -> Iterator[tuple[Any, Any, dict[str, Any]]]:
    """A real Airflow (embedded: api-server, scheduler, ...) on a local Ground Truth with instant
    tasks and S3 on its own SeaweedFS, smgt_batch parsed and unpaused: yields (airflow, emulator,
    the demo data's URIs). Fails the test when Airflow does not start."""
    import pytest
    import requests
    from s3_store import seaweedfs_store

    from smgt.api.auth import BATCH_DAG_ID
    from smgt.embedded import EmbeddedAirflow, EmbeddedAirflowError
    from smgt.local import LocalGroundTruth

    with seaweedfs_store(tmp_path_factory.mktemp(f"{name}-s3")) as store, LocalGroundTruth(
            port=0, task_seconds=0.0, seed=seed, s3=store, state_dir=tmp_path_factory.mktemp(f"{name}-gt")) as emu:
        demo = emu.upload_demo_data()
        stack = EmbeddedAirflow(tmp_path_factory.mktemp(f"{name}-airflow"), aws_env=emu.env(), extra_env={})
        try:
            stack.start()
        except (EmbeddedAirflowError, requests.RequestException) as exc:
            pytest.fail(f"the embedded Airflow did not start: {exc}")
        try:
            admin = stack.session("admin")
            stack.wait_for(lambda: admin.get(f"{stack.url}/api/v2/dags/{BATCH_DAG_ID}", timeout=30).ok,
                           "smgt_batch parsed", timeout=300)
            admin.patch(f"{stack.url}/api/v2/dags/{BATCH_DAG_ID}", json={"is_paused": False},
                        timeout=30).raise_for_status()
            yield stack, emu, demo
        finally:
            stack.stop()
