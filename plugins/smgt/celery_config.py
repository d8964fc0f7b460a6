"""Celery configuration of a Celery-executor deployment: Airflow's, plus a warm worker.

Set ``[celery] celery_config_options = smgt.celery_config.CELERY_CONFIG`` (scripts/stack.sh and
docker-compose.yaml do). The options are Airflow's defaults unchanged; importing this module also
connects Celery's ``worker_init`` signal, which fires in the worker's main process before it forks
its pool: there `smgt.gt.session.warm_up` imports what every task imports (boto3, the amazon
provider's hooks and sensors) and loads the AWS service models into the shared botocore loader, and
the batch DAG's modules (`TASK_MODULES`) are imported, so every pool process, and every task process
forked from one, starts with them instead of paying ~1 s of CPU per task (bench/load_test.py
measures the drain; each task still parses its DAG file, as Airflow requires).

Like Airflow's own plugins, the modules of plugins/ are then loaded once per worker: restart the
worker after changing them (a changed file in dags/ is read by the next task, as always).
"""

from __future__ import annotations

import importlib
import logging
import time
from typing import Any

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
from celery.signals import worker_init

CELERY_CONFIG: dict[str, Any] = dict(DEFAULT_CELERY_CONFIG)

# What the batch DAG file imports at parse time, and what its tasks import when they run.
TASK_MODULES = ("smgt.dag_factory", "smgt.batch", "smgt.trigger_form", "smgt.preflight", "smgt.manifests",
                "smgt.qa", "smgt.qa.report", "smgt.rework")

log = logging.getLogger(__name__)


@worker_init.connect
def _warm_worker(**_: Any) -> None:
    """Never stops the worker: a failed warm-up only leaves each task to load things itself."""
    started = time.process_time()
    try:
        # The provider's base_aws first: with [aws] session_factory set, it imports smgt.gt.session
        # at its end, which must not be half-imported then.
        import airflow.providers.amazon.aws.hooks.base_aws  # noqa: F401

        from smgt.gt.session import warm_up

        warm_up()
        for module in TASK_MODULES:
            importlib.import_module(module)
    except Exception:
        log.exception("warming up the Celery worker failed; tasks will load their modules themselves")
        return
    log.info("Celery worker warmed up in %.2f s of CPU (AWS models, task imports)", time.process_time() - started)
