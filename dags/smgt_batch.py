"""smgt_batch: one multi-level Ground Truth labeling batch per run, triggered with its config.

Trigger it with the batch config (SPEC section 2) as conf and the batchId as run id, from the UI
form, `airflow dags trigger smgt_batch --run-id <batchId> --conf '<json>'`, the REST API, or the
batch API's `POST /smgt/batch/create`.
"""

from __future__ import annotations

from airflow.sdk import get_current_context, task

from smgt.dag_factory import RESOLVE_TASK_ID, batch_params, build_batch_dag
from smgt.settings import get_settings


@task(task_id=RESOLVE_TASK_ID, retries=0)
def resolve_batch() -> dict:
    """Validate the conf (every rule of SPEC section 2) before anything touches AWS."""
    from smgt.batch import load_batch
    from smgt.dag_factory import foreign_job_names

    run = get_current_context()["dag_run"]
    conf = run.conf or {}
    settings = get_settings()
    config = load_batch(
        conf,
        run_id=run.run_id,
        settings=settings,
        # GT jobs tagged with this batchId are this batch's own (a re-run adopts them).
        foreign_job_names=foreign_job_names(settings, str(conf.get("batchId"))),
    )
    return config.to_conf()


dag = build_batch_dag(
    "smgt_batch",
    resolve=resolve_batch,
    params=batch_params(get_settings().max_job_level),
    description="Multi-level SageMaker Ground Truth labeling batch, triggered with its config",
    doc_md=__doc__,
)
