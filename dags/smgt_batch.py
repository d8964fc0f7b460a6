"""smgt_batch: one multi-level Ground Truth labeling batch per run, triggered with its config.

Trigger it from the UI form: pick a batch template (a file of include/batches/), fill in the batch
id (optional: generated from the template's prefix) and the input, and leave the Run ID empty; or
give the whole batch config (SPEC section 2) as conf with `labelingJobs`, from the form's Advanced
section, `airflow dags trigger smgt_batch --conf '<json>'`, the REST API, or the batch API's
`POST /smgt/batch/create` (run id = batchId). A batchId already used by another batch is refused.
"""

from __future__ import annotations

from airflow.sdk import get_current_context, task

from smgt.dag_factory import RESOLVE_TASK_ID, batch_params, build_batch_dag, skip_unused_tasks
from smgt.settings import get_settings


@task(task_id=RESOLVE_TASK_ID)
def resolve_batch() -> dict:
    """The run's batch config: from the conf, or from the form's template (label configs uploaded
    only after validation and pre-flight passed). Every rule of SPEC section 2 before any AWS call.

    A rejected config fails at once (VALIDATION_FAIL, its problems in XCom); anything else (AWS or
    Airflow's API unreachable, a worker lost) is retried like every task: the task only reads,
    checks and uploads the same label configs again."""
    from airflow.sdk.exceptions import AirflowFailException

    from smgt.batch import record_rejection
    from smgt.config import BatchConfigError
    from smgt.dag_factory import batch_id_claim, foreign_job_names, s3_storage
    from smgt.trigger_form import resolve_run

    context = get_current_context()
    run, ti = context["dag_run"], context["ti"]
    settings = get_settings()

    def batch_exists(batch_id: str) -> bool:
        # What a task can see (Airflow 3 gives tasks no metadata DB): another run of this DAG whose
        # run id is the batchId (batch/create, `--run-id`). Runs triggered from the form or the
        # REST API with a generated run id are checked at trigger time by the API server
        # (smgt.api.trigger_guard), which reads every batch's id; and every run by the claim below.
        taken = ti.get_dr_count(dag_id=run.dag_id, run_ids=[batch_id])
        return taken > (1 if run.run_id == batch_id else 0)

    try:
        config = resolve_run(
            run.conf or {},
            context["params"],
            run_id=run.run_id,
            run_time=run.logical_date or run.run_after,
            settings=settings,
            storage_factory=lambda: s3_storage(settings),
            # GT jobs tagged with this batchId are this batch's own (a re-run adopts them).
            foreign_job_names=lambda batch_id: foreign_job_names(settings, batch_id),
            batch_exists=batch_exists,
            # Holds the id in S3 at once: two runs given the same batchId at the same moment, which
            # the checks above cannot see in each other, do not both go on.
            claim=batch_id_claim(settings, ti, run),
        )
    except BatchConfigError as exc:  # its problems are in XCom already
        raise AirflowFailException(f"the batch config was rejected: {'; '.join(exc.problems)}") from exc
    except ValueError as exc:  # the run id is neither the batchId nor generated
        record_rejection([str(exc)])
        raise AirflowFailException(str(exc)) from exc
    return skip_unused_tasks(ti, config)


dag = build_batch_dag(
    "smgt_batch",
    resolve=resolve_batch,
    params=batch_params(get_settings().max_job_level),
    description="Multi-level SageMaker Ground Truth labeling batch, triggered with its config",
    doc_md=__doc__,
)
