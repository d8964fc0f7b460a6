"""Ground Truth labeling-job state-change events, consumed from SQS as wake-up hints for triggers.

What AWS publishes. Ground Truth sends an event to EventBridge (formerly CloudWatch Events) when a
labeling job's status changes to ``Completed``, ``Failed`` or ``Stopped``, with
``"source": "aws.sagemaker"`` and ``"detail-type": "SageMaker Ground Truth Labeling Job State Change"``;
the job's ARN is in ``resources`` and its status in ``detail.LabelingJobStatus``:
https://docs.aws.amazon.com/sagemaker/latest/dg/sms-monitor-cloud-watch.html ("Monitor Labeling Job
Status"), listed among SageMaker's service events in the EventBridge event reference,
https://docs.aws.amazon.com/eventbridge/latest/ref/events-ref-sagemaker.html. SageMaker "may send
multiple events to EventBridge for each state change"
(https://docs.aws.amazon.com/sagemaker/latest/dg/automating-sagemaker-with-eventbridge.html), and
EventBridge delivers at least once, so a consumer must take duplicates.

How they are used here. A deployment routes them with one EventBridge rule (``EVENT_PATTERN``) to one
SQS queue (``SMGT_EVENTS_QUEUE_URL``). Every triggerer process runs one ``EventDispatcher`` per queue
(started by the first waiting ``LabelingJobTrigger``, cancelled when the last one leaves) that
long-polls the queue and wakes the triggers waiting on the job an event names. An event is only a
hint: the woken trigger describes its job once and decides from that answer, so duplicate, late or
forged events cost one DescribeLabelingJob and nothing else. Events are never lost for others:

* an event for a job a trigger of this process waits on is deleted after the wake-up;
* an event for any other job (watched by another triggerer, by a trigger not registered yet, or by
  nobody) is handed back to the queue (visible again at once while this dispatcher pauses, later
  after a visibility timeout growing with every receive) so the other triggerers see it too, until
  it is older than ``stale_after``: by then every waiting trigger has made a fallback poll of its job
  anyway, and the event is deleted;
* a message received by a triggerer that is SIGKILLed before it was handled becomes visible again
  after ``VISIBILITY_TIMEOUT``; and a trigger (re)started after a restart describes its job first.

Triggers keep a slow fallback poll (``SMGT_EVENTS_FALLBACK_POLL``), so an event that never arrives
(no rule, a queue policy that refuses EventBridge, an emulator restart) only delays the hand-off;
while the queue cannot be read the dispatcher reports itself unhealthy and triggers poll every
``poke_interval`` as they do without events.

This module imports neither Airflow nor aiobotocore at import time: the local emulator uses its
event builders.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)

SOURCE = "aws.sagemaker"
DETAIL_TYPE = "SageMaker Ground Truth Labeling Job State Change"
# The statuses GT publishes an event for (the doc above): the terminal ones.
EVENT_STATUSES = frozenset({"Completed", "Failed", "Stopped"})
# The EventBridge rule's pattern (put-rule --event-pattern): every GT labeling-job state change.
EVENT_PATTERN: dict[str, Any] = {"source": [SOURCE], "detail-type": [DETAIL_TYPE]}

# ReceiveMessage long poll: one call per 20 s per triggerer process while nothing happens; an event
# is returned as soon as it is in the queue.
WAIT_SECONDS = 20
# A received message is hidden this long; the dispatcher handles it within milliseconds, so this
# only matters when nobody handles it: the triggerer died between receiving and deleting it, or its
# dispatcher was cancelled (the last trigger left) while a long poll was open, and SQS handed the next
# event to that dead poll. Short, because that event waits this long for the triggerer that wants it:
# at 10 s a CI run measured a 10.5 s hand-off. A message handled after it expired (an event loop held
# up for seconds) is only seen twice; each copy costs a DescribeLabelingJob at most.
VISIBILITY_TIMEOUT = 3
# Hand-back of an event for a job this process does not wait on: visible again at once for its first
# HANDBACK_AT_ONCE receives, while the dispatcher that handed it back pauses HANDBACK_PAUSE seconds
# before its next ReceiveMessage (else, polling again at once, it would mostly get the message back
# itself), so another triggerer's long poll gets it within a second or so. After that it is hidden
# 2 s per receive so far, at most 30 s: an event nobody waits on costs a few receives a minute.
HANDBACK_AT_ONCE = 2
HANDBACK_PAUSE = 1.0
HANDBACK_STEP = 2
HANDBACK_MAX = 30
# An event older than this that nobody here waits on is deleted (see the module doc).
DEFAULT_STALE_AFTER = 900.0


# ---------------------------------------------------------------- the event, as AWS delivers it
def job_name_from_arn(arn: str) -> str | None:
    """``arn:aws:sagemaker:<region>:<account>:labeling-job/<name>`` -> ``<name>`` (GT writes it in
    lower case; job names are case-insensitive)."""
    prefix, sep, name = arn.partition(":labeling-job/")
    return name if sep and prefix.startswith("arn:") and name else None


def state_change_event(job_arn: str, status: str, *, region: str, account: str,
                       when: float | None = None, event_id: str | None = None) -> dict[str, Any]:
    """The EventBridge event GT sends for a labeling job status change (the body of the SQS message
    an EventBridge rule with an SQS target delivers)."""
    stamp = datetime.fromtimestamp(time.time() if when is None else when, UTC)
    return {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": DETAIL_TYPE,
        "source": SOURCE,
        "account": account,
        "time": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [job_arn],
        "detail": {"LabelingJobStatus": status},
    }


def put_events_entry(job_arn: str, status: str, *, bus: str = "default") -> dict[str, Any]:
    """The PutEvents entry that makes EventBridge deliver ``state_change_event`` (the emulator's
    way of publishing what GT publishes)."""
    return {"Source": SOURCE, "DetailType": DETAIL_TYPE, "Resources": [job_arn],
            "Detail": json.dumps({"LabelingJobStatus": status}), "EventBusName": bus}


def parse_event(body: str) -> tuple[str, str | None] | None:
    """``(lower-case job name, status)`` of a GT labeling-job state-change event, else None."""
    try:
        event = json.loads(body)
    except (TypeError, ValueError):
        return None
    if not isinstance(event, dict) or event.get("detail-type") != DETAIL_TYPE or event.get("source") != SOURCE:
        return None
    resources = event.get("resources")
    name = next((n for r in resources if isinstance(r, str) and (n := job_name_from_arn(r))), None) \
        if isinstance(resources, list) else None
    if name is None:
        return None
    detail = event.get("detail")
    status = detail.get("LabelingJobStatus") if isinstance(detail, dict) else None
    return name.lower(), status if isinstance(status, str) else None


# ---------------------------------------------------------------- the per-process dispatcher
class Watch:
    """One trigger's registration for its job's events."""

    def __init__(self, dispatcher: EventDispatcher, job_name: str) -> None:
        self.dispatcher = dispatcher
        self.job_name = job_name.lower()
        self.woken = asyncio.Event()
        self.status: str | None = None  # the status the last event named (a hint)

    async def wait(self, timeout: float) -> bool:
        """Sleep up to `timeout` seconds; True if an event (or a dispatcher outage) woke us."""
        try:
            await asyncio.wait_for(self.woken.wait(), timeout=max(timeout, 0))
        except TimeoutError:
            return False
        finally:
            self.woken.clear()
        return True

    @property
    def healthy(self) -> bool:
        return self.dispatcher.healthy


SqsClientFactory = Callable[[], AbstractAsyncContextManager[Any]]


class EventDispatcher:
    """Long-polls one SQS queue and wakes the watches of the jobs its events name (one per queue,
    connection and event loop; see ``dispatcher_for``)."""

    def __init__(self, queue_url: str, client_factory: SqsClientFactory, *, wait_seconds: int = WAIT_SECONDS,
                 stale_after: float = DEFAULT_STALE_AFTER, on_idle: Callable[[EventDispatcher], None] | None = None
                 ) -> None:
        self.queue_url = queue_url
        self.client_factory = client_factory
        self.wait_seconds = wait_seconds
        self.stale_after = stale_after
        self.on_idle = on_idle
        self.watches: dict[str, set[Watch]] = {}
        self.healthy = True
        self.task: asyncio.Task | None = None
        # Counters (tests and the bench): SQS calls made, events that woke a trigger, handed back, dropped.
        self.stats = {"receives": 0, "woke": 0, "handed_back": 0, "deleted_stale": 0, "not_events": 0}

    @contextmanager
    def watch(self, job_name: str) -> Iterator[Watch]:
        watch = Watch(self, job_name)
        self.watches.setdefault(watch.job_name, set()).add(watch)
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run(), name=f"smgt-gt-events {self.queue_url}")
        try:
            yield watch
        finally:
            waiting = self.watches.get(watch.job_name)
            if waiting is not None:
                waiting.discard(watch)
                if not waiting:
                    del self.watches[watch.job_name]
            if not self.watches:
                # Nobody waits: stop polling. A message the cancelled ReceiveMessage had taken is
                # visible again after VISIBILITY_TIMEOUT.
                if self.task is not None:
                    self.task.cancel()
                    self.task = None
                if self.on_idle is not None:
                    self.on_idle(self)

    def _set_healthy(self, healthy: bool) -> None:
        if self.healthy and not healthy:
            # Events may be missed while the queue cannot be read: wake every trigger so it looks at
            # its job now and then polls at its normal interval until the queue is back.
            for watches in self.watches.values():
                for watch in watches:
                    watch.woken.set()
        self.healthy = healthy

    async def _run(self) -> None:
        backoff = 1.0
        while True:
            try:
                async with self.client_factory() as client:
                    async for messages in self._receive(client):
                        self._set_healthy(True)
                        backoff = 1.0
                        if await self._handle(client, messages):
                            await asyncio.sleep(HANDBACK_PAUSE)  # let another triggerer take it
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the triggers go on polling; say why events stopped
                if self.healthy:
                    log.warning("Cannot read labeling-job events from %s (triggers poll meanwhile): %s",
                                self.queue_url, error)
                self._set_healthy(False)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)

    async def _receive(self, client: Any) -> AsyncIterator[list[dict[str, Any]]]:
        while True:
            self.stats["receives"] += 1
            response = await client.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=self.wait_seconds,
                VisibilityTimeout=VISIBILITY_TIMEOUT,
                MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"])
            yield response.get("Messages") or []

    async def _handle(self, client: Any, messages: list[dict[str, Any]]) -> bool:
        """Wake, delete, hand back; True if a message was made visible again at once."""
        delete: list[dict[str, str]] = []
        hand_back: list[dict[str, Any]] = []
        now = time.time()
        for i, message in enumerate(messages):
            entry = {"Id": str(i), "ReceiptHandle": message["ReceiptHandle"]}
            parsed = parse_event(message.get("Body", ""))
            if parsed is None:  # not a GT state-change event: nothing here can use it
                self.stats["not_events"] += 1
                delete.append(entry)
                continue
            name, status = parsed
            watches = self.watches.get(name)
            attributes = message.get("Attributes") or {}
            if watches:
                for watch in watches:
                    watch.status = status
                    watch.woken.set()
                self.stats["woke"] += 1
                delete.append(entry)
                continue
            sent = float(attributes.get("SentTimestamp", now * 1000)) / 1000
            if now - sent > self.stale_after:
                self.stats["deleted_stale"] += 1
                delete.append(entry)
                continue
            count = int(attributes.get("ApproximateReceiveCount", 1))
            self.stats["handed_back"] += 1
            hidden = 0 if count <= HANDBACK_AT_ONCE else min(HANDBACK_STEP * count, HANDBACK_MAX)
            hand_back.append({**entry, "VisibilityTimeout": hidden})
        if delete:
            await client.delete_message_batch(QueueUrl=self.queue_url, Entries=delete)
        if hand_back:
            await client.change_message_visibility_batch(QueueUrl=self.queue_url, Entries=hand_back)
        return any(entry["VisibilityTimeout"] == 0 for entry in hand_back)


# One dispatcher per (event loop, queue, connection): a triggerer process runs all its triggers on
# one loop, so they share one long poll.
_dispatchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple, EventDispatcher]] = (
    weakref.WeakKeyDictionary())


def dispatcher_for(queue_url: str, *, aws_conn_id: str | None, region_name: str | None,
                   verify: bool | str | None = None, botocore_config: dict | None = None,
                   stale_after: float = DEFAULT_STALE_AFTER) -> EventDispatcher:
    """The running loop's dispatcher for `queue_url`, with an SQS client from the Airflow connection
    `aws_conn_id` (its credentials, region and `endpoint_url`, as the trigger's SageMaker client)."""
    loop = asyncio.get_running_loop()
    per_loop = _dispatchers.setdefault(loop, {})
    key = (queue_url, aws_conn_id, region_name, repr(verify), json.dumps(botocore_config, sort_keys=True))
    dispatcher = per_loop.get(key)
    if dispatcher is None:
        def client_factory() -> AbstractAsyncContextManager[Any]:
            return _SqsClient(aws_conn_id=aws_conn_id, region_name=region_name, verify=verify,
                              botocore_config=botocore_config)

        def forget(d: EventDispatcher) -> None:
            if per_loop.get(key) is d:
                del per_loop[key]

        wait_seconds = WAIT_SECONDS
        if botocore_config and botocore_config.get("read_timeout"):
            # The long poll must end before the client's read timeout does.
            wait_seconds = max(1, min(WAIT_SECONDS, int(botocore_config["read_timeout"]) - 5))
        dispatcher = per_loop[key] = EventDispatcher(queue_url, client_factory, stale_after=stale_after,
                                                     on_idle=forget, wait_seconds=wait_seconds)
    return dispatcher


class _SqsClient:
    """``async with _SqsClient(...) as sqs``: an aiobotocore SQS client built like the trigger's own."""

    def __init__(self, **params: Any) -> None:
        self.params = params
        self._cm: Any = None

    async def __aenter__(self) -> Any:
        from smgt.gt.hooks import AwsHook

        p = self.params
        hook = AwsHook(aws_conn_id=p["aws_conn_id"], client_type="sqs", region_name=p["region_name"],
                           verify=p["verify"], config=p["botocore_config"])
        self._cm = await hook.get_async_conn()
        return await self._cm.__aenter__()

    async def __aexit__(self, *exc: object) -> Any:
        return await self._cm.__aexit__(*exc)
