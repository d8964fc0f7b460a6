"""Label Studio 1.23.2 as a real local component: LabelStudioServer and LabelStudioClient against one real server.

NEEDS `.venv-labelstudio` (`scripts/bootstrap.sh --labelstudio`): every test here uses the `labelstudio_venv`
fixture, which fails (never skips) when it is missing. One server per module (first start ~40-60 s: migrations),
in a tmp data dir on a free 127.0.0.1 port. Tests run in file order and share it: later ones restart it.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
from PIL import Image

from smgt.local.labelstudio.client import LabelStudioApiError, LabelStudioClient
from smgt.local.labelstudio.server import DEFAULT_VENV, LabelStudioError, LabelStudioServer

ADMIN = ("admin@example.com", "admin-pass-1", "tok_admin_0123456789abcdef")
MEMBERS = [("ann1@example.com", "pw-ann-1", "Ann"), ("ann2@example.com", "pw-ann-2", "Bo"),
           ("ann3@example.com", "pw-ann-3")]
RECT_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="box" toName="image"><Label value="Car"/><Label value="Truck"/></RectangleLabels>
</View>"""
FRAMES_CONFIG = """<View>
  <Image name="frames" valueList="$frames"/>
  <PolygonLabels name="poly" toName="frames"><Label value="Car"/></PolygonLabels>
</View>"""

pytestmark = pytest.mark.usefixtures("labelstudio_venv")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ProxyTrap:
    """A loopback listener that Label Studio gets as its HTTP(S)_PROXY: records the request line of
    every outbound HTTP attempt (e.g. `CONNECT raw.githubusercontent.com:443 HTTP/1.1`) and closes."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.requests: list[str] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    self.requests.append(conn.recv(4096).decode("latin-1").split("\r\n", 1)[0])
                except OSError:
                    self.requests.append("<no request line>")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def labelstudio_venv() -> Path:
    if not (DEFAULT_VENV / "bin" / "label-studio").exists():
        pytest.fail(f"{DEFAULT_VENV} is missing: run `scripts/bootstrap.sh --labelstudio` to install Label Studio "
                    "(these tests need a real Label Studio)")
    return DEFAULT_VENV


@pytest.fixture(scope="module")
def trap() -> Iterator[ProxyTrap]:
    trap = ProxyTrap()
    yield trap
    trap.close()


@pytest.fixture(scope="module")
def server(labelstudio_venv: Path, tmp_path_factory: pytest.TempPathFactory, trap: ProxyTrap) -> Iterator[LabelStudioServer]:
    ls = LabelStudioServer(tmp_path_factory.mktemp("labelstudio"), port=_free_port(), admin_email=ADMIN[0],
                           admin_password=ADMIN[1], api_token=ADMIN[2], outbound_proxy=trap.url)
    started = time.monotonic()
    ls.start()
    print(f"Label Studio first start: {time.monotonic() - started:.1f} s")
    yield ls
    ls.stop()
    assert not ls.alive


@pytest.fixture(scope="module")
def admin(server: LabelStudioServer) -> Iterator[LabelStudioClient]:
    with LabelStudioClient(server.url, ADMIN[2], retry_seconds=90) as client:
        yield client


@pytest.fixture(scope="module")
def tokens(server: LabelStudioServer) -> dict[str, str]:
    started = time.monotonic()
    made = server.ensure_users(MEMBERS)
    print(f"ensure_users creating {len(MEMBERS)} users: {time.monotonic() - started:.1f} s")
    return made


@pytest.fixture(scope="module")
def project(admin: LabelStudioClient) -> dict[str, Any]:
    """A project with two imported tasks; the first carries a prediction."""
    created = admin.create_project("Label Studio test", label_config=RECT_CONFIG, description="two cars",
                                   expert_instruction="<p>Box every car</p>", show_instruction=True,
                                   maximum_annotations=2)
    prediction = {"model_version": "pre", "result": [
        {"id": "p1", "from_name": "box", "to_name": "image", "type": "rectanglelabels",
         "value": {"x": 10, "y": 20, "width": 30, "height": 40, "rotation": 0, "rectanglelabels": ["Car"]}}]}
    task_ids = admin.import_tasks(created["id"], [
        {"data": {"image": "http://127.0.0.1:1/a.jpg"}, "predictions": [prediction]},
        {"data": {"image": "http://127.0.0.1:1/b.jpg"}}])
    return {**created, "task_ids": task_ids, "prediction": prediction}


def _login(url: str, email: str, password: str) -> requests.Session:
    """Log in through Label Studio's real login form (CSRF cookie + form post), as a browser does."""
    session = requests.Session()
    page = session.get(f"{url}/user/login/", timeout=30)
    page.raise_for_status()
    csrf = session.cookies.get("csrftoken")
    assert csrf, "the login page sets a CSRF cookie"
    session.post(f"{url}/user/login/", data={"email": email, "password": password, "csrfmiddlewaretoken": csrf},
                 timeout=30, allow_redirects=False)
    return session


def _whoami(url: str, session: requests.Session) -> str | None:
    response = session.get(f"{url}/api/current-user/whoami", timeout=30)
    return response.json()["email"] if response.status_code == 200 else None


# -- arguments and environment (no server needed beyond the venv check) ----------------------------

def test_bad_arguments_name_the_field(tmp_path: Path) -> None:
    good = {"port": 8080, "admin_email": ADMIN[0], "admin_password": ADMIN[1], "api_token": ADMIN[2]}
    for field, value in (("port", 0), ("port", "8080"), ("admin_email", "admin"), ("admin_password", ""),
                         ("api_token", "short"), ("api_token", "has space inside"),
                         ("outbound_proxy", "http://10.0.0.1:3128")):
        with pytest.raises(ValueError, match=field):
            LabelStudioServer(tmp_path, **{**good, field: value})
    with pytest.raises(ValueError, match="url"):
        LabelStudioClient("127.0.0.1:8080", "t")
    with pytest.raises(ValueError, match=r"tasks\[1\]\.data"):
        LabelStudioClient("http://127.0.0.1:1", "t", retry_seconds=0).import_tasks(1, [{"data": {}}, {"image": "x"}])


def test_missing_venv_and_busy_port_fail_clearly(tmp_path: Path) -> None:
    missing = LabelStudioServer(tmp_path / "d", port=_free_port(), admin_email=ADMIN[0], admin_password=ADMIN[1],
                                api_token=ADMIN[2], venv=tmp_path / "no-venv")
    with pytest.raises(LabelStudioError, match=r"scripts/bootstrap.sh --labelstudio"):
        missing.start()
    with socket.create_server(("127.0.0.1", 0)) as taken:
        busy = LabelStudioServer(tmp_path / "d", port=taken.getsockname()[1], admin_email=ADMIN[0],
                                 admin_password=ADMIN[1], api_token=ADMIN[2])
        with pytest.raises(LabelStudioError, match="not free"):
            busy.start()
    assert not busy.alive


def test_environment_is_offline_and_not_inherited(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOST", "http://example.invalid")  # Label Studio would read this bare name
    monkeypatch.setenv("LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK", "true")
    env = LabelStudioServer(tmp_path, port=8080, admin_email=ADMIN[0], admin_password=ADMIN[1],
                            api_token=ADMIN[2]).environment()
    assert "HOST" not in env and "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK" not in env
    assert env["LATEST_VERSION_CHECK"] == "false" and env["COLLECT_ANALYTICS"] == "false"
    assert env["SENTRY_DSN"] == "" and env["FRONTEND_SENTRY_DSN"] == ""
    assert env["HTTPS_PROXY"].startswith("http://127.0.0.1:") and "127.0.0.1" in env["NO_PROXY"]
    assert env["LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN"] == "true"


# -- the running server ----------------------------------------------------------------------------

def test_health_token_and_loopback_only(server: LabelStudioServer, admin: LabelStudioClient) -> None:
    assert server.alive and server.healthy() and admin.health()
    me = admin.current_user()
    assert me["email"] == ADMIN[0]
    listening = {c.laddr for c in psutil.Process(server.pid).net_connections("inet") if c.status == "LISTEN"}
    assert listening == {("127.0.0.1", server.port)}
    with pytest.raises(LabelStudioApiError) as err:
        admin.with_token("wrong-token-123").current_user()
    assert err.value.status_code == 401 and "/api/current-user/whoami" in str(err.value)


def test_outbound_http_goes_only_to_the_trap(server: LabelStudioServer, trap: ProxyTrap) -> None:
    # /heidi-tips/ makes Label Studio fetch raw.githubusercontent.com (no setting turns it off): it must
    # go to the proxy we gave it, which refuses, and nowhere else.
    response = requests.get(f"{server.url}/heidi-tips/", timeout=30)
    assert response.status_code == 404
    assert any("raw.githubusercontent.com" in line for line in trap.requests), trap.requests


def test_ensure_users_login_form_tokens_and_noop(server: LabelStudioServer, admin: LabelStudioClient,
                                                 tokens: dict[str, str]) -> None:
    assert sorted(tokens) == sorted(m[0] for m in MEMBERS) and len(set(tokens.values())) == len(MEMBERS)
    for email, password, *_ in MEMBERS:
        assert _whoami(server.url, _login(server.url, email, password)) == email
        with admin.with_token(tokens[email]) as member:
            me = member.current_user()
            assert me["email"] == email and me["active_organization"] == admin.current_user()["active_organization"]
    assert _whoami(server.url, _login(server.url, MEMBERS[0][0], "not-the-password")) is None
    users = {u["email"]: u for u in admin.list_users()}
    assert users[MEMBERS[0][0]]["first_name"] == "Ann"

    started = time.monotonic()
    again = server.ensure_users(MEMBERS)
    print(f"ensure_users no-op for {len(MEMBERS)} users: {time.monotonic() - started:.1f} s")
    assert again == tokens and again.changes == []
    assert {u["email"]: u["id"] for u in admin.list_users()} == {e: u["id"] for e, u in users.items()}
    with pytest.raises(ValueError, match=r"users\[1\]\.email"):
        server.ensure_users([MEMBERS[0], (MEMBERS[0][0].upper(), "x")])


def test_project_tasks_and_member_annotation(server: LabelStudioServer, admin: LabelStudioClient,
                                             tokens: dict[str, str], project: dict[str, Any]) -> None:
    assert admin.validate_label_config(RECT_CONFIG) == []
    errors = admin.validate_label_config('<View><Image name="image"/></View>')
    assert errors and "value" in errors[0]
    assert admin.find_project("Label Studio test")["id"] == project["id"]
    assert admin.find_project("Label Studio") is None  # exact title only
    assert admin.update_project(project["id"], description="updated")["description"] == "updated"
    with pytest.raises(LabelStudioApiError, match="title") as err:
        admin.create_project("ab")
    assert err.value.status_code == 400 and "/api/projects/" in str(err.value)

    first, second = project["task_ids"]
    member_id = {u["email"]: u["id"] for u in admin.list_users()}
    ann1 = admin.with_token(tokens[MEMBERS[0][0]])
    ann2 = admin.with_token(tokens[MEMBERS[1][0]])
    assert project["id"] in [p["id"] for p in ann1.list_projects()]  # members see the admin's projects
    result = [{"id": "r1", "from_name": "box", "to_name": "image", "type": "rectanglelabels",
               "original_width": 640, "original_height": 480, "image_rotation": 0,
               "value": {"x": 11, "y": 21, "width": 30, "height": 40, "rotation": 0, "rectanglelabels": ["Truck"]}}]
    made = ann1.create_annotation(first, result, lead_time=12.5)
    skipped = ann2.create_annotation(first, [], was_cancelled=True, lead_time=2.0)

    tasks = {t["id"]: t for t in admin.list_tasks(project["id"], page_size=1)}  # two pages
    assert sorted(tasks) == [first, second]
    assert tasks[first]["predictions"][0]["result"] == project["prediction"]["result"]
    by_id = {a["id"]: a for a in tasks[first]["annotations"]}
    assert by_id[made["id"]]["completed_by"] == member_id[MEMBERS[0][0]]
    assert by_id[made["id"]]["result"] == result and by_id[made["id"]]["lead_time"] == 12.5
    assert by_id[made["id"]]["was_cancelled"] is False and by_id[made["id"]]["created_at"]
    assert by_id[skipped["id"]]["was_cancelled"] is True
    assert by_id[skipped["id"]]["completed_by"] == member_id[MEMBERS[1][0]]
    assert tasks[second]["annotations"] == []
    assert [a["id"] for a in admin.task_annotations(first)] == [made["id"]]  # LS leaves skips out here
    assert admin.get_annotation(made["id"])["completed_by"] == member_id[MEMBERS[0][0]]
    # The task detail nests the user instead (see LabelStudioClient.get_task).
    detail = {a["id"]: a for a in admin.get_task(first)["annotations"]}
    assert detail[made["id"]]["completed_by"]["email"] == MEMBERS[0][0]
    assert detail[skipped["id"]]["was_cancelled"] is True
    counters = admin.get_project(project["id"])
    assert counters["task_number"] == 2 and counters["skipped_annotations_number"] == 1


def test_restart_keeps_projects_tasks_and_annotations(server: LabelStudioServer, admin: LabelStudioClient,
                                                      tokens: dict[str, str], project: dict[str, Any]) -> None:
    before = admin.list_tasks(project["id"])
    assert server.stop() is not None and not server.alive and not server.healthy()
    started = time.monotonic()
    server.start()
    print(f"Label Studio restart: {time.monotonic() - started:.1f} s, RSS {server.rss_bytes() / 2**20:.0f} MiB")
    assert admin.get_project(project["id"])["title"] == "Label Studio test"
    after = admin.list_tasks(project["id"])
    assert [(t["id"], [a["id"] for a in t["annotations"]]) for t in after] == \
           [(t["id"], [a["id"] for a in t["annotations"]]) for t in before]
    assert server.ensure_users(MEMBERS).changes == []  # users, passwords and tokens survived too


def test_kill9_keeps_submitted_annotations(server: LabelStudioServer, admin: LabelStudioClient,
                                           tokens: dict[str, str], project: dict[str, Any]) -> None:
    second = project["task_ids"][1]
    made = admin.with_token(tokens[MEMBERS[2][0]]).create_annotation(second, [], lead_time=1.0)
    pid = server.pid
    assert server.kill() == -9 and not psutil.pid_exists(pid)
    server.start()
    assert [a["id"] for a in admin.get_task(second)["annotations"]] == [made["id"]]


def test_client_rides_out_a_restart(server: LabelStudioServer, admin: LabelStudioClient,
                                    tokens: dict[str, str], project: dict[str, Any]) -> None:
    first = project["task_ids"][0]
    before = len(admin.get_task(first)["annotations"])
    server.stop()
    outcomes: dict[str, Any] = {}

    def call(name: str, fn: Any) -> None:
        try:
            outcomes[name] = fn()
        except Exception as exc:  # surfaced by the asserts below
            outcomes[name] = exc

    ann3 = admin.with_token(tokens[MEMBERS[2][0]])
    calls = [threading.Thread(target=call, args=("get", lambda: admin.get_project(project["id"])["id"])),
             threading.Thread(target=call, args=("post", lambda: ann3.create_annotation(first, [], lead_time=3.0)))]
    for thread in calls:
        thread.start()
    time.sleep(2)  # both are now retrying against a closed port
    assert all(thread.is_alive() for thread in calls)
    server.start()
    for thread in calls:
        thread.join(90)
    assert outcomes["get"] == project["id"]
    assert isinstance(outcomes["post"], dict), outcomes["post"]
    assert len(admin.get_task(first)["annotations"]) == before + 1  # posted once, not twice
    down = LabelStudioClient(f"http://127.0.0.1:{_free_port()}", ADMIN[2], retry_seconds=0.5)
    with pytest.raises(LabelStudioApiError, match="ConnectError"):
        down.current_user()


# -- media from S3 ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def s3_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """SeaweedFS (the local deployments' S3) when smgt.local.seaweedfs is there; else moto's server
    (ThreadedMotoServer), which serves S3 over real HTTP just as well for this."""
    key, secret = "LSTESTKEY", "LSTESTSECRET"
    if importlib.util.find_spec("smgt.local.seaweedfs") is not None:
        from smgt.local.seaweedfs import SeaweedFS

        store = SeaweedFS(tmp_path_factory.mktemp("seaweed"), s3_port=_free_port(), access_key=key, secret_key=secret)
        store.start()
        try:
            yield {"endpoint": store.endpoint_url, "key": key, "secret": secret, "client": store.client()}
        finally:
            store.stop()
    else:
        import boto3
        from moto.server import ThreadedMotoServer

        port = _free_port()
        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
        moto.start()
        try:
            endpoint = f"http://127.0.0.1:{port}"
            client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=key,
                                  aws_secret_access_key=secret)
            yield {"endpoint": endpoint, "key": key, "secret": secret, "client": client}
        finally:
            moto.stop()


def _jpeg(color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(buf, "JPEG")
    return buf.getvalue()


def test_s3_image_and_frame_list_are_served_by_label_studio(server: LabelStudioServer, admin: LabelStudioClient,
                                                            s3_store: dict[str, Any]) -> None:
    s3 = s3_store["client"]
    s3.create_bucket(Bucket="ls-media")
    frames = {f"seq/{n:06d}.jpg": _jpeg((40 * n, 10, 10)) for n in range(1, 4)}
    for key, body in frames.items():
        s3.put_object(Bucket="ls-media", Key=key, Body=body, ContentType="image/jpeg")
    uris = [f"s3://ls-media/{key}" for key in frames]

    single = admin.create_project("S3 image", label_config=RECT_CONFIG)
    multi = admin.create_project("S3 frames", label_config=FRAMES_CONFIG)
    for proj in (single, multi):
        storage = admin.create_s3_import_storage(proj["id"], bucket="ls-media", prefix="seq/",
                                                 s3_endpoint=s3_store["endpoint"], access_key_id=s3_store["key"],
                                                 secret_access_key=s3_store["secret"])
        assert storage["presign"] is False and "aws_secret_access_key" not in storage
        assert [s["id"] for s in admin.list_s3_import_storages(proj["id"])] == [storage["id"]]
    [image_task] = admin.import_tasks(single["id"], [{"data": {"image": uris[0]}}])
    [frames_task] = admin.import_tasks(multi["id"], [{"data": {"frames": uris}}])

    def resolved(task_id: int, uri: str) -> str:
        return f"/tasks/{task_id}/resolve/?fileuri={base64.urlsafe_b64encode(uri.encode()).decode()}"

    # Label Studio rewrites every s3:// URI for which the project has a storage, inside a list too.
    image_url = admin.get_task(image_task)["data"]["image"]
    frame_urls = admin.get_task(frames_task)["data"]["frames"]
    assert image_url == resolved(image_task, uris[0])
    assert frame_urls == [resolved(frames_task, uri) for uri in uris]
    assert [t["data"]["frames"] for t in admin.list_tasks(multi["id"])] == [frame_urls]

    browser = _login(server.url, ADMIN[0], ADMIN[1])
    got = browser.get(server.url + image_url, timeout=30)
    assert got.status_code == 200 and got.headers["Content-Type"] == "image/jpeg" and got.content == frames["seq/000001.jpg"]
    for url, body in zip(frame_urls, frames.values(), strict=True):
        got = browser.get(server.url + url, timeout=30)
        assert got.status_code == 200 and got.content == body
    ranged = browser.get(server.url + frame_urls[1], headers={"Range": "bytes=0-9"}, timeout=30)
    assert ranged.status_code == 206 and ranged.content == frames["seq/000002.jpg"][:10]
    anonymous = requests.get(server.url + image_url, timeout=30, allow_redirects=False)
    assert anonymous.status_code in (302, 401, 403) and anonymous.content != frames["seq/000001.jpg"]
    assert re.fullmatch(r"/tasks/\d+/resolve/\?fileuri=[A-Za-z0-9_=-]+", frame_urls[0])


def test_no_outbound_attempt_but_heidi_tips(trap: ProxyTrap) -> None:
    """After everything above (starts, restarts, logins, S3 via 127.0.0.1): Label Studio tried no
    outbound HTTP other than the /heidi-tips/ fetch we provoked (no PyPI check, Sentry, telemetry)."""
    assert all("raw.githubusercontent.com" in line for line in trap.requests), trap.requests


def test_serve_cli_prints_ready_and_stops_on_sigterm(server: LabelStudioServer, project: dict[str, Any]) -> None:
    """`python -m smgt.local.labelstudio.server serve` on the same data dir (the module's server stopped
    meanwhile): one ready line, the data is there, SIGTERM stops Label Studio and the wrapper exits 0."""
    server.stop()
    argv = [sys.executable, "-m", "smgt.local.labelstudio.server", "serve", "--data-dir", str(server.data_dir),
            "--port", str(server.port), "--admin-email", ADMIN[0], "--admin-password", ADMIN[1], "--token", ADMIN[2]]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "plugins")}
    cli = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = cli.stdout.readline()  # blocks until ready (or the wrapper exits)
        match = re.fullmatch(r"labelstudio ready url=(\S+) pid=(\d+) data_dir=.*\n", line)
        assert match, (line, cli.stderr.read() if cli.poll() is not None else "")
        assert match[1] == server.url
        with LabelStudioClient(server.url, ADMIN[2]) as client:
            assert client.get_project(project["id"])["title"] == "Label Studio test"
        cli.send_signal(signal.SIGTERM)
        assert cli.wait(30) == 0
        assert not psutil.pid_exists(int(match[2])) and not server.healthy()
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    server.start()  # the module's teardown stops it again
