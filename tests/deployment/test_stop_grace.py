"""EmbeddedAirflow.stop_runners(grace): the scheduler and the triggerer get `grace` seconds after
SIGTERM, then SIGKILL; the dag-processor at most SERVER_STOP_GRACE_SECONDS. Real processes that
ignore SIGTERM stand in for components stuck on their way out."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from smgt.embedded import SERVER_STOP_GRACE_SECONDS, EmbeddedAirflow

IGNORES_SIGTERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(120)"
EXITS_ON_SIGTERM = "import time; print('ready', flush=True); time.sleep(120)"


@pytest.fixture
def airflow_with(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], EmbeddedAirflow]]:
    """An EmbeddedAirflow whose components are processes running the given code (name -> code);
    every one is killed afterwards."""
    started: list[subprocess.Popen] = []

    def make(components: dict[str, str]) -> EmbeddedAirflow:
        airflow = EmbeddedAirflow(tmp_path / "home", aws_env={})
        for name, code in components.items():
            proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, start_new_session=True)
            started.append(proc)
            assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"  # its handler is in place
            airflow.processes[name] = proc
        return airflow

    yield make
    for proc in started:
        proc.kill()
        proc.wait()


def _stop_runners(airflow: EmbeddedAirflow, grace: float) -> float:
    start = time.monotonic()
    airflow.stop_runners(grace=grace)
    return time.monotonic() - start


def test_stop_runners_kills_what_outlives_the_grace_and_leaves_the_api_server(airflow_with) -> None:
    airflow = airflow_with({"scheduler": EXITS_ON_SIGTERM, "triggerer": IGNORES_SIGTERM,
                            "dag-processor": IGNORES_SIGTERM, "api-server": EXITS_ON_SIGTERM})
    took = _stop_runners(airflow, grace=2.0)
    assert 2.0 <= took < 6.0, took  # the triggerer's grace, not the default 15 s
    assert airflow.processes["scheduler"].returncode == -15  # SIGTERM was enough
    assert airflow.processes["triggerer"].returncode == -9
    assert airflow.processes["dag-processor"].returncode == -9
    assert airflow.processes["api-server"].poll() is None  # still answering


def test_the_dag_processor_gets_at_most_the_server_grace(airflow_with) -> None:
    # It does not always exit on SIGTERM and has nothing to finish: a long grace is not its.
    airflow = airflow_with({"scheduler": EXITS_ON_SIGTERM, "dag-processor": IGNORES_SIGTERM})
    took = _stop_runners(airflow, grace=20.0)
    assert SERVER_STOP_GRACE_SECONDS <= took < SERVER_STOP_GRACE_SECONDS + 3, took
    assert airflow.processes["dag-processor"].returncode == -9
    assert airflow.processes["scheduler"].returncode == -15
