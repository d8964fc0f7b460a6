"""LabelingJobTrigger: waits in the triggerer for a Ground Truth labeling job to end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.providers.amazon.aws.triggers.base import AwsBaseWaiterTrigger
from airflow.providers.amazon.aws.utils.waiter_with_logging import async_wait
from airflow.providers.common.compat.sdk import AirflowException
from airflow.triggers.base import TriggerEvent
from botocore.exceptions import BotoCoreError, ClientError

from smgt.gt import events
from smgt.gt.hooks import (
    FAILED_STATES,
    SUCCESS_STATES,
    WAITER_NAME,
    LabelingJobHook,
    error_code,
    is_non_retryable,
    labeling_job_summary,
)
from smgt.settings import get_settings

# 21 days of 30 s polls: a batch job's tasks stay available up to 10 days and a worker may then
# hold a video / point-cloud task up to 7 more, so the job can legitimately run this long.
DEFAULT_WAITER_DELAY = 30
DEFAULT_WAITER_MAX_ATTEMPTS = 60_480
# With events, the fallback poll is at most this many poll intervals apart (and at most
# SMGT_EVENTS_FALLBACK_POLL seconds): 30 s polls -> one fallback poll every 5 minutes.
FALLBACK_POLLS = 10


class LabelingJobTrigger(AwsBaseWaiterTrigger):
    """
    Trigger when a SageMaker Ground Truth labeling job reaches a terminal state.

    Uses the custom ``LabelingJobComplete`` waiter: ``Completed`` succeeds, ``Failed`` and
    ``Stopped`` fail, ``Initializing``, ``InProgress`` and ``Stopping`` keep waiting. Every poll
    logs the status and ``LabelCounters`` so progress shows in the task log. The event carries
    the final job summary (status, ``LabelCounters``, ``FailureReason``, output manifest URI),
    read with one more ``DescribeLabelingJob`` after the waiter ends, or ``errorCode`` when that
    describe failed (e.g. ``ResourceNotFound``).

    With an events queue (``events_queue_url``, default ``SMGT_EVENTS_QUEUE_URL``) the trigger does
    not poll every ``waiter_delay``: it describes the job once, then sleeps until GT's "Labeling Job
    State Change" event for the job arrives (see ``smgt.gt.events``) or the slow fallback poll is due
    (``fallback_delay``), and describes it again; it gives up after the same time as the poll
    (``waiter_delay * waiter_max_attempts`` seconds). The event it yields is the same either way.

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
    :param events_queue_url: SQS queue of GT's labeling-job events: None reads
        ``SMGT_EVENTS_QUEUE_URL`` (where the trigger is built), "" polls without events.
    :param fallback_delay: With events, seconds between fallback polls. (default: the smaller of
        ``SMGT_EVENTS_FALLBACK_POLL`` and 10 ``waiter_delay``, at least ``waiter_delay``)
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
        events_queue_url: str | None = None,
        fallback_delay: int | None = None,
    ) -> None:
        settings = get_settings()
        serialized: dict[str, Any] = {"job_name": job_name, "stop_job_on_kill": stop_job_on_kill}
        if events_queue_url is None:
            events_queue_url = settings.events_queue_url
        elif not events_queue_url:
            serialized["events_queue_url"] = ""  # polling asked for: a triggerer with a queue must poll too
        if events_queue_url:
            if fallback_delay is None:
                fallback_delay = max(waiter_delay, min(settings.events_fallback_poll, FALLBACK_POLLS * waiter_delay), 1)
            # Resolved here, where the task runs: any triggerer rebuilds the same trigger.
            serialized.update(events_queue_url=events_queue_url, fallback_delay=fallback_delay)
        super().__init__(
            serialized_fields=serialized,
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
        self.events_queue_url = events_queue_url
        self.fallback_delay = fallback_delay

    async def run(self) -> AsyncIterator[TriggerEvent]:
        if self.events_queue_url:
            yield TriggerEvent(await self._wait_with_events())
            return
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

    async def _wait_with_events(self) -> dict[str, Any]:
        """Describe, sleep until the job's event or the fallback poll, describe again, ... (see
        smgt.gt.events); the event payload is the one the polling path yields."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(self.waiter_delay, 1) * self.attempts
        dispatcher = events.dispatcher_for(
            self.events_queue_url, aws_conn_id=self.aws_conn_id, region_name=self.region_name, verify=self.verify,
            botocore_config=self.botocore_config,
            stale_after=max(events.DEFAULT_STALE_AFTER, 2.0 * (self.fallback_delay or 0)))
        hook = self.hook()
        summary: dict[str, Any] = {}
        ended = False  # an event said the job ended
        # Watch before the first describe: an event that arrives in between still wakes us.
        with dispatcher.watch(self.job_name) as watch:
            async with await hook.get_async_conn() as client:
                while True:
                    # Poll at the normal interval while events cannot be read, and after an event
                    # said the job ended but DescribeLabelingJob did not show it yet.
                    delay = self.fallback_delay if watch.healthy and not ended else self.waiter_delay
                    try:
                        description = await client.describe_labeling_job(LabelingJobName=self.job_name)
                    except (ClientError, BotoCoreError) as error:
                        if isinstance(error, ClientError) and is_non_retryable(error):
                            # E.g. no such job: no later poll can help.
                            payload = {"status": "error", "message": f"{self.failure_message}: {error}",
                                       self.return_key: self.return_value}
                            return {**payload, "errorCode": code} if (code := error_code(error)) else payload
                        self.log.warning("Could not describe labeling job %s: %s", self.job_name, error)
                        delay = self.waiter_delay
                    else:
                        summary = labeling_job_summary(description)
                        status = summary["LabelingJobStatus"]
                        if status in SUCCESS_STATES:
                            return {"status": "success", "message": f"Labeling job {self.job_name} completed",
                                    self.return_key: self.return_value, **summary}
                        if status in FAILED_STATES:
                            reason = summary.get("FailureReason") or "no FailureReason given"
                            return {"status": "error", self.return_key: self.return_value, **summary,
                                    "message": f"Labeling job {self.job_name} ended {status}: {reason}"}
                        self.log.info("%s: %s - %s", self.status_message, status, summary.get("LabelCounters"))
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        message = f"{self.failure_message}: Waiter error: max attempts reached"
                        if status := summary.get("LabelingJobStatus"):
                            message = f"{message} (the job is {status})"
                        return {"status": "error", "message": message, self.return_key: self.return_value, **summary}
                    if await watch.wait(min(max(delay or 0, 0), remaining)):
                        ended = ended or watch.status in events.EVENT_STATUSES
                        self.log.info("Labeling job %s: state-change event (%s); describing it.", self.job_name,
                                      watch.status or "queue outage")

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

