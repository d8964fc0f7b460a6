"""The embedded default deployment: Airflow on SQLite + LocalExecutor, one process per component.

Used by the demo (`scripts/demo.sh`) and by the API tests: api-server, scheduler, dag-processor and
triggerer, this repo's dags/ and plugins/, SimpleAuthManager users, AWS pointed wherever the given
environment says (the local emulator's `env()`, or real AWS).

    with EmbeddedAirflow(home, aws_env=emu.env()) as airflow:
        http = airflow.session("admin")
        http.post(airflow.url + "/smgt/batch/create", json=...)
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
# SimpleAuthManager users: role admin, role user (may trigger), role viewer (read only).
USERS = {"admin": "admin", "user": "user", "viewer": "viewer"}
PASSWORDS = {"admin": "admin-pass", "user": "user-pass", "viewer": "viewer-pass"}
# stop(): seconds the scheduler and the triggerer get to exit after SIGTERM, and the api-server and
# the dag-processor (see stop()).
STOP_GRACE_SECONDS = 15.0
SERVER_STOP_GRACE_SECONDS = 1.0
# What every component's sqlite3 connection waits for another component's write lock before it
# fails with "database is locked" (Python's default is 5 s). On a loaded 2-core machine a restarted
# scheduler starting the queued tasks held it longer than that, and the api-server answered the
# unpause and a task's start with HTTP 500. Airflow imports these ([database]
# sql_alchemy_connect_args and _async); aiosqlite passes `timeout` on to sqlite3.connect. Two dicts,
# not one: Airflow adds check_same_thread to the sync engine's in place.
SQLITE_CONNECT_ARGS: dict[str, Any] = {"timeout": 60}
SQLITE_CONNECT_ARGS_ASYNC: dict[str, Any] = {"timeout": 60}


class EmbeddedAirflowError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def new_signing_secrets() -> dict[str, str]:
    """Random `jwt_secret` (AIRFLOW__API_AUTH__JWT_SECRET) and `secret_key` (AIRFLOW__API__SECRET_KEY).

    64 random bytes for the JWT secret: Airflow signs with HS512, whose key should be at least as
    long as its 64-byte hash (RFC 7518 section 3.2; PyJWT warns below that)."""
    return {"jwt_secret": secrets.token_urlsafe(64), "secret_key": secrets.token_urlsafe(32)}


def _end_group(pgid: int) -> None:
    """SIGKILL what is left of a component's process group once its leader has exited: a scheduler
    killed alone (kill -9 of its pid) or stopped leaves its LocalExecutor workers and serve-logs
    there, holding the database and hundreds of MB each, and they ignore SIGTERM. While one of them
    lives the group id cannot be given to another process (and an empty group's id comes back only
    once the pid counter wraps at pid_max), so this reaches only them."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class EmbeddedAirflow:
    def __init__(
        self,
        home: Path,
        *,
        aws_env: dict[str, str],
        port: int | None = None,
        unpause: tuple[str, ...] = ("smgt_batch",),
        extra_env: dict[str, str] | None = None,
        startup_seconds: float = 180,
        passwords: dict[str, str] | None = None,
        signing_secrets: dict[str, str] | None = None,
    ) -> None:
        self.home = Path(home)
        self.home.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.unpause = unpause
        self.startup_seconds = startup_seconds
        self.passwords = dict(passwords or PASSWORDS)
        # What the api-server signs tokens (JWT) and session cookies with: whoever knows it can mint
        # an admin token. New for every instance unless given (a kept deployment keeps its own, so
        # tokens outlive a restart: smgt.deployment).
        self.signing_secrets = dict(signing_secrets or new_signing_secrets())
        self.processes: dict[str, subprocess.Popen] = {}
        self._migrate: tuple[subprocess.Popen, Any] | None = None
        # stop() sets it: a start running in another thread then starts nothing more.
        self._stopped = False
        self._spawn_lock = threading.Lock()
        self._warming: threading.Thread | None = None
        self._tokens: dict[str, str] = {}
        self.env = self._environment(aws_env, extra_env or {})

    def _environment(self, aws_env: dict[str, str], extra: dict[str, str]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
        env.update(aws_env)
        passwords = self.home / "passwords.json"
        passwords.write_text(json.dumps(self.passwords))
        passwords.chmod(0o600)
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "8",
                # Only the DAGs in `unpause` run: recurring batch DAGs would otherwise start
                # scheduled runs that compete for the machine.
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home}/airflow.db",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": "smgt.embedded.SQLITE_CONNECT_ARGS",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC": "smgt.embedded.SQLITE_CONNECT_ARGS_ASYNC",
                "AIRFLOW__CORE__AUTH_MANAGER": (
                    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
                ),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, r in USERS.items()),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
                "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__API_AUTH__JWT_SECRET": self.signing_secrets["jwt_secret"],
                "AIRFLOW__API__SECRET_KEY": self.signing_secrets["secret_key"],
                # Look for new files in dags/ every 5 s, so a fresh instance has smgt_batch in
                # seconds (a new file is parsed at once); re-parse a known file every 30 s
                # (Airflow's default): each parse costs ~1 s of CPU, a tenth of a core at 5 s.
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
                # AWS clients share one botocore loader per process (smgt.gt.session).
                "AIRFLOW__AWS__SESSION_FACTORY": "smgt.gt.session.SharedLoaderSessionFactory",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
                # LocalExecutor runs tasks under the scheduler: after a crash of it, their task
                # instances are retried once this long without a heartbeat (Airflow's default: 5 min),
                # and a restarted scheduler looks for the dead one's tasks this often (default 5 min).
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
                "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "30",
                # The log servers' default ports (8793/8794) are shared by every Airflow on the machine.
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
                "SMGT_POKE_INTERVAL": env.get("SMGT_POKE_INTERVAL", "2"),
                "PYTHONPATH": os.pathsep.join(
                    [str(ROOT / "plugins"), str(ROOT)]
                    + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
                ),
                "NO_PROXY": "*",
            }
        )
        env.update(extra)
        return env

    # ------------------------------------------------------------------ lifecycle

    def begin_migrate(self) -> None:
        """Start `airflow db migrate` in the background (it needs nothing else running): `start()`
        then waits for it. A deployment calls this first, so the migration overlaps its other
        components' starts."""
        with self._spawn_lock:
            if self._stopped:
                raise EmbeddedAirflowError("stopped while starting")
            if self._migrate is None:
                out = tempfile.TemporaryFile()  # noqa: SIM115 - read and closed in _finish_migrate
                self._migrate = (subprocess.Popen([AIRFLOW, "db", "migrate"], env=self.env, cwd=self.home,
                                                  stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                                  start_new_session=True), out)

    def _finish_migrate(self) -> None:
        self.begin_migrate()
        assert self._migrate is not None
        proc, out = self._migrate
        try:
            proc.wait(timeout=600)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        with self._spawn_lock:
            if self._migrate is None:  # stop() ended it
                raise EmbeddedAirflowError("stopped while starting")
            self._migrate = None
        with out:
            out.seek(0)
            text = out.read().decode("utf-8", "replace")
        if proc.returncode != 0:
            raise EmbeddedAirflowError("airflow db migrate failed:\n" + text[-6000:])

    def start(self) -> EmbeddedAirflow:
        """Migrate the database, start every component and wait until `unpause`'s DAGs run."""
        self._stopped = False
        try:
            self.start_servers()
            self.start_workers()
        except BaseException:
            self.stop()
            raise
        return self

    def start_servers(self) -> None:
        """First half of `start()`, which needs no AWS endpoint up: the database migration, then the
        api-server and the dag-processor at once (parsing dags/ is the longest step), until the
        api-server answers. (A deployment runs this while S3 and the emulator start.)"""
        self._finish_migrate()
        self.start_component("api-server", starting=True)
        self.start_component("dag-processor", starting=True)
        self.wait_for(self._healthy, "the api-server")
        # Meanwhile the scheduler and the triggerer start (start_workers) and the DAG is parsed.
        self._warming = threading.Thread(target=self._warm_execution_api, daemon=True)
        self._warming.start()

    def start_workers(self) -> None:
        """Second half of `start()`: the scheduler and the triggerer, then wait for the `unpause`
        DAGs to be parsed and unpause them. They run tasks and triggers, which report to the
        api-server's execution API and call AWS, so they start only once the api-server answers (a
        task started before it answers fails, e.g. a retry the scheduler runs at once after a
        restart) and, in a deployment, once AWS (the emulator) is up."""
        for name in ("scheduler", "triggerer"):
            self.start_component(name, starting=True)
        for dag_id in self.unpause:
            dag = self.wait_for(lambda d=dag_id: self._dag(d), f"the {dag_id} DAG to be parsed")
            if dag["is_paused"]:  # a restart finds it unpaused: no write while the scheduler starts tasks
                resp = self.session("admin").patch(f"{self.url}/api/v2/dags/{dag_id}", json={"is_paused": False},
                                                   timeout=90)
                resp.raise_for_status()
        if self._warming is not None:
            self._warming.join(60)
            self._warming = None

    def _dag(self, dag_id: str) -> dict[str, Any] | None:
        resp = self.session("admin").get(f"{self.url}/api/v2/dags/{dag_id}", timeout=10)
        return resp.json() if resp.status_code == 200 else None

    def _warm_execution_api(self) -> None:
        """One request to the execution API while the other components start and the DAG is
        parsed: its first request builds its versioned routes (Cadwyn), seconds during which the
        api-server answers nothing; otherwise the first task's start waits for that (its request
        times out and is retried under load)."""
        with contextlib.suppress(requests.RequestException):
            requests.get(f"{self.url}/execution/health", timeout=60)

    def start_component(self, name: str, *, starting: bool = False) -> subprocess.Popen:
        """Start one component (again, e.g. after `kill`) in its own process group. `starting`:
        part of `start()`, so refused once `stop()` was called (from another thread)."""
        if name not in COMPONENTS:
            raise ValueError(f"component: {name!r} is not one of {COMPONENTS}")
        old = self.processes.get(name)
        if old is not None:
            if old.poll() is None:
                raise EmbeddedAirflowError(f"airflow {name} is already running (pid {old.pid})")
            self._end_group(old)
        command = [AIRFLOW, name]
        if name == "api-server":
            command += ["--port", str(self.port), "--host", "127.0.0.1"]
        with self._spawn_lock, open(self.home / f"{name}.log", "ab") as log:
            if starting and self._stopped:
                raise EmbeddedAirflowError("stopped while starting")
            self.processes[name] = subprocess.Popen(
                command, env=self.env, cwd=self.home, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: stop()/kill() end exactly its children
            )
        return self.processes[name]

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send `sig` (default SIGKILL: a crash) to one component's process group and reap it."""
        proc = self.processes[name]
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
        proc.wait(timeout=60)
        self._end_group(proc)

    def pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self.processes.items() if proc.poll() is None}

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Stop every component: `stop_runners(grace)`, then the api-server."""
        self.stop_runners(grace)
        # The api-server once the others are gone (their last reports go to it). It has nothing left
        # to finish then: uvicorn shuts down in 0.1 s but the process took 1.8 s (idle) to over 3 s
        # (the demo) to exit. It gets SERVER_STOP_GRACE_SECONDS, then SIGKILL (SQLite's journal
        # keeps the database whole either way).
        self._terminate(["api-server"], {"api-server": SERVER_STOP_GRACE_SECONDS})

    def stop_runners(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Stop what runs tasks, triggers and parses (a migration, the scheduler and the tasks it
        runs, the triggerer, the dag-processor); the api-server keeps answering.

        `grace`: seconds the scheduler and the triggerer get after SIGTERM before SIGKILL. A
        deployment whose state is thrown away (the demo) gives less: Airflow 3.3's supervisor can
        sit out its whole kill escalation window (the triggerer's 10 s) when its child closes its
        sockets a moment before it can be reaped; that child, then a zombie, has finished.
        """
        with self._spawn_lock:  # a start in another thread starts nothing after this
            self._stopped = True
            migrate, self._migrate = self._migrate, None
        if migrate is not None:  # stopped before start() waited for it
            proc, out = migrate
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            out.close()
        # The scheduler and the triggerer get `grace` to finish; the dag-processor does not always
        # exit on SIGTERM and has nothing to finish: SERVER_STOP_GRACE_SECONDS.
        first = [name for name in self.processes if name != "api-server"]
        self._terminate(first, {name: min(grace, SERVER_STOP_GRACE_SECONDS) if name == "dag-processor" else grace
                                for name in first})

    def _terminate(self, names: list[str], grace: dict[str, float]) -> None:
        """SIGTERM the `names` components' process groups at once; SIGKILL each after its grace."""
        procs = {name: self.processes[name] for name in names if name in self.processes}
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        start = time.monotonic()
        for name, proc in sorted(procs.items(), key=lambda item: grace[item[0]]):
            try:
                proc.wait(timeout=max(0.1, start + grace[name] - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            self._end_group(proc)

    def _end_group(self, proc: subprocess.Popen[bytes]) -> None:
        """_end_group(proc.pid), once per process: right after its leader exited (a stop runs
        _terminate twice), not again later, when the group id could have been given to another."""
        if not getattr(proc, "smgt_group_ended", False):
            proc.smgt_group_ended = True  # type: ignore[attr-defined]
            _end_group(proc.pid)

    def __enter__(self) -> EmbeddedAirflow:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ helpers

    def _healthy(self) -> bool:
        return requests.get(f"{self.url}/api/v2/monitor/health", timeout=5).status_code == 200

    def wait_for(self, check: Callable[[], Any], what: str, timeout: float | None = None,
                 poll: float = 0.2) -> Any:
        deadline = time.monotonic() + (timeout or self.startup_seconds)
        last: Any = None
        while time.monotonic() < deadline:
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    raise EmbeddedAirflowError(
                        f"airflow {name} exited with {proc.returncode} while waiting for {what}\n{self.logs()}")
            try:
                last = check()
                if last:
                    return last
            except requests.RequestException as exc:
                last = exc
            time.sleep(poll)
        raise EmbeddedAirflowError(f"timed out waiting for {what} (last: {last!r})\n{self.logs()}")

    def token(self, user: str) -> str:
        if user not in self._tokens:
            resp = requests.post(f"{self.url}/auth/token",
                                 json={"username": user, "password": self.passwords[user]}, timeout=30)
            resp.raise_for_status()
            self._tokens[user] = resp.json()["access_token"]
        return self._tokens[user]

    def session(self, user: str | None) -> requests.Session:
        """HTTP session as `user` (bearer token), or anonymous for None."""
        http = requests.Session()
        if user is not None:
            http.headers["Authorization"] = f"Bearer {self.token(user)}"
        return http

    def logs(self, lines: int = 60) -> str:
        out = []
        for name in self.processes:
            path = self.home / f"{name}.log"
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"----- {name} -----\n" + "\n".join(tail))
        return "\n".join(out)
