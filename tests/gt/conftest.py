"""Fixtures of the GT client-layer tests: the HTTP stand-in and an aws_default pointing at it."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# The stand-in lives in a uniquely named module (not conftest) so other test folders' conftest
# modules cannot shadow it.
sys.path.insert(0, str(Path(__file__).parent))

from gt_standin import REGION, FakeGroundTruth  # noqa: E402

from smgt.settings import setting_names  # noqa: E402


@pytest.fixture
def fake_gt() -> Iterator[FakeGroundTruth]:
    fake = FakeGroundTruth().start()
    try:
        yield fake
    finally:
        fake.stop()


def set_aws_connection(monkeypatch: pytest.MonkeyPatch, endpoint_url: str) -> None:
    """aws_default pointing at `endpoint_url`, the way the emulator and deployments configure it."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_DEFAULT",
        json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {"region_name": REGION, "endpoint_url": endpoint_url},
            }
        ),
    )


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Never reach real AWS or pick up a developer's settings.
    for name in setting_names():
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


@pytest.fixture
def gt(fake_gt: FakeGroundTruth, monkeypatch: pytest.MonkeyPatch) -> FakeGroundTruth:
    """The stand-in, with aws_default pointing at it."""
    set_aws_connection(monkeypatch, fake_gt.endpoint_url)
    return fake_gt


@pytest.fixture
def env(emu: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The module's `emu` (a LocalGroundTruth) as this process's AWS environment, with no faults."""
    for key, value in emu.env().items():
        monkeypatch.setenv(key, value)
    emu.set_faults({})
    return emu
