"""A client for a stack started by scripts/stack.sh: its env, the batch API, the metadata DB, the
emulator (SageMaker, SNS, SQS, Cognito) and SeaweedFS (S3). Shared by tests/stack and bench/load_test.py."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import boto3
import psycopg2
import requests
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "stack.sh"
TERMINAL = {"COMPLETE", "INTERNAL_ERROR", "VALIDATION_FAIL"}


def read_env(env_file: Path) -> dict[str, str]:
    """The variables stack.env exports, as bash sees them (values are shell-quoted there)."""
    out = subprocess.run(
        ["bash", "-c", 'set -a; source "$1"; env -0', "_", str(env_file)],
        capture_output=True, check=True, env={"PATH": "/usr/bin:/bin"},
    ).stdout.decode()
    env = dict(item.split("=", 1) for item in out.split("\0") if "=" in item)
    exported = {line.split("=", 1)[0].removeprefix("export ") for line in env_file.read_text().splitlines()}
    return {k: v for k, v in env.items() if k in exported}


class Stack:
    def __init__(self, state: Path, caller_env: dict[str, str]) -> None:
        self.state = state
        self.caller_env = caller_env
        self.env = read_env(state / "stack.env")
        self.api = self.env["SMGT_STACK_API_URL"]
        self.emulator_url = self.env.get("SMGT_STACK_EMULATOR_URL", "")
        self.s3_url = self.env.get("SMGT_STACK_S3_URL", "")
        self.labelstudio_url = self.env.get("SMGT_LABELSTUDIO_URL", "")
        self.http = requests.Session()
        self._tokens: dict[str, str] = {}
        self._db: Any = None
        self.timings: dict[str, Any] = {}

    # ------------------------------------------------------------ processes

    def sh(self, *args: str, timeout: float = 300) -> str:
        """Run scripts/stack.sh ARGS against this stack; returns its stderr (the log lines)."""
        proc = subprocess.run([str(SCRIPT), *args], env=self.caller_env, capture_output=True, text=True,
                              timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"stack.sh {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        return proc.stderr

    def pid(self, component: str) -> int:
        return int((self.state / "run" / f"{component}.pid").read_text())

    def server_pid(self, component: str) -> int:
        """The pid (= process group) of the server a supervised component (seaweedfs, labelstudio) runs."""
        return int((self.state / "run" / f"{component}.child").read_text())

    def status(self) -> tuple[int, dict[str, str]]:
        """`stack.sh status`: its exit status and {component: state} ("alive", "DEAD", "not started")."""
        proc = subprocess.run([str(SCRIPT), "status"], env=self.caller_env, capture_output=True, text=True,
                              timeout=60)
        states = {}
        for line in proc.stdout.splitlines():
            name, _, rest = line.partition(" ")
            if rest.strip().endswith(("alive", "DEAD", "not started")):
                states[name] = rest.split(None, 1)[1].strip()
        return proc.returncode, states

    # ------------------------------------------------------------ API

    def token(self, user: str = "admin", password: str | None = None) -> str:
        if user not in self._tokens:
            r = self.http.post(f"{self.api}/auth/token", json={"username": user, "password": password or user},
                               timeout=30)
            r.raise_for_status()
            self._tokens[user] = r.json()["access_token"]
        return self._tokens[user]

    def call(self, method: str, path: str, *, user: str = "admin", **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token(user)}"}
        return self.http.request(method, f"{self.api}{path}", headers=headers, timeout=60, **kwargs)

    def create_batch(self, config: dict[str, Any]) -> dict[str, Any]:
        r = self.call("POST", "/smgt/batch/create", json=config)
        assert r.status_code == 200, f"batch/create {r.status_code}: {r.text}"
        return r.json()

    def show(self, batch_id: str) -> dict[str, Any]:
        r = self.call("GET", "/smgt/batch/show", params={"batchId": batch_id})
        assert r.status_code == 200, f"batch/show {r.status_code}: {r.text}"
        return r.json()

    def post_metadata(self, batch_id: str, rate: float) -> requests.Response:
        return self.call("POST", "/smgt/batch-metadata/post", json={"batchId": batch_id, "downSamplingRate": rate})

    def wait_status(self, batch_id: str, wanted: set[str], timeout: float, poll: float = 2.0) -> dict[str, Any]:
        """Poll batch/show until the status is in `wanted` (or terminal); fail on timeout."""
        deadline = time.monotonic() + timeout
        shown: dict[str, Any] = {}
        while time.monotonic() < deadline:
            shown = self.show(batch_id)
            if shown.get("status") in wanted or shown.get("status") in TERMINAL:
                return shown
            time.sleep(poll)
        raise AssertionError(f"batch {batch_id} not in {sorted(wanted)} after {timeout:.0f}s: {json.dumps(shown)[:3000]}")

    # ------------------------------------------------------------ metadata DB

    def sql(self, query: str, *params: Any) -> list[tuple]:
        if self._db is None:
            self._db = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres",
                                        dbname=self.env["SMGT_STACK_DB"])
            self._db.autocommit = True
        with self._db.cursor() as cur:
            cur.execute(query, params)
            return cur.fetchall() if cur.description else []

    def task_states(self, run_id: str) -> list[tuple[str, int, str | None, int]]:
        """(task_id, map_index, state, try_number) of every task instance of a run."""
        return self.sql("select task_id, map_index, state, try_number from task_instance where run_id = %s"
                        " order by task_id, map_index", run_id)

    # ------------------------------------------------------------ emulator and SeaweedFS (AWS)

    def client(self, service: str, **config: Any) -> Any:
        """A boto3 client as the stack's Airflow gets one: S3 at SeaweedFS (AWS_ENDPOINT_URL_S3), every
        other service at the emulator, the stack's keys (SeaweedFS checks them). `config`: botocore
        Config options over path-style addressing and standard retries."""
        endpoint = self.env.get("AWS_ENDPOINT_URL_S3", self.emulator_url) if service == "s3" else self.emulator_url
        options = {"s3": {"addressing_style": "path"}, "retries": {"mode": "standard", "max_attempts": 5}, **config}
        return boto3.session.Session().client(
            service, endpoint_url=endpoint, region_name=self.env.get("SMGT_REGION", "us-east-1"),
            aws_access_key_id=self.env.get("AWS_ACCESS_KEY_ID", "testing"),
            aws_secret_access_key=self.env.get("AWS_SECRET_ACCESS_KEY", "testing"), config=Config(**options))

    def labeling_jobs(self, prefix: str = "") -> list[dict[str, Any]]:
        sm = self.client("sagemaker")
        jobs: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"MaxResults": 100}
        if prefix:
            kwargs["NameContains"] = prefix
        while True:
            page = sm.list_labeling_jobs(**kwargs)
            jobs.extend(page.get("LabelingJobSummaryList", []))
            if not page.get("NextToken"):
                return jobs
            kwargs["NextToken"] = page["NextToken"]

    def s3_exists(self, uri: str) -> bool:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        try:
            self.client("s3").head_object(Bucket=bucket, Key=key)
            return True
        except Exception:
            return False

    def emulator_jobs(self) -> dict[str, str]:
        """{job name: status} straight from the emulator's admin API (cheap enough to poll fast)."""
        return self.http.get(f"{self.emulator_url}/_smgt/jobs", timeout=10).json()

    def emulator_stats(self) -> dict[str, Any]:
        return self.http.get(f"{self.emulator_url}/_smgt/stats", timeout=10).json()

    def set_faults(self, faults: dict[str, Any]) -> None:
        self.http.post(f"{self.emulator_url}/_smgt/faults", json=faults, timeout=10).raise_for_status()

    # ------------------------------------------------------------

    def write_timings(self) -> None:
        (self.state / "timings.json").write_text(json.dumps(self.timings, indent=2) + "\n")

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
