"""Request bodies shared by the API tests."""

from __future__ import annotations

import uuid
from pathlib import Path

from sample_batches import INPUT, notebook_batch  # noqa: F401  (shared with the other test folders)

from smgt.embedded import PASSWORDS  # noqa: F401  (the users the test stack has)

ROOT = Path(__file__).resolve().parents[2]
BATCH_DAG_ID = "smgt_batch"

def new_batch_id(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"

