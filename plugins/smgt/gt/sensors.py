"""LabelingJobSensor: wait for a Ground Truth labeling job to end, deferrable by default."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.sensors.base_aws import AwsBaseSensor
from airflow.providers.amazon.aws.utils import validate_execute_complete_event
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.amazon.version_compat import NOTSET, ArgNotSet
from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    PokeReturnValue,
    conf,
)

from smgt.gt.hooks import (
    FAILED_STATES,
    NON_RETRYABLE_ERROR_CODES,
    NON_TERMINAL_STATES,
    SUCCESS_STATES,
    LabelingJobHook,
    gt_error_message,
    is_non_retryable,
    labeling_job_summary,
    resolve_connection_params,
)
from smgt.gt.operators import push_error
from smgt.gt.triggers import LabelingJobTrigger
from smgt.settings import get_settings

if TYPE_CHECKING:
    from airflow.sdk import Context

# See triggers.DEFAULT_WAITER_MAX_ATTEMPTS: a batch job may legitimately run about 17 days.
DEFAULT_TIMEOUT = timedelta(days=21)


class LabelingJobFailedError(AirflowFailException):
    """The labeling job ended Failed or Stopped; the message carries GT's FailureReason.

    An AirflowFailException: the job's end is final, so the task fails without retries.
    """


def default_deferrable() -> bool:
    """``[operators] default_deferrable``, as the provider's deferrable operators follow it.

    Airflow ships it False (and writes it into every airflow.cfg), so a deployment that wants
    sensors in the triggerer sets it True; this project's deployments do, and the batch DAG passes
    ``deferrable=True`` itself.
    """
    return conf.getboolean("operators", "default_deferrable", fallback=False)


def failure_message(summary: dict[str, Any]) -> str:
    reason = summary.get("FailureReason") or "no FailureReason given"
    return f"Labeling job {summary['LabelingJobName']} ended {summary['LabelingJobStatus']}: {reason}"


class LabelingJobSensor(AwsBaseSensor[LabelingJobHook]):
    """
    Wait until a SageMaker Ground Truth labeling job ends.

    ``Initializing``, ``InProgress`` and ``Stopping`` keep waiting, ``Completed`` succeeds, and
    ``Failed`` or ``Stopped`` fail the task with GT's ``FailureReason``. Returns (and pushes as
    XCom) the final job summary: ``LabelingJobName``, ``LabelingJobArn``, ``LabelingJobStatus``,
    ``LabelCounters``, ``OutputManifestS3Uri`` and, when known, ``Workforce``.

    Killing the task (``on_kill`` when poking, the trigger's ``on_kill`` when deferred) stops the
    labeling job unless ``stop_job_on_kill`` is False.

    Fails fast: a job that ended Failed/Stopped, or a ``DescribeLabelingJob`` error no retry can fix
    (e.g. ResourceNotFound, AccessDeniedException), fails the task without retries and leaves
    GT's words in XCom under ``error``; throttling and transient errors are retried.

    :param job_name: The name of the labeling job. (templated)
    :param deferrable: Wait in the triggerer instead of holding a worker slot.
        (default: ``[operators] default_deferrable``)
    :param poke_interval: Seconds between ``DescribeLabelingJob`` calls. (default: ``SMGT_POKE_INTERVAL``)
        Deferred with an events queue (``SMGT_EVENTS_QUEUE_URL``), the trigger wakes on GT's state-change
        event for the job instead and polls only as a fallback, every 10 intervals at most
        ``SMGT_EVENTS_FALLBACK_POLL`` seconds apart (see ``smgt.gt.events``).
    :param max_attempts: Polls of the deferred trigger before it gives up.
        (default: ``timeout / poke_interval``, so both modes give up together)
    :param stop_job_on_kill: Stop the labeling job when the task is killed. (default: True)
    :param aws_conn_id: The Airflow connection used for AWS credentials.
        (default: ``SMGT_AWS_CONN_ID``, else ``aws_default``)
    :param region_name: AWS region_name. (default: ``SMGT_REGION``)
    :param verify: Whether or not to verify SSL certificates. See:
        https://boto3.amazonaws.com/v1/documentation/api/latest/reference/core/session.html
    :param botocore_config: Configuration dictionary (key-values) for botocore client. See:
        https://botocore.amazonaws.com/v1/documentation/api/latest/reference/config.html
    """

    aws_hook_class = LabelingJobHook
    template_fields: Sequence[str] = aws_template_fields("job_name")
    ui_color = "#ededed"

    def __init__(
        self,
        *,
        job_name: str,
        deferrable: bool | None = None,
        poke_interval: timedelta | float | None = None,
        timeout: timedelta | float = DEFAULT_TIMEOUT,
        max_attempts: int | None = None,
        stop_job_on_kill: bool = True,
        aws_conn_id: str | None | ArgNotSet = NOTSET,
        region_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        conn_id, region = resolve_connection_params(aws_conn_id, region_name)
        if poke_interval is None:
            poke_interval = get_settings().poke_interval
        super().__init__(
            aws_conn_id=conn_id, region_name=region, poke_interval=poke_interval, timeout=timeout, **kwargs
        )
        self.job_name = job_name
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.max_attempts = max_attempts
        self.stop_job_on_kill = stop_job_on_kill

    def execute(self, context: Context) -> Any:
        try:
            return self._execute(context)
        except Exception as error:
            self._fail_fast(context, error)
            raise

    def _fail_fast(self, context: Context, error: BaseException) -> None:
        """Record GT's error; turn one no retry can fix into an AirflowFailException.

        (Deferring raises TaskDeferred, a BaseException: it never reaches here.)
        """
        push_error(context, error, operation="wait_for_job")
        if is_non_retryable(error):
            raise AirflowFailException(
                f"Waiting for labeling job {self.job_name} failed with an error no retry can fix: "
                f"{gt_error_message(error)}"
            ) from error

    def _execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        # One synchronous look first: a job that has already ended needs no triggerer round trip.
        summary = labeling_job_summary(self.first_look(context))
        if summary["LabelingJobStatus"] in SUCCESS_STATES | FAILED_STATES:
            return self._result(summary)
        self.log.info(
            "Labeling job %s is %s (%s); deferring.",
            self.job_name,
            summary["LabelingJobStatus"],
            summary["LabelCounters"],
        )
        delay = max(1, int(self.poke_interval))
        self.defer(
            trigger=LabelingJobTrigger(
                job_name=self.job_name,
                waiter_delay=delay,
                waiter_max_attempts=self.max_attempts or max(1, math.ceil(self.timeout / delay)),
                stop_job_on_kill=self.stop_job_on_kill,
                aws_conn_id=self.aws_conn_id,
                region_name=self.region_name,
                verify=self.verify,
                botocore_config=self.botocore_config,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def first_look(self, context: Context) -> dict[str, Any]:
        """The DescribeLabelingJob answer a deferrable wait starts from (a subclass that has just
        described the job passes its answer on instead of asking again)."""
        return self.hook.describe_labeling_job(self.job_name)

    def poke(self, context: Context) -> bool | PokeReturnValue:
        summary = labeling_job_summary(self.hook.describe_labeling_job(self.job_name))
        status = summary["LabelingJobStatus"]
        self.log.info("Labeling job %s is %s: %s", self.job_name, status, summary["LabelCounters"])
        if status in SUCCESS_STATES or status in FAILED_STATES:
            return PokeReturnValue(is_done=True, xcom_value=self._result(summary))
        if status not in NON_TERMINAL_STATES:
            # A status GT may add later: keep waiting rather than fail a running batch.
            self.log.warning("Labeling job %s has unknown status %r; still waiting.", self.job_name, status)
        return False

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            return self._execute_complete(event)
        except Exception as error:
            self._fail_fast(context, error)
            raise

    def _execute_complete(self, event: dict[str, Any] | None) -> dict[str, Any]:
        event = validate_execute_complete_event(event)
        if not event.get("LabelingJobStatus"):
            if event.get("status") != "success":
                # E.g. the job does not exist: the trigger's message says why waiting failed.
                message = f"Error while waiting for labeling job {self.job_name}: {event.get('message')}"
                if event.get("errorCode") in NON_RETRYABLE_ERROR_CODES:
                    raise AirflowFailException(message)
                raise AirflowException(message)
            # The trigger could not describe the job at the end; look once more from the worker.
            event = {**event, **labeling_job_summary(self.hook.describe_labeling_job(self.job_name))}
        summary = {key: event.get(key) for key in _SUMMARY_KEYS if key in event}
        if event.get("status") != "success" and summary.get("LabelingJobStatus") not in FAILED_STATES:
            raise AirflowException(f"Error while waiting for labeling job {self.job_name}: {event.get('message')}")
        return self._result(summary)

    def _result(self, summary: dict[str, Any]) -> dict[str, Any]:
        status = summary["LabelingJobStatus"]
        if status in FAILED_STATES:
            raise LabelingJobFailedError(failure_message(summary))
        if status not in SUCCESS_STATES:
            raise AirflowException(f"Labeling job {self.job_name} is {status}, not Completed")
        self.log.info("Labeling job %s completed: %s", self.job_name, summary["LabelCounters"])
        return summary

    def on_kill(self) -> None:
        if self.stop_job_on_kill:
            stop_labeling_job_quietly(self.job_name, aws_conn_id=self.aws_conn_id, region=self.region_name)


_SUMMARY_KEYS = (
    "LabelingJobName",
    "LabelingJobArn",
    "LabelingJobStatus",
    "LabelCounters",
    "OutputManifestS3Uri",
    "FailureReason",
    "Workforce",
)


def stop_labeling_job_quietly(
    job_name: str, aws_conn_id: str | None = "aws_default", region: str | None = None
) -> bool:
    """
    Stop a labeling job from a failure or cancel callback; never raises.

    A callback that raises would hide the failure that triggered it, so errors are logged and
    reported as False. Jobs that already ended are left alone.

    :return: True if GT accepted a stop request.
    """
    hook = LabelingJobHook(aws_conn_id=aws_conn_id, region_name=region)
    try:
        return hook.stop_labeling_job(job_name)
    except Exception:
        hook.log.exception("Could not stop labeling job %s", job_name)
        return False
