"""Celery configuration of a Celery-executor deployment: Airflow's, plus a warm worker.

Set ``[celery] celery_config_options = smgt.celery_config.CELERY_CONFIG`` (scripts/stack.sh and
docker-compose.yaml do). The options are Airflow's defaults unchanged; importing this module also
connects Celery's ``worker_init`` signal, which fires in the worker's main process before it forks
its pool: there `smgt.gt.session.warm_up` imports what every task imports (boto3, the amazon
provider's hooks and sensors) and loads the AWS service models into the shared botocore loader, so
every pool process, and every task process forked from one, starts with them instead of paying
~1 s of CPU per task (bench/load_test.py measures the drain).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
from celery.signals import worker_init

CELERY_CONFIG: dict[str, Any] = dict(DEFAULT_CELERY_CONFIG)

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
    except Exception:
        log.exception("warming up the Celery worker failed; tasks will load their modules themselves")
        return
    log.info("Celery worker warmed up in %.2f s of CPU (AWS models, task imports)", time.process_time() - started)
