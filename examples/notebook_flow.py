#!/usr/bin/env python
"""The reference notebook's steps as a script, against the batch API served by Airflow.

    python examples/notebook_flow.py --base-url http://localhost:8080 --username admin --password PW

What the notebook did against API Gateway, this does against `/smgt/...` of the Airflow API
server, authenticating with a token from `POST /auth/token` instead of SigV4:

1. list the demo video's frames in the input bucket (optionally upload them from --frames-dir,
   the notebook's `aws s3 sync`), keep every other frame of the first 300, write the sequence file
   and the one-line input manifest;
2. write the four label category configs (the notebook's, kept in include/label_configs/) and
   upload everything to s3://<input bucket>/tracking_manifests/;
3. create the 4-job batch (vehicles + lanes at level 1, one audit each at level 2);
4. show the batch list, the batch, and the workforce;
5. when the batch waits for metadata, post a 50 % down-sampling rate;
6. wait for COMPLETE and download the second level's first output manifest from its presigned
   `jobOutputS3Url`.

S3 is reached with boto3's usual configuration (AWS_* variables; AWS_ENDPOINT_URL_S3 or
AWS_ENDPOINT_URL for a local deployment) or --endpoint-url; with neither, the S3 endpoint of
AIRFLOW_CONN_AWS_DEFAULT is used, so the environment of `python -m smgt.local serve` or
`scripts/up.sh` works as is. Exits non-zero on any failure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import requests
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))

from smgt.sequences import build_sequence, manifest_line  # noqa: E402
from smgt.settings import get_settings  # noqa: E402

VIDEO = "MOT17-13-SDP"
FRAMES_PREFIX = f"MOT17/train/{VIDEO}/img1/"
LABEL_CONFIGS = ROOT / "include" / "label_configs"
CONFIG_NAMES = (
    "vehicle_label_category.json",
    "vehicle_label_category_audit.json",
    "lane_label_category.json",
    "lane_label_category_audit.json",
)
FAILED_STATUSES = {"INTERNAL_ERROR", "VALIDATION_FAIL"}


class FlowError(RuntimeError):
    """A step of the flow failed; the message says which and why."""


def clip(text: str, limit: int) -> str:
    """`text`, or its first `limit` characters and how long it was (a cut JSON looks broken otherwise)."""
    return text if len(text) <= limit else f"{text[:limit]}... [{len(text) - limit} more characters]"


def log(message: str) -> None:
    print(f"[notebook-flow] {message}", flush=True)


def endpoint_from_airflow_conn() -> str | None:
    """The S3 endpoint of AIRFLOW_CONN_AWS_DEFAULT (JSON or URI form), if any: its
    `service_config.s3.endpoint_url` (the amazon provider's per-service setting), else `endpoint_url`."""
    raw = os.environ.get("AIRFLOW_CONN_AWS_DEFAULT")
    if not raw:
        return None
    if raw.lstrip().startswith("{"):
        extra = json.loads(raw).get("extra") or {}
        if isinstance(extra, str):
            extra = json.loads(extra)
        return (extra.get("service_config") or {}).get("s3", {}).get("endpoint_url") or extra.get("endpoint_url")
    values = parse_qs(urlsplit(raw).query).get("endpoint_url")
    return values[0] if values else None


class BatchApi:
    """The four endpoints of SPEC section 7, with an Airflow bearer token."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base = base_url.rstrip("/")
        self.http = requests.Session()
        # A restart of the deployment refuses connections for a minute or two: wait it out (about
        # four minutes in all). A POST is retried only when it could not connect (it never reached
        # the server, so it is not sent twice); reads (GET) also after a reset or a 502/503/504.
        retry = Retry(total=None, connect=12, read=4, status=4, other=0, backoff_factor=1, backoff_max=30,
                      status_forcelist=(502, 503, 504), raise_on_status=False)
        for scheme in ("http://", "https://"):
            self.http.mount(scheme, HTTPAdapter(max_retries=retry))
        resp = self.http.post(
            f"{self.base}/auth/token", json={"username": username, "password": password}, timeout=30
        )
        if resp.status_code not in (200, 201):
            raise FlowError(f"POST /auth/token as {username!r}: {resp.status_code} {clip(resp.text, 300)}")
        self.http.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"

    def call(self, method: str, path: str, *, expect: int = 200, **kwargs: Any) -> Any:
        resp = self.http.request(method, f"{self.base}/smgt/{path}", timeout=60, **kwargs)
        if resp.status_code != expect:
            raise FlowError(f"{method} /smgt/{path}: {resp.status_code} {clip(resp.text, 1000)}")
        return resp.json()

    def create(self, batch: dict[str, Any]) -> Any:
        return self.call("POST", "batch/create", json=batch)

    def show(self, batch_id: str | None = None) -> Any:
        return self.call("GET", "batch/show", params={"batchId": batch_id} if batch_id else None)

    def post_metadata(self, batch_id: str, rate: float) -> Any:
        return self.call("POST", "batch-metadata/post", json={"batchId": batch_id, "downSamplingRate": rate})

    def workforce(self) -> Any:
        return self.call("GET", "workforce/show")


def prepare_inputs(s3: Any, bucket: str, work_dir: Path, frames_dir: Path | None) -> dict[str, str]:
    """Steps 1-2: sequence file, manifest and label configs, uploaded; returns their S3 URIs."""
    if frames_dir is not None:
        images = sorted(p for p in frames_dir.glob("*.jpg"))
        if not images:
            raise FlowError(f"--frames-dir {frames_dir} has no .jpg frames")
        for path in images:
            s3.upload_file(str(path), bucket, FRAMES_PREFIX + path.name)
        log(f"uploaded {len(images)} frames to s3://{bucket}/{FRAMES_PREFIX}")

    names: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=FRAMES_PREFIX):
        names.extend(
            o["Key"].rsplit("/", 1)[-1] for o in page.get("Contents", []) if o["Key"].endswith(".jpg")
        )
    if not names:
        raise FlowError(
            f"no demo frames under s3://{bucket}/{FRAMES_PREFIX}: upload them first "
            "(the emulator's demo data, or --frames-dir)"
        )
    # The notebook's `files[:300:2]`: every other frame of the first 300, numbered 1..n.
    sequence = build_sequence(names, f"s3://{bucket}/{FRAMES_PREFIX}", step=2, limit=300)
    log(f"sequence of {sequence['number-of-frames']} frames (of {len(names)} in the bucket)")

    manifests = work_dir / "tracking_manifests"
    manifests.mkdir(parents=True, exist_ok=True)
    (manifests / f"{VIDEO}_seq.json").write_text(json.dumps(sequence))
    source_ref = f"s3://{bucket}/tracking_manifests/{VIDEO}_seq.json"
    (manifests / f"{VIDEO}.manifest").write_text(manifest_line(source_ref) + "\n")
    for name in CONFIG_NAMES:
        config = json.loads((LABEL_CONFIGS / name).read_text())
        (manifests / name).write_text(json.dumps(config))

    for path in sorted(manifests.iterdir()):
        s3.upload_file(str(path), bucket, f"tracking_manifests/{path.name}")
    log(f"uploaded {len(list(manifests.iterdir()))} files to s3://{bucket}/tracking_manifests/")
    uri = f"s3://{bucket}/tracking_manifests"
    return {
        "manifest": f"{uri}/{VIDEO}.manifest",
        "vehicle": f"{uri}/vehicle_label_category.json",
        "vehicle-audit": f"{uri}/vehicle_label_category_audit.json",
        "lane": f"{uri}/lane_label_category.json",
        "lane-audit": f"{uri}/lane_label_category_audit.json",
    }


def notebook_batch(batch_id: str, uris: dict[str, str]) -> dict[str, Any]:
    """The notebook's batch/create body, unchanged."""
    return {
        "batchId": batch_id,
        "labelingJobs": [
            {
                "jobName": f"{batch_id}-vehicle",
                "jobType": "BATCH",
                "jobModality": "VideoObjectTracking",
                "labelAttributeName": "vehicle-ref",
                "labelCategoryConfigS3Uri": uris["vehicle"],
                "inputConfig": {"inputManifestS3Uri": uris["manifest"]},
                "jobLevel": 1,
            },
            {
                "jobName": f"{batch_id}-lane",
                "jobType": "BATCH",
                "jobModality": "VideoObjectTracking",
                "labelAttributeName": "lane-ref",
                "labelCategoryConfigS3Uri": uris["lane"],
                "inputConfig": {"inputManifestS3Uri": uris["manifest"]},
                "jobLevel": 1,
            },
            {
                "jobName": f"{batch_id}-vehicle-audit",
                "jobType": "BATCH",
                "jobModality": "VideoObjectTrackingAudit",
                "labelAttributeName": "vehicle-audit-ref",
                "labelCategoryConfigS3Uri": uris["vehicle-audit"],
                "inputConfig": {"chainFromJobName": f"{batch_id}-vehicle"},
                "jobLevel": 2,
            },
            {
                "jobName": f"{batch_id}-lane-audit",
                "jobType": "BATCH",
                "jobModality": "VideoObjectTrackingAudit",
                "labelAttributeName": "lane-audit-ref",
                "labelCategoryConfigS3Uri": uris["lane-audit"],
                "inputConfig": {"chainFromJobName": f"{batch_id}-lane"},
                "jobLevel": 2,
            },
        ],
    }


def wait_for(api: BatchApi, batch_id: str, wanted: str, deadline: float, poll: float) -> dict[str, Any]:
    last = None
    while time.monotonic() < deadline:
        detail = api.show(batch_id)
        status = detail["status"]
        if status != last:
            log(f"batch {batch_id}: {status}")
            last = status
        if status == wanted:
            return detail
        if status in FAILED_STATUSES:
            raise FlowError(f"batch {batch_id} ended {status}: {detail.get('message', '')}")
        if status == "COMPLETE" and wanted != "COMPLETE":
            raise FlowError(f"batch {batch_id} completed without waiting for {wanted}")
        time.sleep(poll)
    raise FlowError(f"batch {batch_id} did not reach {wanted} in time (last status {last})")


def run(args: argparse.Namespace) -> Path:
    settings = get_settings()
    bucket = args.input_bucket or settings.input_bucket
    endpoint = (args.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
                or endpoint_from_airflow_conn())
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name=args.region or settings.region)
    work_dir = Path(args.work_dir)
    deadline = time.monotonic() + args.timeout

    uris = prepare_inputs(s3, bucket, work_dir, Path(args.frames_dir) if args.frames_dir else None)
    api = BatchApi(args.base_url, args.username, args.password)

    batch_id = args.batch_id or f"nb-track-{uuid.uuid4().hex[:8]}"
    created = api.create(notebook_batch(batch_id, uris))
    log(f"batch/create: {json.dumps(created)}")

    listing = api.show()
    if not any(batch_id in ids for key, ids in listing.items() if key != "nextToken"):
        raise FlowError(f"batch/show does not list {batch_id}: {clip(json.dumps(listing), 500)}")
    log(
        f"batch/show: {batch_id} listed; {', '.join(f'{k}={len(v)}' for k, v in listing.items() if isinstance(v, list))}"
    )
    log(f"batch/show?batchId: {clip(json.dumps(api.show(batch_id)), 2000)}")

    teams = api.workforce()
    for team in teams:
        members = [m["username"] for d in team["memberDefinitions"] for m in d.get("members", [])]
        log(f"workforce/show: {team['category']} {team['workteamName']} members={members}")

    wait_for(api, batch_id, "WAIT_FOR_META_DATA_INPUT", deadline, args.poll)
    log(f"batch-metadata/post: {json.dumps(api.post_metadata(batch_id, args.rate))}")

    detail = wait_for(api, batch_id, "COMPLETE", deadline, args.poll)
    jobs = detail["secondLevel"]["jobLevels"]
    if not jobs or not jobs[0].get("jobOutputS3Url"):
        raise FlowError(f"secondLevel has no output URL: {clip(json.dumps(detail['secondLevel']), 1000)}")
    url = jobs[0]["jobOutputS3Url"]
    log(f"second level output manifest url: {url}")
    # A presigned URL carries its own authorization: no Airflow token, no AWS credentials.
    resp = requests.get(url, timeout=60)
    if resp.status_code != 200:
        raise FlowError(f"GET jobOutputS3Url: {resp.status_code} {clip(resp.text, 300)}")
    lines = [json.loads(line) for line in resp.text.splitlines() if line.strip()]
    attribute = jobs[0]["labelAttributeName"]
    if not lines or not all(attribute in line for line in lines):
        raise FlowError(f"output manifest has no {attribute!r} labels: {clip(resp.text, 500)}")
    out = work_dir / f"{jobs[0]['labelingJobName']}.output.manifest"
    out.write_bytes(resp.content)
    log(f"downloaded {len(lines)} labelled line(s) to {out}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default="http://localhost:8080", help="Airflow API server")
    parser.add_argument("--username", default="admin")
    parser.add_argument("--password", required=True)
    parser.add_argument("--input-bucket", help="default: SMGT_INPUT_BUCKET / settings")
    parser.add_argument("--frames-dir", help="upload the demo video's .jpg frames from here first")
    parser.add_argument("--endpoint-url", help="S3 endpoint (default: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL or aws_default's)")
    parser.add_argument("--region")
    parser.add_argument("--batch-id", help="default: nb-track-<random>")
    parser.add_argument("--rate", type=float, default=50, help="down-sampling rate to post (percent)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds for the whole batch")
    parser.add_argument("--poll", type=float, default=2.0, help="seconds between batch/show polls")
    parser.add_argument("--work-dir", default="notebook_flow_out", help="local files written here")
    args = parser.parse_args(argv)
    if args.rate == int(args.rate):
        args.rate = int(args.rate)  # post 50, as the notebook does, not 50.0
    try:
        run(args)
    except NoCredentialsError as exc:
        print(f"[notebook-flow] FAILED: {exc} for S3: run the `export` lines scripts/up.sh printed (or set "
              "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_ENDPOINT_URL_S3) and try again", file=sys.stderr, flush=True)
        return 1
    except (FlowError, requests.RequestException, BotoCoreError, ClientError) as exc:
        print(f"[notebook-flow] FAILED: {exc}", file=sys.stderr, flush=True)
        return 1
    log("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
