"""The QA tests that run whole batches use the dag.test() emulator of tests/dag (dag_helpers)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dag"))  # dag_helpers, shared with tests/dag


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from dag_helpers import dag_test_emulator

    with dag_test_emulator(tmp_path_factory, "qa") as emu:
        yield emu
