"""AWS clients: one botocore loader per process (smgt.gt.session), the warm-up of the processes that
fork task processes (smgt.warm: the Celery worker, the LocalExecutor's scheduler), and the user
agent's Caller found without inspect.stack (FastCallerMixin)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from typing import Any

import pytest
from airflow.providers.amazon.aws.hooks import base_aws
from airflow.sdk import BaseOperator
from gt_standin import FakeGroundTruth

from smgt.gt.hooks import AwsHook, LabelingJobHook, calling_class
from smgt.gt.session import LOADER, SharedLoaderSessionFactory, warm_up


def test_the_provider_uses_the_shared_loader_factory_as_deployments_configure_it() -> None:
    # tests/conftest.py sets [aws] session_factory like the embedded default, stack.sh and compose.
    assert base_aws.SessionFactory is SharedLoaderSessionFactory


def test_clients_share_one_loader_whose_search_paths_do_not_grow(gt: FakeGroundTruth) -> None:
    hooks = [AwsHook(aws_conn_id="aws_default", client_type="s3"), LabelingJobHook(aws_conn_id="aws_default")]
    for hook in hooks:
        assert hook.conn.meta.endpoint_url == gt.endpoint_url
        assert hook.get_session()._session.get_component("data_loader") is LOADER
    paths = list(LOADER.search_paths)
    for _ in range(5):  # every boto3 session appends boto3's data folder to its loader's paths
        AwsHook(aws_conn_id="aws_default", client_type="sns").get_conn()
    assert LOADER.search_paths == paths
    assert len(set(paths)) == len(paths)


def test_hooks_with_one_connection_share_a_session_in_a_thread_of_a_process(gt: FakeGroundTruth) -> None:
    session = AwsHook(aws_conn_id="aws_default", client_type="s3").get_session()
    assert LabelingJobHook(aws_conn_id="aws_default").get_session() is session
    in_thread: list[Any] = []
    worker = threading.Thread(target=lambda: in_thread.append(AwsHook(aws_conn_id="aws_default").get_session()))
    worker.start()
    worker.join()
    assert in_thread[0] is not session  # boto3: sessions are not to be shared between threads

    factory = SharedLoaderSessionFactory(conn=None)
    keys = {"aws_access_key_id": "AKIA1", "aws_secret_access_key": "s1", "region_name": "us-east-1"}
    first = factory._create_basic_session(dict(keys))
    assert factory._create_basic_session(dict(keys)) is first
    assert factory._create_basic_session({**keys, "aws_secret_access_key": "s2"}) is not first  # rotated
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # nor between processes: a fork gets its own
        os.write(write, b"new" if factory._create_basic_session(dict(keys)) is not first else b"same")
        os._exit(0)
    os.waitpid(child, 0)
    assert os.read(read, 8) == b"new"


def test_the_shared_loader_reads_a_service_model_once(gt: FakeGroundTruth, monkeypatch: pytest.MonkeyPatch) -> None:
    warm_up()
    reads: list[str] = []
    original = type(LOADER).load_data_with_path

    def counting(self: Any, name: str) -> Any:
        reads.append(name)
        return original(self, name)

    monkeypatch.setattr(type(LOADER), "load_data_with_path", counting)
    hook = LabelingJobHook(aws_conn_id="aws_default")
    assert hook.describe_labeling_job is not None and hook.conn.meta.service_model.service_name == "sagemaker"
    AwsHook(aws_conn_id="aws_default", client_type="s3").get_conn()
    assert not [name for name in reads if name.startswith(("sagemaker/", "s3/"))], reads


def test_celery_worker_warms_up_before_forking_its_pool() -> None:
    from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
    from celery.signals import worker_init

    from smgt.celery_config import CELERY_CONFIG, _warm_worker
    from smgt.warm import TASK_MODULES

    assert CELERY_CONFIG == DEFAULT_CELERY_CONFIG
    assert any(receiver() is _warm_worker for _, receiver in worker_init.receivers)
    _warm_worker()
    assert set(TASK_MODULES) | {"boto3", "numpy", "airflow.providers.amazon.aws.sensors.base_aws"} <= set(sys.modules)


# A fresh interpreter that calls the listener as Airflow's Job() does in the `airflow <command>` named
# by argv[1], then prints which of the tasks' imports it has.
_ON_STARTING = """
import sys
sys.argv = ["airflow", sys.argv[1]]
from smgt import listeners
listeners.on_starting(component=None)
print(sorted(m for m in ("numpy", "shapely", "smgt.qa.report", "smgt.dag_factory", "trackeval.metrics",
                          "PIL.PngImagePlugin") if m in sys.modules))
"""


@pytest.mark.parametrize(("command", "executor", "warmed"), [
    ("scheduler", "LocalExecutor", True),
    ("scheduler", "CeleryExecutor", False),  # its tasks fork from the Celery worker, warmed by worker_init
    ("triggerer", "LocalExecutor", False),
])
def test_a_scheduler_forking_local_executor_workers_preloads_the_task_imports(
        command: str, executor: str, warmed: bool) -> None:
    env = dict(os.environ, AIRFLOW__CORE__EXECUTOR=executor)
    out = subprocess.run([sys.executable, "-c", _ON_STARTING, command], env=env, capture_output=True, text=True,
                         timeout=120, check=True).stdout.strip().splitlines()[-1]
    expected = (["PIL.PngImagePlugin", "numpy", "shapely", "smgt.dag_factory", "smgt.qa.report", "trackeval.metrics"]
                if warmed else [])
    assert out == repr(expected)


class _LabelingOperator(BaseOperator):
    def execute(self, context: Any) -> str:
        return LabelingJobHook(aws_conn_id="aws_default").conn.meta.config.user_agent_extra


def test_user_agent_names_the_calling_operator_as_the_provider_does(gt: FakeGroundTruth) -> None:
    agent = _LabelingOperator(task_id="t").execute({})
    assert "Caller/_LabelingOperator" in agent and "Airflow/" in agent
    outside = LabelingJobHook(aws_conn_id="aws_default").conn.meta.config.user_agent_extra
    assert "Caller/Unknown" in outside

    class Probe:
        def execute(self) -> tuple[str | None, str | None]:
            return calling_class("execute"), base_aws.AwsGenericHook._find_operator_class_name("execute")

    ours, providers = Probe().execute()
    assert ours == providers == "Probe"
