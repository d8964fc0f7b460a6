"""Recurring batches: every include/batches/*.yaml with a `schedule` becomes its own DAG.

Parsing reads only the YAML and label-config file names (no network). A broken batch file does not
take the others down: its DAG is replaced by a stand-in that fails Airflow's DAG validation with
the file's problems, so it shows as an import error naming that batch file, and every other batch
file still becomes its DAG.
"""

from __future__ import annotations

from pathlib import Path

from airflow.sdk import DAG, get_current_context, task

from smgt.batch import level_needs_rate
from smgt.batch_files import BatchFile, scheduled_batch_files
from smgt.dag_factory import RESOLVE_TASK_ID, build_batch_dag


def resolve_task(batch_file: BatchFile):
    @task(task_id=RESOLVE_TASK_ID, retries=1)
    def resolve_batch() -> dict:
        """Validate, pre-flight, upload label configs, build frame inputs: this run's batch config.
        A rejected file or config fails at once (VALIDATION_FAIL, problems in XCom); anything else
        is retried."""
        from airflow.sdk.exceptions import AirflowFailException

        from smgt.batch import record_rejection
        from smgt.batch_files import BatchFileError, batch_id_for, materialize_batch, read_batch_file
        from smgt.config import BatchConfigError
        from smgt.dag_factory import batch_id_claim, foreign_job_names, s3_storage
        from smgt.settings import get_settings

        context = get_current_context()
        run, ti = context["dag_run"], context["ti"]
        settings = get_settings()
        try:
            current = read_batch_file(Path(batch_file.path))  # the file as it is now, not at parse time
            run_time = run.logical_date or run.run_after
            config = materialize_batch(
                current,
                run_time,
                settings=settings,
                storage=s3_storage(settings),
                foreign_job_names=foreign_job_names(settings, batch_id_for(current.prefix, run_time)),
                claim=batch_id_claim(settings, ti, run),
            )
        except BatchFileError as exc:
            record_rejection([str(exc)])
            raise AirflowFailException(str(exc)) from exc
        except BatchConfigError as exc:  # materialize_batch left its problems in XCom
            raise AirflowFailException(f"the batch config was rejected: {'; '.join(exc.problems)}") from exc
        return config.to_conf()

    return resolve_batch


class BrokenBatchFile(DAG):
    """Stand-in DAG of a broken batch file: fails validation, which Airflow reports as an import error."""

    def validate(self) -> None:
        raise self.batch_file_error  # type: ignore[attr-defined]


good, broken = scheduled_batch_files()
for batch_file in good:
    config = batch_file.config
    globals()[batch_file.dag_id] = build_batch_dag(
        batch_file.dag_id,
        resolve=resolve_task(batch_file),
        schedule=batch_file.schedule,
        description=batch_file.spec.get("description") or f"Recurring labeling batch from {batch_file.path.name}",
        tags=["recurring"],
        levels=max(config.levels),
        rate_prompt_levels={level for level in config.levels if level_needs_rate(config, level)},
    )
for error in broken:
    stand_in = BrokenBatchFile(dag_id="smgt_recurring_" + error.path.stem.replace("-", "_"), schedule=None)
    stand_in.batch_file_error = error
    globals()[stand_in.dag_id] = stand_in
