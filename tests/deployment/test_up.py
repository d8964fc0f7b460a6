"""`python -m smgt.up` (what scripts/up.sh runs) keeps its state: stopped and started again, or
SIGKILLed and started again, it shows the same batches, jobs and outputs, and a batch that was
running when it went down finishes. Simulated workforce (the Label Studio rows are in
test_labelstudio.py); --reset says what it deletes and deletes only when confirmed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from smgt.embedded import ROOT

from .deployment_helpers import batch_with_rates, wait_until

BATCH = "up-durable"


class Up:
    """One run of `python -m smgt.up` on a state dir, as a person starts it from a terminal."""

    def __init__(self, state_dir: Path, log: Path, *args: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins")}
        self.log = log
        self.offset = log.stat().st_size if log.exists() else 0  # this run's output starts here
        with open(log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "smgt.up", "--simulated", "--task-seconds", "5", "--any-ports",
                                          "--state-dir", str(state_dir), *args], stdout=out, stderr=subprocess.STDOUT,
                                         env=env, cwd=ROOT, stdin=subprocess.DEVNULL)
        # retry_errors=False: an up.sh that exited fails the test at once, with its output.
        self.text = wait_until("the deployment to be up", self._printed, timeout=300, poll=1, retry_errors=False)
        self.airflow = self._value("Airflow")
        self.password = self.text.split(f"{self.airflow}   login admin / ", 1)[1].split()[0]
        self.http = requests.Session()
        token = self.http.post(f"{self.airflow}/auth/token", json={"username": "admin", "password": self.password},
                               timeout=30).json()["access_token"]
        self.http.headers["Authorization"] = f"Bearer {token}"

    def _printed(self) -> str | None:
        if self.proc.poll() is not None:
            raise AssertionError(f"smgt.up exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
        text = self.log.read_bytes()[self.offset:].decode(errors="replace")
        return text if "=== smgt local deployment is up ===" in text else None

    def _value(self, name: str) -> str:
        return next(line.split(":", 1)[1].split()[0] for line in self.text.splitlines() if line.startswith(name))

    def show(self, batch_id: str | None = None) -> dict[str, Any]:
        resp = self.http.get(f"{self.airflow}/smgt/batch/show", params={"batchId": batch_id} if batch_id else {},
                             timeout=60)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def stop(self, sig: int) -> None:
        self.proc.send_signal(sig)
        self.proc.wait(timeout=120)


@pytest.fixture
def ups() -> Iterator[list[Up]]:
    """Every Up a test starts; whatever still runs at the end is stopped (a failed test leaves none)."""
    started: list[Up] = []
    yield started
    for up in started:
        if up.proc.poll() is None:
            up.stop(signal.SIGTERM)


def outputs(up: Up, batch_id: str) -> dict[str, str]:
    shown = up.show(batch_id)
    return {j["labelingJobName"]: j["jobOutputS3Uri"] for key in ("firstLevel", "secondLevel")
            for j in shown[key]["jobLevels"]}


def test_up_survives_stop_start_and_sigkill(tmp_path: Path, ups: list[Up]) -> None:
    state, log = tmp_path / "state", tmp_path / "up.log"
    up = Up(state, log)
    ups.append(up)
    resp = up.http.post(f"{up.airflow}/smgt/batch/create", json=batch_with_rates(BATCH), timeout=60)
    assert resp.status_code == 200, resp.text
    wait_until("level 1 to be labeled", lambda: up.show(BATCH)["firstLevel"]["status"] == "COMPLETE", 240, 2)

    # SIGKILL the supervisor while level 2 runs: its components are orphaned, then ended by the next start.
    first_session = up.http
    up.stop(signal.SIGKILL)
    up = Up(state, log)
    ups.append(up)
    # Airflow signs tokens with this state dir's own secret, kept: a token from before still works.
    assert len(json.loads((state / "deployment.json").read_text())["secrets"]["airflow_jwt_secret"]) >= 64
    assert first_session.get(f"{up.airflow}/smgt/batch/show", timeout=60).status_code == 200
    listed = up.show()
    assert BATCH in listed["IN_PROGRESS"] + listed["COMPLETE"], listed
    done = wait_until("the running batch to finish after the restart",
                      lambda: (s := up.show(BATCH))["status"] in ("COMPLETE", "INTERNAL_ERROR") and s, 300, 2)
    assert done["status"] == "COMPLETE", done
    before = outputs(up, BATCH)
    assert len(before) == 4 and all(before.values())

    # A clean stop and start: the same batch, jobs and output files.
    up.stop(signal.SIGTERM)
    assert "stopped; state kept in" in log.read_text()
    up = Up(state, log)
    ups.append(up)
    assert up.show()["COMPLETE"] == [BATCH]
    assert outputs(up, BATCH) == before
    for uri in before.values():  # the files are there, behind the presigned URLs batch/show hands out
        url = next(j["jobOutputS3Url"] for key in ("firstLevel", "secondLevel")
                   for j in up.show(BATCH)[key]["jobLevels"] if j["jobOutputS3Uri"] == uri)
        assert requests.get(url, timeout=30).status_code == 200
    up.stop(signal.SIGTERM)


def test_a_component_killed_alone_is_started_again_and_leaves_nothing_behind(tmp_path: Path, ups: list[Up]) -> None:
    """kill -9 of SeaweedFS's pid and of the scheduler's pid alone (not their groups): up.sh starts
    both again (SeaweedFS used to find its store locked by the supervisor itself, forever), says how
    they exited, and the scheduler's LocalExecutor workers and serve-logs do not outlive it."""
    state, log = tmp_path / "state", tmp_path / "up.log"
    up = Up(state, log)
    ups.append(up)
    pids = {name: json.loads((state / "run" / f"{name}.json").read_text())["pid"] for name in ("seaweedfs", "scheduler")}
    assert _group(pids["scheduler"]) - {pids["scheduler"]}, "no LocalExecutor workers in the scheduler's group"
    for pid in pids.values():
        os.kill(pid, signal.SIGKILL)
    printed = wait_until("both to be up again", lambda: all(f"{name} is up again" in (text := log.read_text())
                                                             for name in pids) and text, 180, 1)
    for name in pids:
        assert f"{name} exited (status -9)" in printed
    assert "did not start again" not in printed
    wait_until("the dead scheduler's workers to be gone", lambda: not _group(pids["scheduler"]), 10, 0.5)
    resp = up.http.post(f"{up.airflow}/smgt/batch/create", json=batch_with_rates("up-killed-alone"), timeout=60)
    assert resp.status_code == 200, resp.text
    done = wait_until("the batch to finish", lambda: (s := up.show("up-killed-alone"))["status"]
                      in ("COMPLETE", "INTERNAL_ERROR") and s, 300, 2)
    assert done["status"] == "COMPLETE", done
    up.stop(signal.SIGTERM)


def _group(pgid: int) -> set[int]:
    """The live processes (not zombies) of process group `pgid`."""
    live = set()
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                live.add(proc.pid)
    return live


def test_reset_says_what_it_deletes_and_needs_confirmation(tmp_path: Path, ups: list[Up]) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins")}

    def up_reset(state: Path) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "smgt.up", "--reset", "--state-dir", str(state)],
                              capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=60)

    # A folder that is not a state directory (a typo in --state-dir: ~ instead of ~/smgt) is never deleted.
    home = tmp_path / "home"
    (home / "thesis").mkdir(parents=True)
    refused = up_reset(home)
    assert refused.returncode != 0 and "not a deployment's state directory" in refused.stdout + refused.stderr
    assert (home / "thesis").is_dir()

    state = tmp_path / "state"
    (state / "s3").mkdir(parents=True)
    (state / "gt").mkdir()
    (state / "gt" / "gt.sqlite3").write_text("jobs of weeks")
    (state / "deployment.json").write_text('{"workforce": "simulated"}')
    refused = up_reset(state)
    assert refused.returncode == 1 and f"--reset deletes {state}" in refused.stdout
    assert "deployment.json, gt, s3" in refused.stdout
    assert "add --yes" in refused.stderr and (state / "gt" / "gt.sqlite3").read_text() == "jobs of weeks"
    assert "Label Studio" not in refused.stdout  # a simulated state dir has none to lose

    up = Up(state, tmp_path / "up.log", "--reset", "--yes")
    ups.append(up)
    assert "(3 entries)" in up.text and "jobs of weeks" not in (state / "gt" / "gt.sqlite3").read_bytes().decode(
        errors="replace")
    assert up.show()["COMPLETE"] == [] and up.show()["IN_PROGRESS"] == []
    up.stop(signal.SIGTERM)


def test_up_sh_refuses_the_other_workforce_before_installing_label_studio(tmp_path: Path) -> None:
    # A state dir set up with simulated workers, started without --simulated: refused before
    # scripts/up.sh installs Label Studio (~1 GB) for nothing.
    state = tmp_path / "state"
    state.mkdir()
    (state / "deployment.json").write_text('{"workforce": "simulated"}')
    ls_venv = tmp_path / "labelstudio-venv"
    proc = subprocess.run([str(ROOT / "scripts" / "up.sh"), "--state-dir", str(state)], capture_output=True, text=True,
                          env={**os.environ, "LABELSTUDIO_VENV": str(ls_venv)}, stdin=subprocess.DEVNULL, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"{state} was set up with the simulated workforce and its jobs are labeled there; start it with --simulated" in (
        proc.stderr)
    assert not ls_venv.exists() and "starting the local deployment" not in proc.stdout
    # The other way round, and a --reset (which starts over) passes the check.
    (state / "deployment.json").write_text('{"workforce": "labelstudio"}')
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins")}

    def check(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "smgt.up", "--check-workforce", "--state-dir", str(state), *args],
                              capture_output=True, text=True, env=env, timeout=60)

    assert "start it without --simulated" in check("--simulated").stderr
    assert check("--simulated", "--reset").returncode == 0 and check().returncode == 0
