"""Wiring of a batch DAG: shared by `smgt_batch` (conf-triggered) and the recurring batch DAGs.

    resolve_batch
      -> level_1: plan_jobs -> labeling_job[jobName]
                 (one deferrable task per job: prepares its input, creates it, waits for it in the
                 triggerer, then collects its output, writes its quality report and runs its QA
                 gate's re-work rounds; smgt.labeling_job)
      -> level_2: down_sampling_rate (HITL, skipped when every rate is given) -> plan_jobs -> labeling_job[...]
      -> level_3: ...
      -> finalize_batch (always runs: COMPLETE or INTERNAL_ERROR, SNS message, fails the run on error)

Every labeling job is one expansion of the mapped `labeling_job` task of its level, shown in the UI
under its jobName (named map index). A level starts only when every job of the previous levels
completed (`none_failed`); a level with no jobs expands to nothing and passes through.

Only wiring lives here: what each task does is in `smgt.batch` (plain functions). Imports of the
task logic happen inside the tasks, so parsing a DAG file stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, Param, get_current_context, task
from airflow.sdk.definitions.taskgroup import TaskGroup

from smgt.labeling_job import QUALITY_XCOM_KEY, REWORK_XCOM_KEY, BatchLabelingJobOperator, gt_hook, s3_storage
from smgt.metadata import RATE_PARAM, DownSamplingRateOperator
from smgt.settings import get_settings

RESOLVE_TASK_ID = "resolve_batch"
FINALIZE_TASK_ID = "finalize_batch"


def level_group_id(level: int) -> str:
    return f"level_{level}"


JOB_TASK_ID = "labeling_job"


def job_task_id(level: int) -> str:
    """The mapped task of `level`'s jobs (`BatchLabelingJobOperator`; XCom: each job's result)."""
    return f"{level_group_id(level)}.{JOB_TASK_ID}"


def plan_task_id(level: int) -> str:
    return f"{level_group_id(level)}.plan_jobs"


def unused_task_ids(config: Any, dag_task_ids: set[str]) -> list[str]:
    """Tasks of a batch DAG that `config` (a BatchConfig) never needs: the rate prompt of a level
    whose chained jobs all carry their own rate, and the prompt and plan of a level without jobs
    (the third level of a two-level batch). Skipped by resolve_batch, they never start a process."""
    from smgt.batch import level_needs_rate
    from smgt.metadata import RATE_TASK_ID

    levels = {job.jobLevel for job in config.labelingJobs}
    unused = []
    level = 1
    while plan_task_id(level) in dag_task_ids:  # the DAG's levels
        rate_task_id = f"{level_group_id(level)}.{RATE_TASK_ID}"
        if rate_task_id in dag_task_ids and (level not in levels or not level_needs_rate(config, level)):
            unused.append(rate_task_id)
        if level not in levels:
            unused.append(plan_task_id(level))
        level += 1
    return unused


def skip_unused_tasks(ti: Any, config: Any) -> dict[str, Any]:
    """resolve_batch's return: the batch conf; the tasks `config` does not need are skipped at once
    (Airflow's skip of downstream tasks: the task's own success plus their state, in one call), so
    a two-level batch with its rates does not start the prompt and plan tasks it would skip anyway."""
    from airflow.sdk.exceptions import DownstreamTasksSkipped

    conf = config.to_conf()
    unused = unused_task_ids(config, set(ti.task.dag.task_ids))
    if not unused:
        return conf
    # Raising skips the return-value push: push it first.
    ti.xcom_push(key="return_value", value=conf)
    raise DownstreamTasksSkipped(tasks=unused)


def batch_id_claim(settings: Any, ti: Any, run: Any) -> Callable[[str], None]:
    """What a resolve task claims a batchId with (smgt.batch.claim_batch_id) for its run; a holder
    run that is no longer in Airflow gives the claim up, asked with the task's get_dr_count (Airflow
    3 gives tasks no metadata DB)."""
    from smgt.batch import claim_batch_id

    def holder_exists(holder: str) -> bool:
        dag_id, _, run_id = holder.partition("/")
        return ti.get_dr_count(dag_id=dag_id, run_ids=[run_id]) > 0

    return lambda batch_id: claim_batch_id(s3_storage(settings), settings, batch_id, f"{run.dag_id}/{run.run_id}",
                                           holder_exists=holder_exists)


def foreign_job_names(settings: Any, batch_id: str) -> Callable[[list[str]], list[str]]:
    """Names that already exist in GT and were not created by this batch (a retry adopts its own)."""
    from smgt.batch import jobs_owned_by_others

    return lambda names: jobs_owned_by_others(gt_hook(settings), names, batch_id)


def _collected(ti: Any, level: int) -> list[dict[str, Any]]:
    """Collected results of one level (a mapped task: one XCom per completed job)."""
    pulled = ti.xcom_pull(task_ids=job_task_id(level))
    return [pulled] if isinstance(pulled, dict) else [r for r in (pulled or []) if r]


def _job_errors(ti: Any, level: int, plans: list[dict[str, Any]]) -> dict[str, str]:
    """GT's words for each job of a level whose task failed (its input, its create, or waiting):
    job name -> message."""
    from smgt.gt.operators import ERROR_XCOM_KEY

    errors: dict[str, str] = {}
    for index, spec in enumerate(plans):
        record = ti.xcom_pull(task_ids=job_task_id(level), key=ERROR_XCOM_KEY, map_indexes=index)
        if isinstance(record, dict) and record.get("message"):
            errors[spec["job_name"].lower()] = f"{record.get('operation', 'labeling_job')} failed: {record['message']}"
    return errors


def _rework_failures(ti: Any, level: int, plans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A FAILED result for each job of a level whose QA gate's re-work job failed (the job itself
    completed in GT, so GT alone would call it COMPLETE)."""
    from smgt.batch import JOB_FAILED

    failed = []
    for index, spec in enumerate(plans):
        rework = ti.xcom_pull(task_ids=job_task_id(level), key=REWORK_XCOM_KEY, map_indexes=index)
        last = ((rework or {}).get("rounds") or [{}])[-1]
        if last.get("status") == JOB_FAILED:
            failed.append({"jobName": spec["job_name"], "status": JOB_FAILED, "failureReason":
                           f"QA gate re-work job {last['jobName']} (round {last['round']}) {last.get('gtStatus')}: "
                           f"{last.get('failureReason') or 'no reason given'}"})
    return failed


def _batch_config(ti: Any) -> Any:
    from smgt.config import BatchConfig

    return BatchConfig.model_validate(ti.xcom_pull(task_ids=RESOLVE_TASK_ID))


@task(task_id="plan_jobs", trigger_rule="none_failed")
def plan_jobs(level: int) -> list[dict[str, Any]]:
    """Arguments of this level's labeling_job tasks; chained inputs come from earlier levels' outputs."""
    from smgt.batch import plan_level

    ti = get_current_context()["ti"]
    with _error_recorded(f"planning level {level}'s jobs"):
        config = _batch_config(ti)
        finished: list[dict[str, Any]] = []
        for earlier in range(1, level):
            finished.extend(_collected(ti, earlier))
        answer = ti.xcom_pull(task_ids=f"{level_group_id(level)}.down_sampling_rate") if level > 1 else None
        posted_rate = answer.get(RATE_PARAM) if isinstance(answer, dict) else None
        return plan_level(config, level, finished=finished, posted_rate=posted_rate)


@contextmanager
def _error_recorded(operation: str) -> Iterator[None]:
    """Leave what fails in the block in the task's XCom (key `error`, as a labeling job's GT error),
    then let it fail the try: batch/show says why an INTERNAL_ERROR came from a task that is not a
    labeling job, instead of pointing at the task logs."""
    from smgt.gt.operators import push_error

    try:
        yield
    except Exception as exc:
        push_error(get_current_context(), exc, operation=operation)
        raise


@task(task_id=FINALIZE_TASK_ID, trigger_rule="all_done")
def finalize_batch(max_level: int) -> dict[str, Any]:
    """COMPLETE or INTERNAL_ERROR, with the job and reason; publish the batch's SNS message."""
    from airflow.sdk.exceptions import AirflowFailException

    from smgt.batch import INTERNAL_ERROR, batch_outcome, publish_outcome

    settings = get_settings()
    ti = get_current_context()["ti"]
    raw = ti.xcom_pull(task_ids=RESOLVE_TASK_ID)
    if raw is None:
        raise AirflowFailException("the batch config was rejected; nothing was created (see resolve_batch's log)")
    config = _batch_config(ti)
    results: list[dict[str, Any]] = []
    started: list[str] = []
    errors: dict[str, str] = {}
    for level in range(1, max_level + 1):
        results.extend(_collected(ti, level))
        plans = ti.xcom_pull(task_ids=plan_task_id(level)) or []
        results.extend(_rework_failures(ti, level, plans))
        started.extend(spec["job_name"] for spec in plans)
        errors.update(_job_errors(ti, level, plans))
    hook = gt_hook(settings)

    def describe(name: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            return hook.describe_labeling_job(name)
        except ClientError:
            return None

    outcome = batch_outcome(config, results=results, started=started, describe=describe, errors=errors)
    _batch_quality_report(ti, settings, config.batchId, max_level)
    with _error_recorded(f"publishing the batch's {outcome['status']} message to "
                         f"{config.destinationSnsArn or settings.default_sns_topic_arn}"):
        publish_outcome(settings, config.destinationSnsArn, outcome)
    if outcome["status"] == INTERNAL_ERROR:
        # Failing the task fails the run, which is how the UI and the API see INTERNAL_ERROR.
        ti.xcom_push(key="outcome", value=outcome)
        raise AirflowFailException(outcome["message"])
    return outcome


def _batch_quality_report(ti: Any, settings: Any, batch_id: str, max_level: int) -> None:
    """Write the batch's quality report from its jobs' report summaries; push where it is (or the
    error) as XCom `quality_report` of finalize_batch. Never fails the batch."""
    import logging

    from smgt.batch import batch_prefix
    from smgt.qa.report import batch_report_uri, write_batch_report

    try:
        summaries: list[dict[str, Any]] = []
        for level in range(1, max_level + 1):
            pulled = ti.xcom_pull(task_ids=job_task_id(level), key=QUALITY_XCOM_KEY)
            pulled = [pulled] if isinstance(pulled, dict) else [p for p in (pulled or []) if isinstance(p, dict)]
            summaries.extend(p for p in pulled if "error" not in p)
        uri = batch_report_uri(batch_prefix(settings, batch_id))
        report = write_batch_report(s3_storage(settings), batch_id, uri, summaries)
        ti.xcom_push(key=QUALITY_XCOM_KEY, value={"reportS3Uri": uri, "jobs": len(report["jobs"])})
    except Exception as error:
        logging.getLogger(__name__).exception("quality report of batch %s failed", batch_id)
        ti.xcom_push(key=QUALITY_XCOM_KEY, value={"error": f"{type(error).__name__}: {error}"[:500]})


def build_batch_dag(
    dag_id: str,
    *,
    resolve: Callable[..., Any],
    schedule: Any = None,
    params: dict[str, Any] | None = None,
    description: str,
    doc_md: str | None = None,
    tags: list[str] | None = None,
    levels: int | None = None,
    rate_prompt_levels: set[int] | None = None,
) -> DAG:
    """One batch DAG. `resolve` is a @task with task_id RESOLVE_TASK_ID returning the batch conf.

    A DAG whose jobs are known at parse time (a batch file) passes `levels` (its deepest level)
    and `rate_prompt_levels` (levels with a chained job without rate), so it carries no task it
    can never use; by default every level up to the configured maximum can ask for a rate.
    """
    settings = get_settings()
    levels = levels or settings.max_job_level
    if rate_prompt_levels is None:
        rate_prompt_levels = set(range(2, levels + 1))
    with DAG(
        dag_id=dag_id,
        schedule=schedule,
        params=params or {},
        description=description,
        doc_md=doc_md,
        tags=["smgt", *(tags or [])],
        catchup=False,
        max_active_runs=64,
        default_args={
            "retries": settings.task_retries,
            "retry_delay": timedelta(seconds=10),
            "retry_exponential_backoff": True,
        },
    ) as dag:
        resolved: Any = resolve()
        jobs: list[Any] = []  # every level's mapped job tasks so far
        for level in range(1, levels + 1):
            # A level waits for every earlier level directly, not only through the one before or
            # its rate prompt: resolve_batch skips the prompts and plans a batch does not need
            # (skip_unused_tasks), and a skipped task must not let the next one start early.
            earlier = jobs or [resolved]
            with TaskGroup(level_group_id(level)):
                specs = plan_jobs(level)
                earlier >> specs
                if level in rate_prompt_levels:
                    gate = DownSamplingRateOperator(
                        task_id="down_sampling_rate",
                        level=level,
                        config_task_id=RESOLVE_TASK_ID,
                        trigger_rule="none_failed",
                        # Retried like every task: a worker or scheduler crash while it decides
                        # whether to ask (or parks the prompt) must not fail the batch; a retry
                        # decides again and, if the rate is still needed, asks again.
                    )
                    earlier >> gate >> specs
                jobs.append(BatchLabelingJobOperator.partial(
                    task_id=JOB_TASK_ID, map_index_template="{{ task.job_name }}").expand_kwargs(specs))
        jobs >> finalize_batch(levels)
    return dag


def batch_params(max_job_level: int, *, settings: Any = None, batches_folder: Any = None) -> dict[str, Param]:
    """The `smgt_batch` trigger form (see `smgt.trigger_form`): a template select, batchId, input,
    topic and (advanced) labelingJobs, each with a description; defaults = the notebook's batch on
    the demo manifest, so triggering the form unchanged starts a working batch. `max_job_level` is
    checked by resolve_batch (it is part of the batch config rules), not by the form.

    Read at parse time from the batch files' YAML only (no network). The fields carry only their
    types: a bad value reaches resolve_batch, which rejects it with batch/create's messages
    (`smgt.config.validate_batch_config`) instead of Airflow's JSON-schema wording.
    """
    from smgt.batch_files import batch_templates
    from smgt.trigger_form import CUSTOM, default_template, demo_manifest_uri

    settings = settings or get_settings()
    templates = batch_templates(batches_folder)
    names = [t.name for t in templates]
    display = {
        t.name: f"{t.name}: {t.description or f'{t.jobs} jobs'} (batch id {t.prefix}-...)" for t in templates
    }
    display[CUSTOM] = "custom: write labelingJobs yourself (Custom batch)"
    return {
        "template": Param(
            default_template(names),
            type="string",
            enum=[*names, CUSTOM],
            values_display=display,
            title="Batch template",
            description="A batch file of include/batches/: its jobs, label configs and level-2 audits. "
                        "Fill in only the batch id and the input. 'custom': give labelingJobs under Custom batch.",
        ),
        "batchId": Param(
            None,
            type=["null", "string"],
            title="Batch id",
            description="Optional. Letters, digits and '-', not used by another batch; job names are "
                        "<batch id>-<template job>, at most 63 characters. Empty: <template prefix>-<YYYYmmddHHMMSS>. "
                        "Leave the Run ID empty (or equal to the batch id).",
        ),
        "input": Param(
            demo_manifest_uri(settings),
            type=["null", "string"],
            title="Input",
            description="What the template's level-1 jobs label: an input manifest (s3://bucket/key, one JSON "
                        "line per video or image), or a frames prefix ending in '/' (one sequence per video "
                        "folder below it). Empty: the template's own input. Default: the demo video.",
        ),
        "destinationSnsArn": Param(
            None,
            type=["null", "string"],
            title="SNS topic for the result message",
            description="Optional SNS topic ARN; empty: the template's, else the deployment's default topic.",
            section="Custom batch",
        ),
        "labelingJobs": Param(
            None,
            type=["null", "array"],
            title="Labeling jobs (custom batch)",
            description="Optional: the batch's jobs as JSON (SPEC section 2), e.g. from "
                        "examples/notebook_batch.json. When given, the template and input are not used "
                        "and the batch id is required.",
            section="Custom batch",
            # Only "a list of objects" (the form then edits it as JSON): every rule of a job is
            # checked by resolve_batch, with the API's messages, not by Airflow's JSON schema.
            items={"type": "object"},
        ),
    }
