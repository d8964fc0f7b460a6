"""LabelingJobTrigger: waits in the triggerer for a Ground Truth labeling job to end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from airflow.providers.amazon.aws.triggers.base import AwsBaseWaiterTrigger
from airflow.providers.amazon.aws.utils.waiter_with_logging import async_wait
from airflow.providers.common.compat.sdk import AirflowException
from airflow.triggers.base import TriggerEvent
from botocore.exceptions import BotoCoreError, ClientError

from smgt.gt.hooks import WAITER_NAME, LabelingJobHook, error_code, labeling_job_summary

# 21 days of 30 s polls: a batch job's tasks stay available up to 10 days and a worker may then
# hold a video / point-cloud task up to 7 more, so the job can legitimately run this long.
DEFAULT_WAITER_DELAY = 30
DEFAULT_WAITER_MAX_ATTEMPTS = 60_480


class LabelingJobTrigger(AwsBaseWaiterTrigger):
    """
    Trigger when a SageMaker Ground Truth labeling job reaches a terminal state.

    Uses the custom ``LabelingJobComplete`` waiter: ``Completed`` succeeds, ``Failed`` and
    ``Stopped`` fail, ``Initializing``, ``InProgress`` and ``Stopping`` keep waiting. Every poll
    logs the status and ``LabelCounters`` so progress shows in the task log. The event carries
    the final job summary (status, ``LabelCounters``, ``FailureReason``, output manifest URI),
    read with one more ``DescribeLabelingJob`` after the waiter ends, or ``errorCode`` when that
    describe failed (e.g. ``ResourceNotFound``).

    :param job_name: The name of the labeling job.
    :param waiter_delay: The amount of time in seconds to wait between attempts. (default: 30)
    :param waiter_max_attempts: The maximum number of attempts to be made. (default: 60480, 21 days)
    :param stop_job_on_kill: Stop the labeling job when a user marks the deferred task failed or
        clears it (``on_kill``). (default: True)
    :param aws_conn_id: The Airflow connection used for AWS credentials.
    :param region_name: The AWS region where the labeling job runs.
    :param verify: Whether or not to verify SSL certificates.
        See: https://boto3.amazonaws.com/v1/documentation/api/latest/reference/core/session.html
    :param botocore_config: Configuration dictionary (key-values) for botocore client. See:
        https://botocore.amazonaws.com/v1/documentation/api/latest/reference/config.html
    """

    aws_hook_class = LabelingJobHook

    def __init__(
        self,
        *,
        job_name: str,
        waiter_delay: int = DEFAULT_WAITER_DELAY,
        waiter_max_attempts: int = DEFAULT_WAITER_MAX_ATTEMPTS,
        stop_job_on_kill: bool = True,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict | None = None,
    ) -> None:
        super().__init__(
            serialized_fields={"job_name": job_name, "stop_job_on_kill": stop_job_on_kill},
            waiter_name=WAITER_NAME,
            waiter_args={"LabelingJobName": job_name},
            failure_message=f"Labeling job {job_name} did not complete",
            status_message=f"Labeling job {job_name} status",
            status_queries=["LabelingJobStatus", "LabelCounters"],
            return_key="job_name",
            return_value=job_name,
            waiter_delay=waiter_delay,
            waiter_max_attempts=waiter_max_attempts,
            aws_conn_id=aws_conn_id,
            region_name=region_name,
            verify=verify,
            botocore_config=botocore_config,
        )
        self.job_name = job_name
        self.stop_job_on_kill = stop_job_on_kill

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self.hook()
        async with await hook.get_async_conn() as client:
            waiter = hook.get_waiter(
                self.waiter_name,
                deferrable=True,
                client=client,
                config_overrides=self.waiter_config_overrides,
            )
            try:
                await async_wait(
                    waiter,
                    self.waiter_delay,
                    self.attempts,
                    self.waiter_args,
                    self.failure_message,
                    self.status_message,
                    self.status_queries,
                )
            except AirflowException as error:
                status, message = "error", str(error)
            else:
                status, message = "success", f"Labeling job {self.job_name} completed"
            summary = await self._final_summary(client)
        job_status = summary.get("LabelingJobStatus")
        if status == "error" and job_status in hook.failed_states:
            # The waiter's message is a status dump; say plainly how the job ended and why.
            reason = summary.get("FailureReason") or "no FailureReason given"
            message = f"Labeling job {self.job_name} ended {job_status}: {reason}"
        elif status == "error" and job_status:
            # Max attempts reached or a non-retriable API error while the job still runs.
            message = f"{message} (the job is {job_status})"
        yield TriggerEvent(
            {"status": status, "message": message, self.return_key: self.return_value, **summary}
        )

    async def _final_summary(self, client: Any) -> dict[str, Any]:
        try:
            description = await client.describe_labeling_job(LabelingJobName=self.job_name)
        except (ClientError, BotoCoreError) as error:
            # The event still reports the outcome; the sensor re-describes when this is missing.
            # Its error code lets the sensor fail at once when no retry can help (e.g. no such job).
            self.log.warning("Could not describe labeling job %s after waiting: %s", self.job_name, error)
            code = error_code(error)
            return {"errorCode": code} if code else {}
        return labeling_job_summary(description)

    async def on_kill(self) -> None:
        """Stop the labeling job when a user kills the deferred task, so GT stops costing."""
        if not self.stop_job_on_kill:
            return
        hook = self.hook()
        async with await hook.get_async_conn() as client:
            try:
                await client.stop_labeling_job(LabelingJobName=self.job_name)
            except ClientError as error:
                # Already ended or never created: nothing is running, nothing to stop.
                self.log.info("Did not stop labeling job %s: %s", self.job_name, error)
            else:
                self.log.info("Requested stop of labeling job %s.", self.job_name)

