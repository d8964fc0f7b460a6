"""A real Airflow (api-server, scheduler, dag-processor, triggerer) against the local GT emulator.

Started once for the whole tests/api run (session scope: startup is the expensive part), with its
own AIRFLOW_HOME and SQLite database in a temp dir, LocalExecutor, this repo's dags/ and plugins/,
and SimpleAuthManager users `admin` (role admin), `user` (role user) and `viewer` (role viewer)
whose passwords the fixture writes itself.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from api_helpers import BATCH_DAG_ID, PASSWORDS, ROOT

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
STARTUP_SECONDS = 150


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class AirflowStack:
    url: str
    home: Path
    env: dict[str, str]
    emu: Any
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    _tokens: dict[str, str] = field(default_factory=dict)

    def token(self, user: str) -> str:
        if user not in self._tokens:
            resp = requests.post(
                f"{self.url}/auth/token",
                json={"username": user, "password": PASSWORDS[user]},
                timeout=30,
            )
            resp.raise_for_status()
            self._tokens[user] = resp.json()["access_token"]
        return self._tokens[user]

    def session(self, user: str | None) -> requests.Session:
        """HTTP session as `user` (bearer token), or anonymous for None."""
        http = requests.Session()
        if user is not None:
            http.headers["Authorization"] = f"Bearer {self.token(user)}"
        return http

    def api(self, path: str) -> str:
        return f"{self.url}/smgt/{path.lstrip('/')}"

    def dag_runs(self, dag_id: str = BATCH_DAG_ID) -> list[dict[str, Any]]:
        """Every run of `dag_id`, through Airflow's own REST API (not ours)."""
        runs: list[dict[str, Any]] = []
        while True:
            resp = self.session("admin").get(
                f"{self.url}/api/v2/dags/{dag_id}/dagRuns",
                params={"limit": 100, "offset": len(runs)},
                timeout=30,
            )
            if resp.status_code == 404:
                return runs
            resp.raise_for_status()
            page = resp.json()["dag_runs"]
            runs.extend(page)
            if len(page) < 100:
                return runs

    def run_exists(self, run_id: str, dag_id: str = BATCH_DAG_ID) -> bool:
        resp = self.session("admin").get(f"{self.url}/api/v2/dags/{dag_id}/dagRuns/{run_id}", timeout=30)
        assert resp.status_code in (200, 404), resp.text
        return resp.status_code == 200

    def logs(self, lines: int = 60) -> str:
        out = []
        for name in self.processes:
            path = self.home / f"{name}.log"
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"----- {name} -----\n" + "\n".join(tail))
        return "\n".join(out)


def _airflow_env(home: Path, port: int, emu_env: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "SMGT_"))}
    env.update(emu_env)
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps(PASSWORDS))
    url = f"http://127.0.0.1:{port}"
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "8",
            # Only smgt_batch is unpaused (below): recurring batch DAGs from include/batches would
            # otherwise start scheduled runs that compete for the two cores.
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,user:user,viewer:viewer",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__BASE_URL": url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": "smgt-api-tests-jwt-secret-0123456789abcdef",
            "AIRFLOW__API__SECRET_KEY": "smgt-api-tests-secret-key",
            # Parse dags/ quickly and often so a freshly started stack has smgt_batch in seconds.
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "SMGT_POKE_INTERVAL": "2",
            "PYTHONPATH": os.pathsep.join(
                [str(ROOT / "plugins"), str(ROOT)]
                + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
            ),
            "NO_PROXY": "*",
        }
    )
    return env


def _wait_for(check: Any, timeout: float, what: str, stack: AirflowStack) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        for name, proc in stack.processes.items():
            if proc.poll() is not None:
                pytest.fail(
                    f"airflow {name} exited with {proc.returncode} while waiting for {what}\n{stack.logs()}"
                )
        try:
            last = check()
            if last:
                return last
        except requests.RequestException as exc:
            last = exc
        time.sleep(1)
    pytest.fail(f"timed out after {timeout}s waiting for {what} (last: {last!r})\n{stack.logs()}")


def _stop(processes: dict[str, subprocess.Popen]) -> None:
    # Each component was started in its own session; end exactly those process groups.
    for proc in processes.values():
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    for proc in processes.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def emulator() -> Iterator[Any]:
    from smgt.local import LocalGroundTruth

    with LocalGroundTruth(port=0, task_seconds=0.0) as emu:
        emu.upload_demo_data()
        yield emu


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, emulator: Any) -> Iterator[AirflowStack]:
    home = tmp_path_factory.mktemp("airflow_home")
    port = free_port()
    env = _airflow_env(home, port, emulator.env())
    stack = AirflowStack(url=f"http://127.0.0.1:{port}", home=home, env=env, emu=emulator)
    migrate = subprocess.run(
        [AIRFLOW, "db", "migrate"], env=env, cwd=home, capture_output=True, text=True, timeout=300
    )
    assert migrate.returncode == 0, migrate.stdout[-3000:] + migrate.stderr[-3000:]
    commands = {
        "api-server": [AIRFLOW, "api-server", "--port", str(port), "--host", "127.0.0.1"],
        "scheduler": [AIRFLOW, "scheduler"],
        "dag-processor": [AIRFLOW, "dag-processor"],
        "triggerer": [AIRFLOW, "triggerer"],
    }
    try:
        for name, command in commands.items():
            log = open(home / f"{name}.log", "wb")  # noqa: SIM115 (owned by the child for its life)
            stack.processes[name] = subprocess.Popen(
                command, env=env, cwd=home, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            log.close()

        def healthy() -> bool:
            return requests.get(f"{stack.url}/api/v2/monitor/health", timeout=5).status_code == 200

        _wait_for(healthy, STARTUP_SECONDS, "the api-server", stack)
        if (ROOT / "dags" / "smgt_batch.py").exists():

            def dag_loaded() -> bool:
                resp = stack.session("admin").get(f"{stack.url}/api/v2/dags/{BATCH_DAG_ID}", timeout=10)
                return resp.status_code == 200

            _wait_for(dag_loaded, STARTUP_SECONDS, f"the {BATCH_DAG_ID} DAG to be parsed", stack)
            resp = stack.session("admin").patch(
                f"{stack.url}/api/v2/dags/{BATCH_DAG_ID}", json={"is_paused": False}, timeout=30
            )
            assert resp.status_code == 200, resp.text
        yield stack
    finally:
        _stop(stack.processes)
