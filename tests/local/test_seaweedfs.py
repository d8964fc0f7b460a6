"""SeaweedFS as the local S3 (`smgt.local.seaweedfs`): real `weed mini` processes on free ports in tmp dirs."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import psutil
import pytest
import requests
from botocore.exceptions import ClientError

from smgt.local import seaweedfs
from smgt.local.seaweedfs import SeaweedFS, SeaweedFSError

ROOT = Path(__file__).resolve().parents[2]
KEYS = {"access_key": "smgt-test", "secret_key": "smgt-test-secret"}
MiB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def volume_bytes(store: SeaweedFS) -> int:
    """Bytes in the store's volume files (where object data goes; metadata lives in the filer's db)."""
    return sum(p.stat().st_size for p in (store.data_dir / "store").glob("*.dat"))


def code(err: pytest.ExceptionInfo[ClientError]) -> str:
    return err.value.response["Error"]["Code"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    sw = SeaweedFS(tmp_path_factory.mktemp("seaweed"), s3_port=free_port(), **KEYS)
    sw.start()
    sw.ensure_buckets(["smgt-test"])
    yield sw
    sw.kill()  # the data is thrown away; the SIGTERM path has its own test


@pytest.fixture
def fresh(tmp_path):
    """A store of the test's own, killed at the end whatever happens."""
    sw = SeaweedFS(tmp_path / "data", s3_port=free_port(), **KEYS)
    yield sw
    sw.kill()


def test_listens_only_on_its_explicit_loopback_ports(store):
    listening = {(c.laddr.ip, c.laddr.port) for c in psutil.Process(store.pid).net_connections("tcp")
                 if c.status == psutil.CONN_LISTEN}
    assert listening == {("127.0.0.1", port) for port in store.ports.values()}
    assert len(store.ports) == 10 and store.ports["admin_grpc"] == store.ports["admin"] + 10000


def test_anonymous_requests_are_refused(store):
    s3 = store.client()
    s3.put_object(Bucket="smgt-test", Key="anon/visible.txt", Body=b"secret")
    base = store.endpoint_url
    assert requests.get(f"{base}/", timeout=5).status_code == 403
    assert requests.get(f"{base}/smgt-test/anon/visible.txt", timeout=5).status_code == 403
    assert requests.put(f"{base}/smgt-test/anon/new.txt", data=b"x", timeout=5).status_code == 403
    with pytest.raises(ClientError) as err:
        s3.head_object(Bucket="smgt-test", Key="anon/new.txt")
    assert code(err) == "404"
    wrong = store.client(aws_secret_access_key="not-the-secret")
    with pytest.raises(ClientError) as err:
        wrong.list_objects_v2(Bucket="smgt-test")
    assert code(err) == "SignatureDoesNotMatch"


def test_signed_crud_and_prefix_listing(store):
    s3 = store.client()
    for key in ("crud/a/1.json", "crud/a/2.json", "crud/b/1.json"):
        s3.put_object(Bucket="smgt-test", Key=key, Body=key.encode(), ContentType="application/json")
    got = s3.get_object(Bucket="smgt-test", Key="crud/a/2.json")
    assert got["Body"].read() == b"crud/a/2.json" and got["ContentType"] == "application/json"
    listed = s3.list_objects_v2(Bucket="smgt-test", Prefix="crud/a/")
    assert [o["Key"] for o in listed["Contents"]] == ["crud/a/1.json", "crud/a/2.json"]
    folders = s3.list_objects_v2(Bucket="smgt-test", Prefix="crud/", Delimiter="/")["CommonPrefixes"]
    assert [p["Prefix"] for p in folders] == ["crud/a/", "crud/b/"]
    s3.put_object(Bucket="smgt-test", Key="crud/a/1.json", Body=b"v2")
    assert s3.get_object(Bucket="smgt-test", Key="crud/a/1.json")["Body"].read() == b"v2"
    s3.delete_object(Bucket="smgt-test", Key="crud/a/1.json")
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket="smgt-test", Key="crud/a/1.json")
    assert code(err) == "NoSuchKey"
    with pytest.raises(ClientError) as err:  # AWS semantics, not SeaweedFS's defaults
        s3.put_object(Bucket="smgt-missing", Key="k", Body=b"x")
    assert code(err) == "NoSuchBucket"
    with pytest.raises(ClientError) as err:
        s3.delete_bucket(Bucket="smgt-test")
    assert code(err) == "BucketNotEmpty"
    store.ensure_buckets(["smgt-test", "smgt-other"])  # idempotent
    assert {"smgt-test", "smgt-other"} <= {b["Name"] for b in s3.list_buckets()["Buckets"]}


def test_multipart_upload_and_presigned_get(store):
    s3 = store.client()
    parts = [os.urandom(5 * MiB), os.urandom(1000)]  # 5 MiB: S3's minimum for all but the last part
    upload = s3.create_multipart_upload(Bucket="smgt-test", Key="mp/big.bin")
    done = [{"PartNumber": n, "ETag": s3.upload_part(Bucket="smgt-test", Key="mp/big.bin", PartNumber=n,
                                                     UploadId=upload["UploadId"], Body=body)["ETag"]}
            for n, body in enumerate(parts, 1)]
    s3.complete_multipart_upload(Bucket="smgt-test", Key="mp/big.bin", UploadId=upload["UploadId"],
                                 MultipartUpload={"Parts": done})
    assert s3.get_object(Bucket="smgt-test", Key="mp/big.bin")["Body"].read() == b"".join(parts)

    url = s3.generate_presigned_url("get_object", Params={"Bucket": "smgt-test", "Key": "mp/big.bin"},
                                    ExpiresIn=60)
    response = requests.get(url, timeout=10)  # no credentials: the signature in the URL is the auth
    assert response.status_code == 200 and response.content == b"".join(parts)
    tampered = re.sub(r"X-Amz-Signature=[0-9a-f]{4}", "X-Amz-Signature=0000", url)
    assert requests.get(tampered, timeout=10).status_code == 403


def test_one_data_dir_serves_one_weed_only(store):
    saved = (store.data_dir / "ports.json").read_text()
    other = SeaweedFS(store.data_dir, s3_port=free_port(), **KEYS,
                      ports={key: free_port() for key in ("master", "volume", "filer")})  # admin + 10000 must fit
    with pytest.raises(SeaweedFSError, match=rf"in use by another weed \(pid {store.pid}\)"):
        other.start()
    assert not other.alive and store.healthy()
    assert (store.data_dir / "ports.json").read_text() == saved


def test_sigkill_then_restart_keeps_every_acknowledged_object(fresh, store):
    fresh.start()
    assert store.healthy()  # two instances side by side
    s3 = fresh.client()
    fresh.ensure_buckets(["durable"])
    objects = {f"k/{i:03d}.bin": os.urandom(size) for i, size in enumerate([0, 1, 100, 4096, 65536] * 10)}
    objects["k/chunked.bin"] = os.urandom(9 * MiB + 7)  # several 4 MiB filer chunks
    for key, body in objects.items():
        s3.put_object(Bucket="durable", Key=key, Body=body)
    ports, pid = dict(fresh.ports), fresh.pid
    assert fresh.kill() == -signal.SIGKILL
    assert group_gone(pid) and not fresh.alive

    again = SeaweedFS(fresh.data_dir, s3_port=fresh.s3_port, **KEYS)  # ports come from ports.json
    assert again.ports == ports
    fresh.start()
    s3 = fresh.client()
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket="durable", PaginationConfig={"PageSize": 20})
    assert sorted(o["Key"] for page in pages for o in page.get("Contents", [])) == sorted(objects)
    for key, body in objects.items():
        assert s3.get_object(Bucket="durable", Key=key)["Body"].read() == body, key
    s3.put_object(Bucket="durable", Key="after-restart", Body=b"new")
    assert s3.get_object(Bucket="durable", Key="after-restart")["Body"].read() == b"new"


def _start_streaming_put(url: str, size: int, sent: threading.Event, proceed: threading.Event) -> None:
    """PUT `size` random bytes to a presigned URL: send half, signal `sent`, wait for `proceed`, send the
    rest. Random, because SeaweedFS compresses compressible data and little would reach the disk."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.putrequest("PUT", f"{parts.path}?{parts.query}")
    conn.putheader("Content-Length", str(size))
    conn.endheaders()
    try:
        for _ in range(size // MiB // 2):
            conn.send(os.urandom(MiB))
        sent.set()
        proceed.wait(30)
        for _ in range(size // MiB // 2):
            conn.send(os.urandom(MiB))
        conn.getresponse()
    except OSError:
        pass  # the server was killed: what is expected
    finally:
        sent.set()
        conn.close()


def test_overwrite_interrupted_by_sigkill_keeps_the_old_version(fresh):
    fresh.start()
    s3 = fresh.client()
    fresh.ensure_buckets(["durable"])
    old = os.urandom(6 * MiB)
    s3.put_object(Bucket="durable", Key="manifest.bin", Body=old)
    before = volume_bytes(fresh)
    proceed, threads, events = threading.Event(), [], []
    for key in ("manifest.bin", "never-finished.bin"):  # an overwrite and a new key, both cut halfway
        url = s3.generate_presigned_url("put_object", Params={"Bucket": "durable", "Key": key}, ExpiresIn=60)
        sent = threading.Event()
        thread = threading.Thread(target=_start_streaming_put, args=(url, 16 * MiB, sent, proceed))
        thread.start()
        threads.append(thread)
        events.append(sent)
    for sent in events:
        assert sent.wait(20)
    # Kill only once chunks of the new versions are on disk: what is interrupted is weed writing them.
    deadline = time.monotonic() + 10
    while volume_bytes(fresh) < before + 8 * MiB and time.monotonic() < deadline:
        time.sleep(0.05)
    assert volume_bytes(fresh) >= before + 8 * MiB
    fresh.kill()
    proceed.set()
    for thread in threads:
        thread.join(20)

    fresh.start()
    s3 = fresh.client()
    body = s3.get_object(Bucket="durable", Key="manifest.bin")["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(old).digest()
    with pytest.raises(ClientError) as err:
        s3.head_object(Bucket="durable", Key="never-finished.bin")
    assert code(err) == "404"


def test_busy_port_is_an_error_naming_it(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for kwargs in ({"s3_port": port}, {"s3_port": free_port(), "ports": {"filer_grpc": port}}):
            sw = SeaweedFS(tmp_path / "data", **KEYS, **kwargs)
            started = time.monotonic()
            with pytest.raises(SeaweedFSError, match=rf"port {port} \((s3|filer_grpc)\) is busy"):
                sw.start(timeout=20)
            assert time.monotonic() - started < 2 and not sw.alive


@pytest.mark.parametrize("key", ["master_grpc", "filer"])
def test_port_taken_after_the_check_is_still_an_error_naming_it(tmp_path, monkeypatch, key):
    """weed's own handling, for a port taken between start()'s check and weed's bind: a busy gRPC port
    is silently replaced (caught by the listening-ports check), a busy HTTP port makes weed exit 1."""
    monkeypatch.setattr(seaweedfs, "_ensure_free", lambda name, port, data_dir: None)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        sw = SeaweedFS(tmp_path / "data", s3_port=free_port(), ports={key: port}, **KEYS)
        with pytest.raises(SeaweedFSError, match=rf"'{key}': {port}\b|port {port} for Filer"):
            sw.start(timeout=20)
        assert not sw.alive and group_gone(sw.pid)


def test_stop_ends_the_process_group_within_the_grace_period(fresh):
    fresh.start()
    fresh.client().create_bucket(Bucket="stopping")
    pid = fresh.pid
    started = time.monotonic()
    status = fresh.stop(grace=30.0)
    elapsed = time.monotonic() - started
    assert status == 0 and elapsed < 30, (status, elapsed)  # 0: weed exited on SIGTERM by itself
    assert group_gone(pid) and not fresh.alive and not fresh.healthy()
    assert not list(Path("/tmp").glob(f"seaweedfs-*-{fresh.s3_port}.sock"))
    assert fresh.stop() == 0  # idempotent


def serve(data_dir: Path, port: int) -> tuple[subprocess.Popen[str], psutil.Process]:
    """`python -m smgt.local.seaweedfs serve ...` once it printed its ready line, and weed's process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "smgt.local.seaweedfs", "serve", "--data-dir", str(data_dir),
         "--s3-port", str(port), "--access-key", KEYS["access_key"], "--secret-key", KEYS["secret_key"],
         "--memory-limit", "256MiB"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()
    match = re.match(rf"SeaweedFS S3 ready on http://127.0.0.1:{port} \(pid (\d+),", line)
    if not match:
        proc.kill()
        pytest.fail(f"no ready line: {line!r} {proc.communicate()}")
    return proc, psutil.Process(int(match[1]))


def test_socket_cleanup_removes_only_sockets_nobody_listens_on(tmp_path):
    """After weed is gone its /tmp sockets are removed, but a live one (another weed that took the port
    since) must stay: that weed's components reach each other only through it."""
    paths = {name: tmp_path / f"seaweedfs-s3-{name}.sock" for name in ("live", "stale")}
    socks = {}
    for name, path in paths.items():
        socks[name] = socket.socket(socket.AF_UNIX)
        socks[name].bind(str(path))
        socks[name].listen()
    socks["stale"].close()  # the file stays, nothing listens: what SIGKILL leaves behind
    try:
        for path in paths.values():
            seaweedfs._remove_if_stale(path)
        assert paths["live"].exists() and not paths["stale"].exists()
    finally:
        socks["live"].close()


def test_cli_serve_runs_in_the_foreground_and_stops_on_sigterm(tmp_path):
    port = free_port()
    proc, weed = serve(tmp_path / "data", port)
    try:
        assert weed.environ()["GOMEMLIMIT"] == "256MiB"
        client = SeaweedFS(tmp_path / "data", s3_port=port, **KEYS).client()
        assert client.list_buckets()["Buckets"] == []
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(40) == 0
        assert group_gone(weed.pid)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_serve_exits_with_an_error_when_weed_dies(tmp_path):
    proc, weed = serve(tmp_path / "data", free_port())
    try:
        weed.kill()
        assert proc.wait(10) == 128 + signal.SIGKILL
        assert "seaweedfs: the server exited with status -9" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_weed_orphaned_by_a_killed_manager_keeps_its_data_dir_locked(tmp_path):
    port = free_port()
    proc, weed = serve(tmp_path / "data", port)
    try:
        proc.kill()  # the manager dies without stopping weed (its own process group)
        proc.wait()
        assert weed.is_running()
        again = SeaweedFS(tmp_path / "data", s3_port=port, **KEYS)
        with pytest.raises(SeaweedFSError, match=rf"in use by another weed \(pid {weed.pid}\)"):
            again.start()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(weed.pid, signal.SIGKILL)  # started by this test, through the CLI
        psutil.wait_procs([weed], timeout=10)
    again.start()  # the lock went with weed
    assert again.healthy()
    again.kill()


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"access_key": ""}, "access_key"),
    ({"secret_key": "has space"}, "secret_key"),
    ({"memory_limit": "lots"}, "memory_limit"),
    ({"s3_port": 70000}, "s3_port"),
    ({"ports": {"filler": 20000}}, "ports"),
    ({"ports": {"filer": 20000, "volume": 20000}}, "ports"),
    ({"ports": {"admin": 60000}}, "ports['admin']"),
])
def test_bad_arguments_name_the_field(tmp_path, kwargs, field):
    args = {"s3_port": 20001, **KEYS, **kwargs}
    with pytest.raises(ValueError, match=re.escape(field)):
        SeaweedFS(tmp_path, **args)
