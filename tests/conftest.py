"""Root test configuration: import the package the way Airflow does (plugins/ on sys.path)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
for folder in (ROOT / "plugins", Path(__file__).parent):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from sample_batches import notebook_batch  # noqa: E402


@pytest.fixture
def nb_batch() -> dict:
    return notebook_batch()
