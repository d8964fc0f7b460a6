"""The down-sampling rate a batch waits for before a level >= 2 starts (SPEC section 3).

The wait is Airflow's own human-in-the-loop entry: it shows under Required Actions in the UI, can
be answered over the REST API, and on Airflow 3.3 parks the task in AWAITING_INPUT, which holds
neither a worker slot nor a trigger. `answer_down_sampling_rate` answers it through the same code
path as the REST API, so the batch API, the UI and the tests resume a batch the same way.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.hitl import HITLEntryOperator
from airflow.sdk import Param
from airflow.sdk.exceptions import AirflowSkipException

RATE_PARAM = "downSamplingRate"
RATE_TASK_ID = "down_sampling_rate"  # inside the level_N task group


class DownSamplingRateOperator(HITLEntryOperator):
    """Ask a QA manager for `downSamplingRate` when a chained job of this level has none.

    Skips itself (no prompt) when every chained job of the level carries its own rate. The
    answer is validated by the Param schema (0 < rate <= 100) before the task resumes.
    """

    def __init__(self, *, level: int, config_task_id: str, **kwargs: Any) -> None:
        # The DAG's own params (the batch config form) are handed to every task; the form of
        # this task is only the rate.
        kwargs.pop("params", None)
        super().__init__(
            subject=f"Down-sampling rate for level {level}",
            body=(
                f"Level {level - 1} is done. Enter the percentage of frames (video) or lines "
                f"(images) of each parent's output to send to the level-{level} audit jobs that "
                "have no rate of their own (0 < rate <= 100)."
            ),
            params={
                # A default is needed for the task's context to validate; 100 (send every frame)
                # is the neutral answer, shown pre-filled in the Required Actions form.
                RATE_PARAM: Param(
                    100,
                    type="number",
                    exclusiveMinimum=0,
                    maximum=100,
                    title="Down-sampling rate (%)",
                    description="e.g. 50 sends one frame of two",
                )
            },
            **kwargs,
        )
        self.level = level
        self.config_task_id = config_task_id

    def execute(self, context: Any) -> Any:
        from smgt.batch import level_needs_rate
        from smgt.config import BatchConfig

        config = BatchConfig.model_validate(context["ti"].xcom_pull(task_ids=self.config_task_id))
        if not level_needs_rate(config, self.level):
            raise AirflowSkipException(f"every chained job of level {self.level} has its own rate")
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        result = super().execute_complete(context, event)
        rate = (result.get("params_input") or {}).get(RATE_PARAM)
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate <= 100:
            raise ValueError(f"{RATE_PARAM}: must be a number with 0 < rate <= 100, got {rate!r}")
        return {RATE_PARAM: rate}


class RateNotAwaitedError(LookupError):
    """The batch is not waiting for a rate (never did, or it was already given)."""


def answer_down_sampling_rate(
    session: Any, *, dag_id: str, run_id: str, rate: float, user: Any
) -> str:
    """Record `rate` as the answer of the batch's waiting rate task; return its task id.

    Uses Airflow's HITL REST handler itself (response row, resume of the parked task), so nothing
    here can drift from what the UI does. `user` is an auth-manager user (get_id/get_name).
    """
    from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
    from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    waiting = session.scalars(
        select(TaskInstance).where(
            TaskInstance.dag_id == dag_id,
            TaskInstance.run_id == run_id,
            TaskInstance.task_id.like(f"%.{RATE_TASK_ID}"),
            TaskInstance.state.in_([TaskInstanceState.AWAITING_INPUT, TaskInstanceState.DEFERRED]),
        )
    ).all()
    if not waiting:
        raise RateNotAwaitedError(f"batch {run_id!r} is not waiting for a down-sampling rate")
    ti = min(waiting, key=lambda t: t.task_id)
    update_hitl_detail(
        dag_id=dag_id,
        dag_run_id=run_id,
        task_id=ti.task_id,
        update_hitl_detail_payload=UpdateHITLDetailPayload(
            chosen_options=[HITLEntryOperator.OK], params_input={RATE_PARAM: rate}
        ),
        user=user,
        session=session,
        map_index=ti.map_index,
    )
    session.commit()
    return ti.task_id
