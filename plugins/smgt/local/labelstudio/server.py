"""One Label Studio 1.23.2 server (`label-studio start`) as a managed local process, from its own venv.

    server = LabelStudioServer(data_dir, port=8080, admin_email="admin@example.com",
                               admin_password="...", api_token="...")
    server.start()                          # waits for /health and an authenticated API call
    tokens = server.ensure_users([("ann1@example.com", "pw-ann1", "Ann")])   # {email: api_token}
    ...
    server.stop()

Shell scripts run it in the foreground (one line on stdout when ready; SIGTERM/SIGINT stop Label Studio):

    python -m smgt.local.labelstudio.server serve --data-dir D --port P \\
        --admin-email E --admin-password W --token T

Label Studio runs from `.venv-labelstudio` (`scripts/bootstrap.sh --labelstudio`): its pins conflict
with our lock (label-studio-sdk needs pyjwt<2.14). This module runs from our venv and only starts
processes there. Facts below are from the 1.23.2 source (`label_studio/server.py`,
`label_studio/core/settings/base.py` and `label_studio.py`, `core/utils/params.py`) and from
/work/shared/notes/label-studio.md:

- `--internal-host 127.0.0.1` is the listen address (default 0.0.0.0); `--debug` only turns off the
  silent move to the next free port when the port is busy (`server._get_free_port`), so a busy port
  fails instead of serving elsewhere.
- The admin and its legacy API token are preset from `LABEL_STUDIO_USERNAME/_PASSWORD/_USER_TOKEN`
  when the data dir is new (`server._create_user`); the organization is created with legacy tokens
  enabled (`LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true`). A later start with another token or password
  does not change them: `start()` then fails on the authenticated check.
- Settings read the bare name too (`get_env` tries `LABEL_STUDIO_X`, `HEARTEX_X`, then `X`), so an
  inherited `HOST`, `PORT`, `DEBUG`, `USERNAME`... would change Label Studio: the process gets an
  environment built from a short allow-list plus ours, not ours on top of the caller's.
- Off: version check on PyPI (`LATEST_VERSION_CHECK`), Sentry in the server and the page
  (`SENTRY_DSN`, `FRONTEND_SENTRY_DSN`: the defaults are HumanSignal's DSNs), analytics
  (`COLLECT_ANALYTICS`: tele.labelstud.io, Google tag), converter downloads (`CONVERTER_DOWNLOAD_RESOURCES`).
  `/heidi-tips/` (asked for by the login page in a browser) fetches raw.githubusercontent.com with
  no setting to stop it: HTTP(S)_PROXY points at a closed loopback port so that, and anything else
  going through requests/botocore, fails at once without even a DNS lookup; loopback is in NO_PROXY.
- `USE_DEFAULT_BANNED_SUBNETS=false`: S3 storages with an `s3_endpoint` on 127.0.0.1 pass the SSRF
  check (`core/utils/io.validate_ip`); the check itself stays on.
- What remains on loopback: a Redis PING at import (`core/redis.py`, localhost:6379 is hard-coded) and
  reads of `user_activity:*` keys if a Redis is there; nothing is written, since REDIS_ENABLED is
  False in the Community edition.

Layout of `data_dir` (Label Studio's own, `LABEL_STUDIO_BASE_DATA_DIR`): `label_studio.sqlite3`, `media/`,
the generated Django secret key, and `server.log` (default `log_file`, appended by every start).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx
import psutil

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parents[4]
DEFAULT_VENV = REPO / ".venv-labelstudio"
SETTINGS_MODULE = "label_studio.core.settings.label_studio"
BOOTSTRAP_HINT = "run `scripts/bootstrap.sh --labelstudio` to install it"
# A closed port on loopback (discard): outbound HTTP from Label Studio is refused there at once.
DEAD_PROXY = "http://127.0.0.1:9"
# Passed through from the caller; everything else Label Studio sees is set here.
_PASSTHROUGH_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR")
# rest_framework.authtoken Token.key is max_length=40; server._create_user ignores tokens of <= 5 chars.
_TOKEN_RE = re.compile(r"[A-Za-z0-9_.-]{6,40}")
_LOG_TAIL_LINES = 40
_READY_PREFIX = "SMGT_LABELSTUDIO_USERS "

# Run with the Label Studio venv's python (Django set up on the same data dir as the server). One
# process for all users: Django start-up is ~5 s, a `label-studio reset_password` per user would pay it
# each time. Each user is its own short transaction, so the running server's SQLite writes are never
# held up by password hashing, and a crash part-way leaves nothing that a re-run does not finish.
_ENSURE_USERS_SCRIPT = r"""
import json, os, sys
import label_studio
# Label Studio's apps import as top-level packages (users, organizations), as in label_studio/server.py.
sys.path.insert(0, os.path.dirname(label_studio.__file__))
import django
django.setup()
from django.db import transaction
from rest_framework.authtoken.models import Token
from users.models import User

spec = json.load(sys.stdin)
admin = User.objects.filter(email__iexact=spec["admin_email"]).first()
if admin is None or admin.active_organization_id is None:
    sys.exit(f"admin {spec['admin_email']!r} or its organization is missing in this data dir")
org = admin.active_organization
tokens, changes = {}, []
for item in spec["users"]:
    email, password, first_name = item["email"], item["password"], item.get("first_name")
    user = User.objects.filter(email__iexact=email).first()
    created = user is None
    if created:
        user = User.objects.create_user(email=email, password=password, first_name=first_name or "",
                                        active_organization=org)
        changes.append(f"created {email}")
    # A password is set when the user is made; one a person changed later is theirs to keep.
    reset = spec.get("reset_passwords", False)
    new_password = None if created or not reset or user.check_password(password) else password
    with transaction.atomic():
        fields = []
        if new_password is not None:
            user.set_password(new_password)
            fields.append("password")
        if first_name is not None and user.first_name != first_name:
            user.first_name = first_name
            fields.append("first_name")
        if user.active_organization_id != org.id:
            user.active_organization = org
            fields.append("active_organization")
        if fields:
            user.save(update_fields=fields)
            changes.append(f"updated {email}: {', '.join(fields)}")
        if not org.has_user(user):
            org.add_user(user)
            changes.append(f"added {email} to organization {org.id}")
        token, token_created = Token.objects.get_or_create(user=user)
        if token_created:
            changes.append(f"token for {email}")
    tokens[email] = token.key
print(PREFIX + json.dumps({"tokens": tokens, "changes": changes}), flush=True)
"""


class LabelStudioError(RuntimeError):
    """Label Studio is missing, did not start, exited, or an admin command failed (message has the log tail)."""


class UserTokens(dict[str, str]):
    """`{email: api_token}` from `ensure_users`; `changes` lists what that call changed (empty: a no-op)."""

    def __init__(self, tokens: Mapping[str, str], changes: Sequence[str]) -> None:
        super().__init__(tokens)
        self.changes = list(changes)


class LabelStudioServer:
    """One `label-studio start` process on 127.0.0.1:`port`, in its own process group.

    data_dir: Label Studio's data dir (created; keeps the SQLite DB, so projects, tasks and submitted
        annotations survive stop/kill and start).
    port: 1..65535, must be free (a busy port is an error, never silently replaced).
    admin_email, admin_password, api_token: the admin made when `data_dir` is new, with this legacy API
        token (6-40 characters of [A-Za-z0-9_.-]; header `Authorization: Token <api_token>`).
    venv: the Label Studio venv (default `$LABELSTUDIO_VENV` or `<repo>/.venv-labelstudio`).
    log_file: Label Studio's stdout/stderr, appended (default `<data_dir>/server.log`).
    outbound_proxy: where Label Studio's outbound HTTP(S) goes (default a closed loopback port; a test
        can point it at a listener to see what Label Studio tries to reach).
    Raises ValueError naming the field for bad arguments.
    """

    def __init__(self, data_dir: str | Path, *, port: int, admin_email: str, admin_password: str,
                 api_token: str, venv: str | Path | None = None, log_file: str | Path | None = None,
                 outbound_proxy: str = DEAD_PROXY) -> None:
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            raise ValueError(f"port must be an int in 1..65535, got {port!r}")
        if not isinstance(admin_email, str) or "@" not in admin_email:
            raise ValueError(f"admin_email must be an email address, got {admin_email!r}")
        if not isinstance(admin_password, str) or not admin_password:
            raise ValueError("admin_password must be a non-empty string")
        if not isinstance(api_token, str) or not _TOKEN_RE.fullmatch(api_token):
            raise ValueError("api_token must be 6-40 characters of [A-Za-z0-9_.-]")
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.admin_email = admin_email
        self.admin_password = admin_password
        self.api_token = api_token
        venv = venv or os.environ.get("LABELSTUDIO_VENV") or DEFAULT_VENV
        self.venv = (REPO / venv).resolve() if not Path(venv).is_absolute() else Path(venv)
        self.log_file = Path(log_file).resolve() if log_file else self.data_dir / "server.log"
        if not re.fullmatch(r"http://127\.0\.0\.1:\d+", outbound_proxy):
            raise ValueError(f"outbound_proxy must be http://127.0.0.1:<port>, got {outbound_proxy!r}")
        self.outbound_proxy = outbound_proxy
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        self._lock = threading.Lock()

    # -- state ------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, e.g. `http://127.0.0.1:8080` (no trailing slash)."""
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        """PID of the running `label-studio` process (also its process group id), else None."""
        return self._proc.pid if self.alive else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def healthy(self, timeout: float = 2.0) -> bool:
        """True when `GET /health` answers 200 `{"status": "UP"}` within `timeout` seconds."""
        try:
            response = httpx.get(f"{self.url}/health", timeout=timeout)
            return response.status_code == 200 and response.json().get("status") == "UP"
        except (httpx.HTTPError, ValueError):
            return False

    def rss_bytes(self) -> int:
        """Resident memory of the Label Studio process group in bytes (0 when not running)."""
        if not self.alive or self._proc is None:
            return 0
        try:
            root = psutil.Process(self._proc.pid)
            return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
        except psutil.Error:
            return 0

    def executable(self, name: str = "label-studio") -> Path:
        """A program of the Label Studio venv; LabelStudioError when the venv is not installed."""
        path = self.venv / "bin" / name
        if not path.exists():
            raise LabelStudioError(f"{path} not found: Label Studio's venv is missing ({BOOTSTRAP_HINT})")
        return path

    def environment(self) -> dict[str, str]:
        """The whole environment of the Label Studio process (see the module docstring for why each)."""
        env = {key: os.environ[key] for key in _PASSTHROUGH_ENV if key in os.environ}
        env.update({
            "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
            "LABEL_STUDIO_BASE_DATA_DIR": str(self.data_dir),
            "LABEL_STUDIO_USERNAME": self.admin_email,
            "LABEL_STUDIO_PASSWORD": self.admin_password,
            "LABEL_STUDIO_USER_TOKEN": self.api_token,
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
            "LATEST_VERSION_CHECK": "false",
            "SENTRY_DSN": "",
            "FRONTEND_SENTRY_DSN": "",
            "COLLECT_ANALYTICS": "false",
            "CONVERTER_DOWNLOAD_RESOURCES": "false",
            "USE_DEFAULT_BANNED_SUBNETS": "false",
            **{name: self.outbound_proxy for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")},
            "NO_PROXY": "127.0.0.1,localhost,::1", "no_proxy": "127.0.0.1,localhost,::1",
            "PYTHONUNBUFFERED": "1",
        })
        return env

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self, timeout: float = 600.0) -> LabelStudioServer:
        """Start Label Studio and wait until `/health` is UP and the admin's token is accepted.

        First start of a data dir runs the migrations (~30-40 s here on an idle machine, over 3
        minutes on a busy one: hence the generous timeout; a process that exits fails at once); a
        restart takes ~5-10 s.
        Raises LabelStudioError (with the log tail) when the venv is missing, the port is busy, the
        process exits, the token is refused, or `timeout` seconds pass (then the process is killed).
        """
        with self._lock:
            if self.alive:
                raise LabelStudioError(f"Label Studio is already running (pid {self.pid}) on {self.url}")
            program = self.executable()
            busy = _bind_error(self.port)
            if busy is not None:
                raise LabelStudioError(f"port {self.port} on {HOST} is not free: {busy}")
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            argv = [str(program), "start", "--no-browser", "--debug", "--internal-host", HOST,
                    "--port", str(self.port), "--data-dir", str(self.data_dir)]
            with open(self.log_file, "ab") as out:
                self._log_offset = out.tell()
                out.write(f"\n=== smgt: starting {' '.join(argv)}\n".encode())
                out.flush()
                self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                              env=self.environment(), cwd=self.data_dir,
                                              start_new_session=True)  # own group: stop() ends exactly its tree
        try:
            self._wait_ready(time.monotonic() + timeout, timeout)
        except BaseException:
            self.kill()
            raise
        return self

    def stop(self, grace: float = 15.0) -> int | None:
        """SIGTERM to the process group, SIGKILL after `grace` seconds; returns the exit code (None if not started)."""
        if self._proc is None:
            return None
        if self._proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self._proc.wait(grace)
            except subprocess.TimeoutExpired:
                log.warning("Label Studio pid %s ignored SIGTERM for %.0f s; killing it", self._proc.pid, grace)
        return self.kill()

    def kill(self) -> int | None:
        """SIGKILL to the process group (a crash, as far as Label Studio can tell); returns the exit code."""
        if self._proc is None:
            return None
        if self._proc.poll() is None:  # never signal a group whose leader was reaped: the id may be reused
            self._signal_group(signal.SIGKILL)
        return self._proc.wait()

    def __enter__(self) -> LabelStudioServer:
        return self.start() if not self.alive else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"LabelStudioServer({self.url}, data_dir={str(self.data_dir)!r}, pid={self.pid})"

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last `lines` lines that the current (or last) start wrote to `log_file`."""
        try:
            with open(self.log_file, "rb") as fh:
                fh.seek(self._log_offset)
                text = fh.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # -- users ------------------------------------------------------------------------------------

    def ensure_users(self, users: Sequence[tuple[str, str] | tuple[str, str, str]],
                     timeout: float = 300.0, *, reset_passwords: bool = False) -> UserTokens:
        """Make each `(email, password[, first_name])` a user who can log in to the UI with that email and
        password, is a member of the admin's organization (so sees its projects, and it is their active
        one), and has a legacy API token. Returns `{email: api_token}` (a `UserTokens`, whose `changes`
        is empty when nothing had to change: a second call with the same list is a no-op). The password
        is set when a user is made; `reset_passwords=True` also resets the ones people changed since.

        Runs one Django process on `data_dir` with the Label Studio venv's python (~6 s plus ~0.5 s of
        password hashing per user); works while the server runs. The data dir must have been started
        once (migrated). Raises ValueError naming the bad entry, LabelStudioError when the script fails.
        """
        entries = []
        seen: set[str] = set()
        for i, user in enumerate(users):
            if not isinstance(user, tuple | list) or len(user) not in (2, 3):
                raise ValueError(f"users[{i}] must be (email, password) or (email, password, first_name)")
            email, password = user[0], user[1]
            first_name = user[2] if len(user) == 3 else None
            if not isinstance(email, str) or "@" not in email:
                raise ValueError(f"users[{i}].email must be an email address, got {email!r}")
            if email.lower() in seen:
                raise ValueError(f"users[{i}].email {email!r} is listed twice")
            if not isinstance(password, str) or not password:
                raise ValueError(f"users[{i}].password must be a non-empty string")
            if first_name is not None and not isinstance(first_name, str):
                raise ValueError(f"users[{i}].first_name must be a string")
            seen.add(email.lower())
            entries.append({"email": email, "password": password, "first_name": first_name})
        if not (self.data_dir / "label_studio.sqlite3").exists():
            raise LabelStudioError(f"{self.data_dir} has no Label Studio database yet: start() it once first")
        python = self.executable("python")
        script = f"PREFIX = {_READY_PREFIX!r}\n{_ENSURE_USERS_SCRIPT}"
        spec = json.dumps({"admin_email": self.admin_email, "users": entries, "reset_passwords": reset_passwords})
        try:
            done = subprocess.run([str(python), "-c", script], input=spec.encode(), capture_output=True,
                                  env=self.environment(), cwd=self.data_dir, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise LabelStudioError(f"ensure_users took more than {timeout:.0f} s") from exc
        stdout = done.stdout.decode("utf-8", "replace")
        stderr = done.stderr.decode("utf-8", "replace")
        lines = [line for line in stdout.splitlines() if line.startswith(_READY_PREFIX)]
        if done.returncode != 0 or not lines:
            tail = "\n".join((stdout + stderr).splitlines()[-_LOG_TAIL_LINES:])
            raise LabelStudioError(f"ensure_users failed (exit {done.returncode}):\n{tail}")
        result = json.loads(lines[-1][len(_READY_PREFIX):])
        for change in result["changes"]:
            log.info("Label Studio %s: %s", self.url, change)
        return UserTokens(result["tokens"], result["changes"])

    # -- internals --------------------------------------------------------------------------------

    def _wait_ready(self, deadline: float, timeout: float) -> None:
        headers = {"Authorization": f"Token {self.api_token}"}
        while True:
            if self._proc is not None and self._proc.poll() is not None:
                raise LabelStudioError(f"Label Studio exited with code {self._proc.returncode} while starting "
                                       f"(log {self.log_file}):\n{self.log_tail()}")
            if self.healthy(timeout=2.0):
                try:
                    who = httpx.get(f"{self.url}/api/current-user/whoami", headers=headers, timeout=5.0)
                except httpx.HTTPError:
                    who = None
                if who is not None and who.status_code == 200:
                    email = who.json().get("email", "")
                    if email.lower() != self.admin_email.lower():
                        raise LabelStudioError(f"token belongs to {email!r}, not admin {self.admin_email!r}")
                    return
                if who is not None and who.status_code in (401, 403):
                    raise LabelStudioError(
                        f"Label Studio at {self.url} refused the admin token ({who.status_code} {who.text[:200]}): "
                        f"{self.data_dir} was probably initialised with another admin or token")
            if time.monotonic() > deadline:
                raise LabelStudioError(f"Label Studio not ready on {self.url} after {timeout:.0f} s "
                                       f"(log {self.log_file}):\n{self.log_tail()}")
            time.sleep(0.25)

    def _signal_group(self, sig: signal.Signals) -> None:
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.killpg(self._proc.pid, sig)


def _bind_error(port: int) -> OSError | None:
    """None when `port` can be bound on 127.0.0.1 now, else the error."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            return exc
    return None


# -- CLI --------------------------------------------------------------------------------------------

def serve(args: argparse.Namespace) -> int:
    """Run Label Studio in the foreground until SIGTERM/SIGINT/SIGHUP (see smgt.local.foreground)."""
    from ..foreground import run_until_signal

    server = LabelStudioServer(args.data_dir, port=args.port, admin_email=args.admin_email,
                               admin_password=args.admin_password, api_token=args.token,
                               venv=args.venv, log_file=args.log_file)
    return run_until_signal(
        server, name="labelstudio", start_timeout=args.start_timeout, stop_grace=args.stop_grace,
        start_errors=(LabelStudioError,),
        ready=lambda: f"labelstudio ready url={server.url} pid={server.pid} data_dir={server.data_dir}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m smgt.local.labelstudio.server")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("serve", help="run Label Studio in the foreground on 127.0.0.1")
    run.add_argument("--data-dir", required=True)
    run.add_argument("--port", type=int, required=True)
    # Secrets from the environment keep them out of `ps`; the flags still work.
    run.add_argument("--admin-email", default=os.environ.get("SMGT_LABELSTUDIO_ADMIN_EMAIL"))
    run.add_argument("--admin-password", default=os.environ.get("SMGT_LABELSTUDIO_ADMIN_PASSWORD"),
                     help="default: SMGT_LABELSTUDIO_ADMIN_PASSWORD")
    run.add_argument("--token", default=os.environ.get("SMGT_LABELSTUDIO_TOKEN"),
                     help="the admin's API token, 6-40 chars (default: SMGT_LABELSTUDIO_TOKEN)")
    run.add_argument("--venv", default=None, help="Label Studio's venv (default: <repo>/.venv-labelstudio)")
    run.add_argument("--log-file", default=None, help="default: <data-dir>/server.log")
    run.add_argument("--start-timeout", type=float, default=180.0, help="seconds")
    run.add_argument("--stop-grace", type=float, default=15.0, help="seconds before SIGKILL")
    args = parser.parse_args(argv)
    try:
        return serve(args)
    except ValueError as exc:
        parser.error(str(exc))
    return 2


if __name__ == "__main__":
    sys.exit(main())
