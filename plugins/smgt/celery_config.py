"""Celery configuration of a Celery-executor deployment: Airflow's, plus a warm worker.

Set ``[celery] celery_config_options = smgt.celery_config.CELERY_CONFIG`` (scripts/stack.sh and
docker-compose.yaml do). The options are Airflow's defaults unchanged; importing this module also
connects Celery's ``worker_init`` signal, which fires in the worker's main process before it forks
its pool: there `smgt.warm.warm_task_parent` preloads what every task imports, so every pool process,
and every task process forked from one, starts with it instead of paying ~1 s of CPU per task
(bench/load_test.py measures the drain; each task still parses its DAG file, as Airflow requires).
Restart the worker after changing plugins/ (see smgt.warm).
"""

from __future__ import annotations

from typing import Any

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
from celery.signals import worker_init

from smgt.warm import warm_task_parent

CELERY_CONFIG: dict[str, Any] = dict(DEFAULT_CELERY_CONFIG)


@worker_init.connect
def _warm_worker(**_: Any) -> None:
    """Never stops the worker (see warm_task_parent)."""
    warm_task_parent("the Celery worker")
