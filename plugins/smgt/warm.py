"""Preload what batch tasks import into a process that forks task processes.

Airflow starts every task in a process forked from a long-lived parent: a Celery worker's pool
process, or one of the LocalExecutor's workers, which are forked from the scheduler. Whatever the
parent imported before it forked, each task process has without paying for it: `warm_task_parent`
imports the amazon provider's hooks and sensors, numpy, Pillow and shapely, loads the AWS service
models into the shared botocore loader (`smgt.gt.session.warm_up`), imports the batch DAG's
modules (`TASK_MODULES`) and what its tasks load on first use (trackeval, Pillow's image formats,
Airflow's listener plugins). Measured here: ~1.3 s of CPU once, instead of ~1.3 s in every task
process (bench/load_test.py for Celery, bench/demo_bench.py for the LocalExecutor).

Where it runs: Celery's ``worker_init`` (smgt.celery_config) and the scheduler's start when it
runs the LocalExecutor with fork (smgt.listeners.on_starting). Like Airflow's own plugins, the
modules of plugins/ are then loaded once per worker or scheduler: restart it after changing them (a
changed file in dags/ is read by the next task, as always).
"""

from __future__ import annotations

import importlib
import logging
import time

# What the batch DAG file imports at parse time, and what its tasks import when they run.
TASK_MODULES = ("smgt.dag_factory", "smgt.batch", "smgt.trigger_form", "smgt.preflight", "smgt.manifests",
                "smgt.qa", "smgt.qa.report", "smgt.rework")

log = logging.getLogger(__name__)

# Set once warmed: a process forked from a warm one (a task process, which Airflow's listeners also
# tell that it starts) has nothing left to do.
_warmed = False


def warm_task_parent(parent: str) -> bool:
    """Import `TASK_MODULES` and what they need into this process (`parent` names it in the log),
    once per process and its forks. Never raises: a failed warm-up is logged and only leaves each
    task to load things itself. Returns whether this process is warm."""
    global _warmed
    if _warmed:
        return True
    started = time.process_time()
    try:
        # The provider's base_aws first: with [aws] session_factory set, it imports smgt.gt.session
        # at its end, which must not be half-imported then.
        import airflow.providers.amazon.aws.hooks.base_aws  # noqa: F401

        from smgt.gt.session import warm_up

        warm_up()
        for module in TASK_MODULES:
            importlib.import_module(module)
        _warm_task_libraries()
    except Exception:
        log.exception("warming up %s failed; tasks will load their modules themselves", parent)
        return False
    _warmed = True
    log.info("%s warmed up in %.2f s of CPU (AWS models, task imports)", parent, time.process_time() - started)
    return True


def _warm_task_libraries() -> None:
    """The third-party libraries tasks use (numpy and shapely: the quality report and QA gate), and
    what they load on first use, found in a py-spy profile of the load test's worker: the quality
    report's trackeval metrics and Pillow's drawing and image formats (Image.open loads the format
    plugins), and Airflow's plugins, which each task process loads for its listeners
    (airflow.sdk.listener.get_listener_manager is cached per process)."""
    import numpy  # noqa: F401
    import PIL.Image
    import PIL.ImageDraw  # noqa: F401
    import shapely  # noqa: F401
    from airflow.sdk.listener import get_listener_manager

    from smgt.qa.levels import trackeval_metrics

    trackeval_metrics()
    PIL.Image.preinit()
    get_listener_manager()
