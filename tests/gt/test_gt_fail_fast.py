"""Fail fast: GT errors no retry can fix fail the task on try 1 with GT's message; throttling, 5xx and
network errors are retried (botocore, then the task's retries). Real dag.test() runs with task retries
against the HTTP stand-in, so the try number and every call GT received are observed."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException
from botocore.exceptions import ClientError, EndpointConnectionError
from gt_standin import INPUT, FakeGroundTruth, Fault, make_request

from smgt.embedded import free_port
from smgt.gt.hooks import NON_RETRYABLE_ERROR_CODES, LabelingJobConflictError, is_non_retryable
from smgt.gt.operators import ERROR_XCOM_KEY, CreateLabelingJobOperator
from smgt.gt.sensors import LabelingJobFailedError

pytestmark = pytest.mark.timeout(300)


# dag.test() only runs DAGs it finds in a DAG bundle: the tests' DAGs live in a file of their own
# bundle, built from a spec file the tests append to (the DAG object run is the one parsed there).
DAG_FILE = """
import json
from datetime import timedelta
from pathlib import Path

from airflow.sdk import DAG

from smgt.gt.operators import CreateLabelingJobOperator
from smgt.gt.sensors import LabelingJobSensor

for spec in json.loads((Path(__file__).parent / "spec.json").read_text()):
    with DAG(spec["dag_id"], schedule=None,
             default_args={"retries": spec["retries"], "retry_delay": timedelta(seconds=0)}) as dag:
        if spec["kind"] == "create":
            CreateLabelingJobOperator(task_id="create_job", request=spec["request"],
                                      botocore_config=spec.get("botocore_config"))
        else:
            LabelingJobSensor(task_id="wait_for_job", job_name=spec["job_name"], deferrable=False,
                              poke_interval=0.01)
    globals()[spec["dag_id"]] = dag
"""


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    import json
    import os

    from airflow.utils import db

    db.initdb()
    folder = tmp_path_factory.mktemp("fail_fast_bundle")
    (folder / "fail_fast_dags.py").write_text(DAG_FILE)
    (folder / "spec.json").write_text("[]")
    key = "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"
    saved = os.environ.get(key)
    local = "airflow.dag_processing.bundles.local.LocalDagBundle"
    os.environ[key] = json.dumps([{"name": "dags-folder", "classpath": local, "kwargs": {}},
                                  {"name": "fail-fast-tests", "classpath": local, "kwargs": {"path": str(folder)}}])
    try:
        yield folder
    finally:
        if saved is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = saved


def run_once(bundle: Path, spec: dict[str, Any], retries: int = 2) -> tuple[str, int, dict | None]:
    """dag.test() a one-task DAG with `retries`; (final state, try number, the task's `error` XCom)."""
    import importlib.util
    import json

    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    dag_id = f"fail_fast_{uuid.uuid4().hex[:8]}"
    specs = json.loads((bundle / "spec.json").read_text())
    specs.append({"dag_id": dag_id, "retries": retries, **spec})
    (bundle / "spec.json").write_text(json.dumps(specs))
    module_spec = importlib.util.spec_from_file_location(f"fail_fast_dags_{dag_id}", bundle / "fail_fast_dags.py")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    run = getattr(module, dag_id).test()
    with create_session() as session:
        ti = session.scalars(select(TaskInstance).where(TaskInstance.dag_id == dag_id,
                                                       TaskInstance.run_id == run.run_id)).one()
        row = session.scalars(select(XComModel).where(
            XComModel.dag_id == dag_id, XComModel.run_id == run.run_id, XComModel.key == ERROR_XCOM_KEY)).first()
        error = XComModel.deserialize_value(row) if row is not None else None
        return str(ti.state), ti.try_number, error


def create(name: str, **kwargs: Any) -> dict[str, Any]:
    return {"kind": "create", "request": make_request(name), **kwargs}


def wait(name: str) -> dict[str, Any]:
    return {"kind": "wait", "job_name": name}


@pytest.mark.parametrize("code", ["ValidationException", "AccessDeniedException", "ResourceLimitExceeded",
                                  "InvalidClientTokenId", "NotAuthorized"])
def test_an_error_no_retry_can_fix_fails_on_try_one_with_gts_message(gt: FakeGroundTruth, bundle: Path,
                                                                      code: str) -> None:
    assert code in NON_RETRYABLE_ERROR_CODES
    gt.inject(Fault("CreateLabelingJob", code, times=5))
    state, try_number, error = run_once(bundle, create("nb-track-refused"))
    assert (state, try_number) == ("failed", 1)  # no task retry, although 2 were allowed
    assert gt.count("CreateLabelingJob") == 1  # and no botocore retry
    assert error == {"operation": "CreateLabelingJob", "code": code, "message": f"{code}: injected {code}",
                     "retryable": False}
    assert not gt.jobs


def test_the_task_fails_with_an_airflow_fail_exception_carrying_gts_words(gt: FakeGroundTruth) -> None:
    gt.inject(Fault("CreateLabelingJob", "ValidationException"))
    with pytest.raises(AirflowFailException, match="CreateLabelingJob nb-track-vehicle failed with an error no "
                                                   "retry can fix: ValidationException: injected ValidationException"):
        CreateLabelingJobOperator(task_id="create_job", request=make_request()).execute({})


def test_a_name_taken_by_someone_elses_job_fails_on_try_one(gt: FakeGroundTruth, bundle: Path) -> None:
    other = make_request("nb-track-taken")
    other["InputConfig"]["DataSource"]["S3DataSource"]["ManifestS3Uri"] = f"{INPUT}/someone-else.manifest"
    gt.add_job(other)
    state, try_number, error = run_once(bundle, create("nb-track-taken"))
    assert (state, try_number) == ("failed", 1)
    assert error["code"] == "LabelingJobConflictError" and error["retryable"] is False
    assert "'nb-track-taken' already exists with a different configuration (input manifest" in error["message"]
    assert gt.count("CreateLabelingJob") == 1


@pytest.mark.parametrize(("code", "status"), [("ThrottlingException", 400), ("InternalFailure", 500),
                                              ("ServiceUnavailable", 503)])
def test_throttling_and_5xx_are_retried_and_pass_on_try_one(gt: FakeGroundTruth, bundle: Path, code: str,
                                                              status: int) -> None:
    gt.inject(Fault("CreateLabelingJob", code, status=status, times=3))
    state, try_number, error = run_once(bundle, create("nb-track-throttled"))
    assert (state, try_number, error) == ("success", 1, None)
    assert gt.count("CreateLabelingJob") == 4  # three refused by GT, retried by botocore, then created
    assert list(gt.jobs) == ["nb-track-throttled"]


def test_network_errors_are_retried_by_the_task(gt: FakeGroundTruth, bundle: Path) -> None:
    import json
    import os

    # The connection points at a port nobody listens on: botocore retries, then Airflow retries.
    saved = os.environ["AIRFLOW_CONN_AWS_DEFAULT"]
    conn = json.loads(saved)
    conn["extra"]["endpoint_url"] = f"http://127.0.0.1:{free_port()}"
    os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = json.dumps(conn)
    try:
        config = {"retries": {"mode": "standard", "max_attempts": 2}, "connect_timeout": 1}
        state, try_number, error = run_once(bundle, create("nb-track-offline", botocore_config=config), retries=1)
    finally:
        os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = saved
    assert (state, try_number) == ("failed", 2)  # tried again by Airflow: a network error may pass
    assert error["code"] == "EndpointConnectionError" and error["retryable"] is True


def test_the_wait_fails_fast_on_a_job_that_does_not_exist_or_failed(gt: FakeGroundTruth, bundle: Path) -> None:
    state, try_number, error = run_once(bundle, wait("never-created"))
    assert (state, try_number) == ("failed", 1)
    assert error["code"] == "ResourceNotFound" and "Could not find labeling job never-created" in error["message"]

    gt.add_job(make_request("nb-track-broken"), statuses=["Failed"], failure_reason="ClientError: bad manifest")
    state, try_number, error = run_once(bundle, wait("nb-track-broken"))
    assert (state, try_number) == ("failed", 1)
    assert error["message"] == "Labeling job nb-track-broken ended Failed: ClientError: bad manifest"
    assert issubclass(LabelingJobFailedError, AirflowFailException)


def client_error(code: str, status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "CreateLabelingJob")


def test_classification_by_error_code() -> None:
    for code in ("ValidationException", "AccessDeniedException", "ResourceLimitExceeded", "ResourceInUse",
                 "NoSuchKey", "AccessDenied", "InvalidClientTokenId"):
        assert is_non_retryable(client_error(code)), code
    for code in ("ThrottlingException", "Throttling", "RequestLimitExceeded", "RequestTimeout", "InternalFailure",
                 "ServiceUnavailable", "ExpiredTokenException", "SomethingNew"):
        assert not is_non_retryable(client_error(code)), code
    assert not is_non_retryable(client_error("ValidationException", 500))  # a 5xx is transient whatever its code
    assert not is_non_retryable(EndpointConnectionError(endpoint_url="http://x"))
    assert is_non_retryable(LabelingJobConflictError("taken"))
