"""EmbeddedAirflow.stop_runners(grace): the scheduler and the triggerer get `grace` seconds after
SIGTERM, then SIGKILL; the dag-processor at most SERVER_STOP_GRACE_SECONDS. Real processes that
ignore SIGTERM stand in for components stuck on their way out."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from smgt.embedded import SERVER_STOP_GRACE_SECONDS, EmbeddedAirflow

IGNORES_SIGTERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(120)"
EXITS_ON_SIGTERM = "import time; print('ready', flush=True); time.sleep(120)"


def _component(code: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, start_new_session=True)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"  # its handler is in place
    return proc


def test_stop_runners_kills_what_outlives_the_grace_and_leaves_the_api_server(tmp_path: Path) -> None:
    airflow = EmbeddedAirflow(tmp_path / "home", aws_env={})
    airflow.processes = {
        "scheduler": _component(EXITS_ON_SIGTERM),
        "triggerer": _component(IGNORES_SIGTERM),
        "dag-processor": _component(IGNORES_SIGTERM),
        "api-server": _component(EXITS_ON_SIGTERM),
    }
    try:
        start = time.monotonic()
        airflow.stop_runners(grace=2.0)
        took = time.monotonic() - start
        assert 2.0 <= took < 6.0, took  # the triggerer's grace, not the default 15 s
        assert airflow.processes["scheduler"].returncode == -15  # SIGTERM was enough
        assert airflow.processes["triggerer"].returncode == -9
        assert airflow.processes["dag-processor"].returncode == -9
        assert airflow.processes["api-server"].poll() is None  # still answering
    finally:
        for proc in airflow.processes.values():
            proc.kill()
            proc.wait()


def test_the_dag_processor_gets_at_most_the_server_grace(tmp_path: Path) -> None:
    # It does not always exit on SIGTERM and has nothing to finish: a long grace is not its.
    airflow = EmbeddedAirflow(tmp_path / "home", aws_env={})
    airflow.processes = {"scheduler": _component(EXITS_ON_SIGTERM), "dag-processor": _component(IGNORES_SIGTERM)}
    try:
        start = time.monotonic()
        airflow.stop_runners(grace=20.0)
        took = time.monotonic() - start
        assert SERVER_STOP_GRACE_SECONDS <= took < SERVER_STOP_GRACE_SECONDS + 3, took
        assert airflow.processes["dag-processor"].returncode == -9
        assert airflow.processes["scheduler"].returncode == -15
    finally:
        for proc in airflow.processes.values():
            proc.kill()
            proc.wait()
