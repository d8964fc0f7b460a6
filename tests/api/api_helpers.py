"""Request bodies shared by the API tests."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sample_batches import INPUT, notebook_batch  # noqa: F401  (shared with the other test folders)

from smgt.embedded import PASSWORDS  # noqa: F401  (the users the test stack has)

ROOT = Path(__file__).resolve().parents[2]
BATCH_DAG_ID = "smgt_batch"

def new_batch_id(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def show(stack: Any, batch_id: str) -> dict[str, Any]:
    """batch/show of one batch, as the admin."""
    return stack.session("admin").get(stack.api("batch/show"), params={"batchId": batch_id}, timeout=30).json()


def wait_for(stack: Any, batch_id: str, condition: Callable[[dict[str, Any]], bool], timeout: float,
             what: str) -> dict[str, Any]:
    """Poll batch/show every second until `condition(detail)`; AssertionError `what` (with the
    detail and the stack's logs) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        detail = show(stack, batch_id)
        if condition(detail):
            return detail
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout} s: {detail}\n{stack.logs(30)}")
        time.sleep(1)
