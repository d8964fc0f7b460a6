"""A minimal Ground Truth stand-in: SageMaker's JSON protocol over real HTTP.

The hook, operator, sensor and trigger are exercised through real boto3 / aiobotocore clients
(request signing, JSON protocol, botocore retries, waiters) against this server; only the GT
side is scripted: per-job status sequences, failure reasons and injected faults (throttling,
a 500 after the job was created).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from smgt.config import validate_batch_config
from smgt.gt.requests import build_create_labeling_job_request
from smgt.settings import LOCAL_ACCOUNT_ID, Settings

REGION = "us-east-1"
NON_TERMINAL = {"Initializing", "InProgress", "Stopping"}


@dataclass
class Fault:
    operation: str
    code: str
    status: int = 400
    times: int = 1
    # Apply the operation before answering with the error: the response was "lost".
    after_applying: bool = False


@dataclass
class FakeJob:
    request: dict[str, Any]
    arn: str
    statuses: list[str] = field(default_factory=lambda: ["InProgress"])
    failure_reason: str | None = None
    counters: dict[str, int] = field(
        default_factory=lambda: {
            "TotalLabeled": 0,
            "HumanLabeled": 0,
            "MachineLabeled": 0,
            "FailedNonRetryableError": 0,
            "Unlabeled": 2,
        }
    )

    def next_status(self) -> str:
        # Each DescribeLabelingJob advances the script; the last status sticks.
        return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]


class FakeGroundTruth:
    """Labeling-job state plus an HTTP server answering CreateLabelingJob & co."""

    def __init__(self) -> None:
        self.jobs: dict[str, FakeJob] = {}  # keyed by lower-case name: GT names ignore case
        self.faults: list[Fault] = []
        self.calls: list[str] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def endpoint_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeGroundTruth:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- scripting -------------------------------------------------------------------------
    def add_job(self, request: dict[str, Any], statuses: list[str] | None = None, **kwargs: Any) -> FakeJob:
        job = FakeJob(request=request, arn=self._arn(request["LabelingJobName"]), **kwargs)
        if statuses:
            job.statuses = list(statuses)
        self.jobs[request["LabelingJobName"].lower()] = job
        return job

    def script(self, name: str, statuses: list[str], failure_reason: str | None = None) -> None:
        job = self.jobs[name.lower()]
        job.statuses = list(statuses)
        job.failure_reason = failure_reason

    def inject(self, fault: Fault) -> None:
        self.faults.append(fault)

    def count(self, operation: str) -> int:
        return self.calls.count(operation)

    # -- protocol ----------------------------------------------------------------------------
    @staticmethod
    def _arn(name: str) -> str:
        return f"arn:aws:sagemaker:{REGION}:{LOCAL_ACCOUNT_ID}:labeling-job/{name.lower()}"

    def handle(self, operation: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.calls.append(operation)
            fault = next((f for f in self.faults if f.operation == operation and f.times > 0), None)
            if fault is not None:
                fault.times -= 1
                if fault.after_applying:
                    self._apply(operation, body)
                return fault.status, {"__type": fault.code, "message": f"injected {fault.code}"}
            return self._apply(operation, body)

    def _apply(self, operation: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        method = getattr(self, f"_op_{operation}", None)
        if method is None:
            return 400, {"__type": "UnknownOperationException", "message": operation}
        return method(body)

    def _missing(self, name: str) -> tuple[int, dict[str, Any]]:
        return 400, {"__type": "ResourceNotFound", "message": f"Could not find labeling job {name}"}

    def _op_CreateLabelingJob(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        name = body["LabelingJobName"]
        if name.lower() in self.jobs:
            return 400, {"__type": "ResourceInUse", "message": f"Labeling job {name} already exists"}
        job = self.add_job(body, statuses=["Initializing", "InProgress"])
        return 200, {"LabelingJobArn": job.arn}

    def _op_DescribeLabelingJob(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        job = self.jobs.get(body["LabelingJobName"].lower())
        if job is None:
            return self._missing(body["LabelingJobName"])
        status = job.next_status()
        request = job.request
        out = {
            key: request[key]
            for key in (
                "LabelingJobName",
                "LabelAttributeName",
                "InputConfig",
                "OutputConfig",
                "RoleArn",
                "LabelCategoryConfigS3Uri",
                "StoppingConditions",
                "HumanTaskConfig",
                "Tags",
            )
            if key in request
        }
        out.update(
            LabelingJobArn=job.arn,
            LabelingJobStatus=status,
            LabelCounters=dict(job.counters),
            CreationTime=time.time() - 60,
            LastModifiedTime=time.time(),
            JobReferenceCode="ref-0001",
        )
        if status in ("Failed", "Stopped") and job.failure_reason:
            out["FailureReason"] = job.failure_reason
        if status == "Completed":
            path = request["OutputConfig"]["S3OutputPath"].rstrip("/")
            out["LabelingJobOutput"] = {
                "OutputDatasetS3Uri": f"{path}/{request['LabelingJobName']}/manifests/output/output.manifest"
            }
            out["LabelCounters"].update(TotalLabeled=2, HumanLabeled=2, Unlabeled=0)
        return 200, out

    def _op_StopLabelingJob(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        job = self.jobs.get(body["LabelingJobName"].lower())
        if job is None:
            return self._missing(body["LabelingJobName"])
        current = job.statuses[0]
        if current not in NON_TERMINAL or current == "Stopping":
            return 400, {"__type": "ValidationException", "message": f"Job is {current}; it cannot be stopped"}
        job.statuses = ["Stopping", "Stopped"]
        job.failure_reason = "Labeling job was stopped by the requester."
        return 200, {}

    def _op_ListLabelingJobs(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        # Pages of one job each, so the hook's paginator is exercised.
        names = sorted(self.jobs)
        start = int(body.get("NextToken") or 0)
        page = names[start : start + 1]
        out: dict[str, Any] = {
            "LabelingJobSummaryList": [
                {
                    "LabelingJobName": self.jobs[n].request["LabelingJobName"],
                    "LabelingJobArn": self.jobs[n].arn,
                    "CreationTime": time.time(),
                    "LastModifiedTime": time.time(),
                    "LabelingJobStatus": self.jobs[n].statuses[0],
                    "LabelCounters": self.jobs[n].counters,
                    "WorkteamArn": self.jobs[n].request["HumanTaskConfig"]["WorkteamArn"],
                    "PreHumanTaskLambdaArn": self.jobs[n].request["HumanTaskConfig"]["PreHumanTaskLambdaArn"],
                }
                for n in page
            ]
        }
        if start + 1 < len(names):
            out["NextToken"] = str(start + 1)
        return 200, out

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                target = self.headers.get("X-Amz-Target", "")
                operation = target.split(".", 1)[-1]
                status, payload = fake.handle(operation, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("x-amzn-RequestId", "00000000-0000-0000-0000-000000000000")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                pass

        return Handler


INPUT = "s3://smgt-workflows-123456789012-us-east-1-batch-input"


def make_request(name: str = "nb-track-vehicle", modality: str = "VideoObjectTracking") -> dict[str, Any]:
    """A CreateLabelingJob request as the request builder makes it (batch nb-track, level 1)."""
    batch = validate_batch_config(
        {
            "batchId": "nb-track",
            "labelingJobs": [
                {
                    "jobName": name,
                    "jobType": "BATCH",
                    "jobModality": modality,
                    "labelCategoryConfigS3Uri": f"{INPUT}/vehicle_label_category.json",
                    "inputConfig": {"inputManifestS3Uri": f"{INPUT}/MOT17-13-SDP.manifest"},
                    "jobLevel": 1,
                }
            ],
        }
    )
    job = batch.labelingJobs[0]
    return build_create_labeling_job_request(
        job,
        batch_id="nb-track",
        settings=Settings(),
        input_manifest_s3_uri=job.inputConfig.inputManifestS3Uri,
        label_category_config_s3_uri=job.labelCategoryConfigS3Uri,
        ui_template_s3_uri=f"{INPUT}/ui.liquid.html",
    )
