"""Reading a batch's SNS messages off the emulator's status queue (the SQS queue subscribed to the
default topic, which the reference notebook reads).

moto's backends live in the process: every test folder's batches publish to the same queue, so a
test reads its own batch's messages and leaves the others'."""

from __future__ import annotations

import json
import time
from typing import Any


def batch_messages(emu: Any, batch_id: str, *, wait: float = 0.0, then: float = 0.0,
                   bodies: bool = False) -> list[Any]:
    """The messages of batch `batch_id` (decoded from raw delivery or from an SNS envelope), each
    deleted once read. Other batches' messages stay in the queue, hidden for a minute so that each
    receive reads further into it. Reads until the queue shows nothing more, waiting up to `wait` s
    for the first message of the batch and, once it came, `then` s more for later ones (a duplicate).
    `bodies`: the SQS message bodies as delivered instead (raw delivery: the published text).
    """
    sqs, url, found = emu.client("sqs"), emu.status_queue_url, []
    until = time.monotonic() + wait
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1 if wait else 0,
                                  VisibilityTimeout=60).get("Messages", [])
        for m in got:
            body = json.loads(m["Body"])
            message = json.loads(body["Message"]) if "Message" in body else body
            if message.get("batchId") == batch_id:
                if not found:
                    until = time.monotonic() + then
                found.append(m["Body"] if bodies else message)
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        if not got and time.monotonic() >= until:
            return found
