"""The local deployment a team runs for weeks: S3 on SeaweedFS, the local Ground Truth, optionally
Label Studio as its workforce, and Airflow (SQLite + LocalExecutor), all under one state directory.

    with LocalDeployment(state_dir, workforce="labelstudio") as local:
        local.airflow.url, local.labelstudio.url, local.env()   # what people and clients use
        local.kill("emulator"); local.start_component("emulator")

Everything a team produces lives in the state directory, so stopping and starting again (or a
SIGKILL of any process, or of the whole machine) loses nothing that was acknowledged:

    <state>/deployment.json   ports and secrets chosen on the first start, reused by every later one
    <state>/s3/               SeaweedFS data (frames, manifests, label outputs)
    <state>/gt/gt.sqlite3     the local Ground Truth's labeling jobs, work teams and job names
    <state>/labelstudio/      Label Studio's database and files (projects, tasks, annotations)
    <state>/airflow/          AIRFLOW_HOME: Airflow's SQLite database, its logs, component logs
    <state>/logs/             logs of SeaweedFS, Label Studio and the emulator
    <state>/run/              pid files, so a start after a crash of the supervisor ends its orphans

Components start in dependency order (seaweedfs, labelstudio, emulator, then Airflow's api-server
and dag-processor, then its scheduler and triggerer; Airflow's database migration runs alongside the
first ones), each in its own process group, each health-checked; stop
sends SIGTERM and SIGKILLs what is left after a grace period. Back it up by stopping it and copying
the folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import requests

from smgt.embedded import ROOT, EmbeddedAirflow, free_port, new_signing_secrets
from smgt.embedded import STOP_GRACE_SECONDS as AIRFLOW_STOP_GRACE_SECONDS
from smgt.local.bootstrap import WORK_TEAM_MEMBERS_ENV, parse_work_team_members, worker_email
from smgt.local.demo import upload_demo_data
from smgt.local.emulator import S3Store, aws_env
from smgt.local.s3io import S3
from smgt.settings import Settings, get_settings

DEFAULT_STATE_DIR = ROOT / ".smgt" / "local"
AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
COMPONENTS = ("seaweedfs", "labelstudio", "emulator", *AIRFLOW_COMPONENTS)
# Ports a person types or bookmarks; used on the first start when free, else any free port.
PREFERRED_PORTS = {"airflow": 8080, "labelstudio": 8090, "emulator": 4566, "s3": 8333}
LABELSTUDIO_ADMIN = "admin@smgt.local"
STOP_GRACE_SECONDS = 30.0


class DeploymentError(RuntimeError):
    pass


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _pick_port(preferred: int, taken: set[int]) -> int:
    """`preferred` when free, else (or for 0) a free port not in `taken`."""
    if preferred and preferred not in taken and _port_is_free(preferred):
        return preferred
    while (port := free_port()) in taken:
        pass
    return port


def worker_password(secret: str, username: str) -> str:
    """A worker's Label Studio password: derived from the deployment's secret, so nothing else is stored."""
    return hmac.new(secret.encode(), username.encode(), hashlib.sha256).hexdigest()[:16]


def looks_like_state_dir(state_dir: Path) -> bool:
    """A deployment's state directory (has deployment.json), or an empty folder."""
    return (state_dir / "deployment.json").exists() or not any(state_dir.iterdir())


def _workforce_refusal(state_dir: Path, kept: str) -> str:
    flag = "without --simulated" if kept == "labelstudio" else "with --simulated"
    return (f"{state_dir} was set up with the {kept} workforce and its jobs are labeled there; start it {flag}"
            " (or use another --state-dir, or --reset to start over)")


def check_workforce(state_dir: Path, workforce: str) -> None:
    """Raise DeploymentError when `state_dir` was set up with another workforce than `workforce`
    ("labelstudio" or "simulated"): what a start would refuse, said before anything is installed."""
    path = Path(state_dir) / "deployment.json"
    kept = json.loads(path.read_text()).get("workforce", workforce) if path.exists() else workforce
    if kept != workforce:
        raise DeploymentError(_workforce_refusal(Path(state_dir), kept))


def reset(state_dir: Path) -> list[Path]:
    """Delete a stopped deployment's state directory; returns what was deleted (nothing if absent).

    Refuses (DeploymentError) a folder that is not a state directory, and one a deployment runs on.
    """
    state_dir = Path(state_dir)
    if not state_dir.exists():
        return []
    if not looks_like_state_dir(state_dir):
        raise DeploymentError(f"{state_dir} is not a deployment's state directory (no deployment.json):"
                              " not deleting it")
    parts = sorted(state_dir.iterdir())
    with _lock(state_dir):
        shutil.rmtree(state_dir)
    return parts


@contextlib.contextmanager
def _lock(state_dir: Path) -> Any:
    """Hold the state directory's lock (the kernel drops it if this process dies, even by SIGKILL)."""
    run = state_dir / "run"
    run.mkdir(parents=True, exist_ok=True)
    handle = open(run / "deployment.lock", "a+")  # noqa: SIM115 - held for the context's lifetime
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "unknown"
        handle.close()
        raise DeploymentError(f"another deployment is running on {state_dir} (pid {owner}); stop it first"
                              f" (Ctrl-C where it runs, or kill -TERM {owner})") from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    try:
        yield handle
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


class LocalDeployment:
    """A local deployment on `state_dir` (created on the first start, reused afterwards).

    `workforce`: "simulated" or "labelstudio" (people label in Label Studio; point-cloud jobs stay
    simulated). `task_seconds`/`init_seconds`/`seed`/`clock_origin`: the simulated workforce's pace
    and determinism (see smgt.local). `airflow`: also run Airflow (False: the AWS side only).
    `airflow_env`: extra environment for the Airflow processes. `labelstudio_poll_seconds`: how often
    the emulator polls Label Studio for finished tasks. `preferred_ports`: on the first start take
    the ports people expect (Airflow 8080, Label Studio 8090, ...) when free; False: any free ports
    (demo and tests, which must not race a deployment someone runs). Later starts reuse the ports.
    """

    def __init__(self, state_dir: str | Path = DEFAULT_STATE_DIR, *, workforce: str = "simulated",
                 task_seconds: float = 2.0, init_seconds: float = 1.0, seed: int = 0,
                 clock_origin: float | None = None, airflow: bool = True,
                 airflow_env: dict[str, str] | None = None, settings: Settings | None = None,
                 labelstudio_poll_seconds: float = 5.0, preferred_ports: bool = True,
                 stop_grace: float = STOP_GRACE_SECONDS) -> None:
        if workforce not in ("simulated", "labelstudio"):
            raise ValueError(f"workforce: {workforce!r} is not one of simulated, labelstudio")
        self.state_dir = Path(state_dir).absolute()
        self.workforce = workforce
        self.task_seconds = task_seconds
        self.init_seconds = init_seconds
        self.seed = seed
        self.clock_origin = clock_origin
        self.with_airflow = airflow
        self.airflow_env = dict(airflow_env or {})
        self.labelstudio_poll_seconds = labelstudio_poll_seconds
        self.preferred_ports = preferred_ports
        # Seconds SeaweedFS, Label Studio and the emulator get to exit; Airflow's scheduler and
        # triggerer get as much, at most their own default (smgt.embedded.STOP_GRACE_SECONDS).
        self.stop_grace = stop_grace
        self.settings = settings or get_settings()
        self.config: dict[str, Any] = {}
        self.seaweedfs: Any = None
        self.labelstudio: Any = None
        self.airflow: EmbeddedAirflow | None = None
        self.emulator: subprocess.Popen | None = None
        self.worker_tokens: dict[str, str] = {}
        self._lock_cm: Any = None
        self._servers: _Background | None = None

    # ------------------------------------------------------------------ configuration

    def _load_config(self) -> dict[str, Any]:
        path = self.state_dir / "deployment.json"
        if path.exists():
            config = json.loads(path.read_text())
        else:
            config = {"created": time.time(), "ports": {}, "secrets": {}}
        ports, keys = config["ports"], config["secrets"]
        taken = set(ports.values())
        for name, preferred in PREFERRED_PORTS.items():
            if name not in ports:
                ports[name] = _pick_port(preferred if self.preferred_ports else 0, taken)
                taken.add(ports[name])
        env = os.environ
        signing = new_signing_secrets()
        defaults = {
            "s3_access_key": lambda: "smgt" + secrets.token_hex(8),
            "s3_secret_key": lambda: secrets.token_urlsafe(30),
            # Settings win over generated values (README: configuration).
            "labelstudio_admin_password": lambda: env.get("SMGT_LABELSTUDIO_ADMIN_PASSWORD") or secrets.token_urlsafe(12),
            "labelstudio_token": lambda: env.get("SMGT_LABELSTUDIO_TOKEN") or secrets.token_hex(20),
            "worker_secret": lambda: secrets.token_hex(16),
            "airflow_admin_password": lambda: secrets.token_urlsafe(12),
            "airflow_user_password": lambda: secrets.token_urlsafe(12),
            "airflow_viewer_password": lambda: secrets.token_urlsafe(12),
            # Airflow signs its tokens and cookies with these; kept, so tokens outlive a restart.
            "airflow_jwt_secret": lambda: signing["jwt_secret"],
            "airflow_secret_key": lambda: signing["secret_key"],
        }
        for name, make in defaults.items():
            keys.setdefault(name, make())
        config.setdefault("labelstudio_admin_email", env.get("SMGT_LABELSTUDIO_ADMIN_EMAIL") or LABELSTUDIO_ADMIN)
        # Who is in each work team: edit deployment.json and start again (README: work teams).
        try:
            config["work_team_members"] = parse_work_team_members(
                config.get("work_team_members") or env.get(WORK_TEAM_MEMBERS_ENV),
                where=f"{path}: work_team_members")
        except ValueError as exc:
            raise DeploymentError(str(exc)) from None
        # Jobs are labeled by the workforce they were created with: a state dir keeps its workforce.
        if config.setdefault("workforce", self.workforce) != self.workforce:
            raise DeploymentError(_workforce_refusal(self.state_dir, config["workforce"]))
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(config, indent=2) + "\n")
        tmp.chmod(0o600)
        os.replace(tmp, path)  # never half-written
        return config

    def _save_config(self) -> None:
        path = self.state_dir / "deployment.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.config, indent=2) + "\n")
        tmp.chmod(0o600)
        os.replace(tmp, path)

    @property
    def ports(self) -> dict[str, int]:
        return self.config["ports"]

    @property
    def s3_store(self) -> S3Store:
        keys = self.config["secrets"]
        return S3Store(f"http://127.0.0.1:{self.ports['s3']}", keys["s3_access_key"], keys["s3_secret_key"])

    @property
    def emulator_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['emulator']}"

    def env(self) -> dict[str, str]:
        """AWS environment for clients of this deployment (boto3, Airflow)."""
        return aws_env(self.emulator_url, region=self.settings.region, conn_id=self.settings.aws_conn_id,
                       s3=self.s3_store)

    def client(self, service: str) -> Any:
        import boto3
        from botocore.config import Config

        store = self.s3_store
        return boto3.session.Session().client(
            service, endpoint_url=store.endpoint_url if service == "s3" else self.emulator_url,
            region_name=self.settings.region, aws_access_key_id=store.access_key,
            aws_secret_access_key=store.secret_key,
            config=Config(retries={"mode": "standard", "max_attempts": 10}, s3={"addressing_style": "path"}))

    def worker_logins(self) -> list[dict[str, str]]:
        """The work teams' members as Label Studio logins: team, user name, e-mail, password."""
        secret = self.config["secrets"]["worker_secret"]
        return [{"team": team, "username": user, "email": worker_email(user),
                 "password": worker_password(secret, user)}
                for team, users in self.config["work_team_members"].items() for user in users]

    def airflow_signing_secrets(self) -> dict[str, str]:
        """What Airflow signs tokens and cookies with (smgt.embedded.new_signing_secrets), kept here."""
        keys = self.config["secrets"]
        return {"jwt_secret": keys["airflow_jwt_secret"], "secret_key": keys["airflow_secret_key"]}

    def airflow_passwords(self) -> dict[str, str]:
        """Airflow's users (SimpleAuthManager): admin, user (may trigger batches), viewer (read only)."""
        keys = self.config["secrets"]
        return {name: keys[f"airflow_{name}_password"] for name in ("admin", "user", "viewer")}

    # ------------------------------------------------------------------ lifecycle

    def start(self, progress: Callable[[str], None] = lambda _: None) -> LocalDeployment:
        """Start every component (on a new state dir: choose ports and secrets, upload the demo
        video); `progress` is told what is being started. Anything started is stopped again when a
        later step fails or the start is interrupted (KeyboardInterrupt)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._lock_cm = _lock(self.state_dir)
        self._lock_cm.__enter__()
        try:
            self.config = self._load_config()
            self._end_orphans()
            servers = None
            if self.with_airflow:
                # Airflow's database migration, api-server and dag-processor need no AWS endpoint:
                # they start while S3 and the emulator do; its scheduler and triggerer (tasks and
                # triggers call AWS) once the emulator is up.
                self.airflow = EmbeddedAirflow(
                    self.state_dir / "airflow", aws_env=self.env(), port=self.ports["airflow"],
                    passwords=self.airflow_passwords(), extra_env=self.airflow_env,
                    signing_secrets=self.airflow_signing_secrets())
                servers = self._servers = _Background(self.airflow.start_servers)
            for name in ("seaweedfs", "labelstudio", "emulator"):
                if name != "labelstudio" or self.workforce == "labelstudio":
                    t0 = time.monotonic()
                    progress(f"starting {name} ...")
                    self.start_component(name)
                    progress(f"  {name} is up ({time.monotonic() - t0:.0f} s)")
            if not self.config.get("demo_uploaded"):
                # Once per state dir: a later start must not re-upload (and so hide a lost object).
                progress("uploading the demo video ...")
                upload_demo_data(S3(self.client("s3")), self.settings.input_bucket, seed=self.seed)
                self.config["demo_uploaded"] = time.time()
                self._save_config()
            if self.with_airflow:
                t0 = time.monotonic()
                progress("starting Airflow (database migration, api-server, scheduler, dag-processor, triggerer) ...")
                assert self.airflow is not None and servers is not None
                servers.result()
                self.airflow.start_workers()
                self._write_pids()
                progress(f"  Airflow is up ({time.monotonic() - t0:.0f} s)")
        except BaseException:
            self.stop()
            raise
        return self

    def dead_components(self) -> dict[str, int | None]:
        """Components that exited although nobody stopped them: {name: exit status}."""
        dead: dict[str, int | None] = {}
        for name, server in (("seaweedfs", self.seaweedfs), ("labelstudio", self.labelstudio)):
            if server is not None and not server.alive:
                # kill() reaps it (its exit status) and, for SeaweedFS, ends what is left of its process
                # group and releases the store's lock, which a start again would otherwise find held.
                dead[name] = server.kill()
        if self.emulator is not None and self.emulator.poll() is not None:
            dead["emulator"] = self.emulator.returncode
        if self.airflow is not None:
            dead.update({name: proc.returncode for name, proc in self.airflow.processes.items()
                         if proc.poll() is not None})
        return dead

    def stop(self) -> None:
        """Stop every component (SIGTERM, SIGKILL after a grace period); the state dir stays."""
        if self.airflow is not None:
            # First what runs tasks and triggers: they may still call S3, GT and Label Studio while
            # they finish.
            self.airflow.stop_runners(min(self.stop_grace, AIRFLOW_STOP_GRACE_SECONDS))
            if self._servers is not None:  # a start interrupted while Airflow's servers started
                self._servers.join()
                self._servers = None
        # The rest has nothing to finish for another: stop it all at once (SeaweedFS alone took
        # 2-12 s to exit after SIGTERM in the demo).
        stops = [lambda s=server: s.stop(grace=self.stop_grace)
                 for server in (self.labelstudio, self.seaweedfs) if server is not None]
        stops += [self._stop_emulator] + ([self.airflow.stop] if self.airflow is not None else [])
        errors = []
        for stopping in [_Background(stop) for stop in stops]:
            try:
                stopping.result()
            except Exception as exc:  # the others are still waited for; the first error is raised
                errors.append(exc)
        for path in (self.state_dir / "run").glob("*.json"):
            path.unlink(missing_ok=True)
        if self._lock_cm is not None:
            self._lock_cm.__exit__(None, None, None)
            self._lock_cm = None
        if errors:
            raise errors[0]

    def __enter__(self) -> LocalDeployment:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start_component(self, name: str) -> None:
        """Start one component (again, e.g. after `kill`) and wait until it is healthy."""
        if name == "seaweedfs":
            from smgt.local.seaweedfs import SeaweedFS

            if self.seaweedfs is not None:  # the last one, dead: reaped, its lock on the store released
                self.seaweedfs.kill()
            store = self.s3_store
            self.seaweedfs = SeaweedFS(self.state_dir / "s3", s3_port=self.ports["s3"], access_key=store.access_key,
                                       secret_key=store.secret_key, log_file=self.state_dir / "logs" / "seaweedfs.log")
            self.seaweedfs.start()
        elif name == "labelstudio":
            self._start_labelstudio()
        elif name == "emulator":
            self._start_emulator()
        elif name in AIRFLOW_COMPONENTS:
            if self.airflow is None:
                raise DeploymentError("this deployment runs without Airflow")
            self.airflow.start_component(name)
        else:
            raise ValueError(f"component: {name!r} is not one of {COMPONENTS}")
        self._write_pids()

    def kill(self, name: str) -> None:
        """SIGKILL one component's process group (a crash, for restart tests)."""
        if name == "seaweedfs":
            self.seaweedfs.kill()
        elif name == "labelstudio":
            self.labelstudio.kill()
        elif name == "emulator":
            assert self.emulator is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.emulator.pid, signal.SIGKILL)
            self.emulator.wait(timeout=30)
        elif name in AIRFLOW_COMPONENTS and self.airflow is not None:
            self.airflow.kill(name)
        else:
            raise ValueError(f"component: {name!r} is not one of {COMPONENTS}")

    def restart(self, name: str, *, crash: bool = True) -> None:
        """Kill (SIGKILL when `crash`, else a clean stop) and start one component again."""
        if crash:
            self.kill(name)
        elif name == "emulator":
            self._stop_emulator()
        elif name in ("seaweedfs", "labelstudio"):
            getattr(self, name).stop(grace=self.stop_grace)
        else:
            assert self.airflow is not None
            self.airflow.kill(name, signal.SIGTERM)
        self.start_component(name)

    # ------------------------------------------------------------------ components

    def _start_labelstudio(self) -> None:
        from smgt.local.labelstudio.server import LabelStudioServer

        if self.labelstudio is not None:  # the last one, dead: reaped
            self.labelstudio.kill()
        keys = self.config["secrets"]
        self.labelstudio = LabelStudioServer(
            self.state_dir / "labelstudio", port=self.ports["labelstudio"],
            admin_email=self.config["labelstudio_admin_email"], admin_password=keys["labelstudio_admin_password"],
            api_token=keys["labelstudio_token"], log_file=self.state_dir / "logs" / "labelstudio.log")
        self.labelstudio.start()
        tokens = self.labelstudio.ensure_users([(w["email"], w["password"], w["username"])
                                                for w in self.worker_logins()])
        self.worker_tokens = dict(tokens)

    def _emulator_command(self) -> list[str]:
        command = [sys.executable, "-m", "smgt.local", "serve", "--host", "127.0.0.1",
                   "--port", str(self.ports["emulator"]), "--state-dir", str(self.state_dir / "gt"),
                   "--s3-endpoint-url", self.s3_store.endpoint_url, "--workforce", self.workforce,
                   "--task-seconds", str(self.task_seconds), "--init-seconds", str(self.init_seconds),
                   "--seed", str(self.seed)]
        if self.clock_origin is not None:
            command += ["--clock-origin", str(self.clock_origin)]
        return command

    def _start_emulator(self) -> None:
        store = self.s3_store
        env = {**{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIRFLOW"))},
               "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), os.environ.get("PYTHONPATH", "")]),
               "SMGT_LOCAL_S3_ACCESS_KEY": store.access_key, "SMGT_LOCAL_S3_SECRET_KEY": store.secret_key,
               WORK_TEAM_MEMBERS_ENV: json.dumps(self.config["work_team_members"])}
        if self.workforce == "labelstudio":
            env.update({"SMGT_LABELSTUDIO_URL": self.labelstudio.url,
                        "SMGT_LABELSTUDIO_TOKEN": self.config["secrets"]["labelstudio_token"],
                        "SMGT_LABELSTUDIO_POLL_SECONDS": str(self.labelstudio_poll_seconds)})
        log_path = self.state_dir / "logs" / "emulator.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            offset = log.tell()
            self.emulator = subprocess.Popen(self._emulator_command(), env=env, stdout=log, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.state_dir)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.emulator.poll() is not None:
                raise DeploymentError(f"the emulator exited with {self.emulator.returncode}:\n{_tail(log_path, offset)}")
            # Ready once it printed its environment: after bootstrap and after resuming jobs.
            if "# status queue:" in _tail(log_path, offset, lines=400) and _answers(self.emulator_url):
                return
            time.sleep(0.2)
        raise DeploymentError(f"the emulator did not come up within 120 s:\n{_tail(log_path, offset)}")

    def _stop_emulator(self) -> None:
        if self.emulator is None or self.emulator.poll() is not None:
            return
        os.killpg(self.emulator.pid, signal.SIGTERM)
        try:
            self.emulator.wait(timeout=self.stop_grace)
        except subprocess.TimeoutExpired:
            os.killpg(self.emulator.pid, signal.SIGKILL)
            self.emulator.wait(timeout=30)

    # ------------------------------------------------------------------ orphans

    def _pids(self) -> dict[str, int]:
        pids: dict[str, int] = {}
        for name, server in (("seaweedfs", self.seaweedfs), ("labelstudio", self.labelstudio)):
            if server is not None and server.pid is not None and server.alive:
                pids[name] = server.pid
        if self.emulator is not None and self.emulator.poll() is None:
            pids["emulator"] = self.emulator.pid
        if self.airflow is not None:
            pids.update(self.airflow.pids())
        return pids

    def _write_pids(self) -> None:
        """Record each component's process group, so a start after this supervisor died ends them."""
        run = self.state_dir / "run"
        run.mkdir(parents=True, exist_ok=True)
        for name, pid in self._pids().items():
            with contextlib.suppress(psutil.Error):
                created = psutil.Process(pid).create_time()
                (run / f"{name}.json").write_text(json.dumps({"pid": pid, "create_time": created}))

    def _end_orphans(self) -> None:
        """End the components a previous supervisor of this state dir left running (it was killed)."""
        for path in sorted((self.state_dir / "run").glob("*.json")):
            with contextlib.suppress(ValueError, OSError, psutil.Error):
                record = json.loads(path.read_text())
                proc = psutil.Process(record["pid"])
                if abs(proc.create_time() - record["create_time"]) < 0.01:  # not a reused pid
                    os.killpg(record["pid"], signal.SIGTERM)
                    try:
                        proc.wait(timeout=STOP_GRACE_SECONDS)
                    except psutil.TimeoutExpired:
                        os.killpg(record["pid"], signal.SIGKILL)
            path.unlink(missing_ok=True)


class _Background:
    """`fn()` in a daemon thread; `result()` waits for it and raises what it raised."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            fn()
        except BaseException as exc:  # handed to result()
            self._error = exc

    def join(self) -> None:
        self._thread.join(60)

    def result(self) -> None:
        while self._thread.is_alive():  # a short join, so Ctrl-C is not held up
            self._thread.join(0.2)
        if self._error is not None:
            raise self._error


def _answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/_smgt/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _tail(path: Path, offset: int, lines: int = 40) -> str:
    try:
        with open(path, "rb") as log:
            log.seek(offset)
            text = log.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
