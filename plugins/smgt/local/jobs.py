"""Labeling-job records and the SageMaker actions on them (create, describe, list, stop).

Names are kept forever and compared case-insensitively, as GT does: a name cannot be reused after
the job completed, failed or stopped, nor after the emulator restarted (the state file keeps it).
Every change of a job (create, status, counters) is written to the `StateStore` before the call or
step that made it returns. Responses carry the fields boto3's output shapes mark as required, with
timestamps as epoch seconds (the JSON protocol's encoding).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import ResourceInUse, ResourceNotFound, ValidationException
from .outputs import output_manifest_uri
from .state import NameTaken, StateStore
from .validation import JobSpec

TERMINAL = {"Completed", "Failed", "Stopped"}
STATUSES = {"Initializing", "InProgress", "Completed", "Failed", "Stopping", "Stopped"}
# Tag the emulator adds to DescribeLabelingJob so callers can tell who labeled a job (GT has no
# such field; tags are free-form and come back through botocore's response shape).
WORKFORCE_TAG = "smgt-local:workforce"


@dataclass
class LabelingJob:
    name: str
    arn: str
    request: dict[str, Any]
    spec: JobSpec
    account: str
    workforce: str = "simulated"
    created: float = field(default_factory=time.time)
    status: str = "Initializing"
    failure_reason: str | None = None
    human_labeled: int = 0
    failed: int = 0
    modified: float = 0.0
    workforce_state: dict[str, Any] = field(default_factory=dict)
    store: StateStore | None = field(default=None, repr=False)
    stop_requested: threading.Event = field(default_factory=threading.Event)
    # Told of every status change once it is on disk (the emulator publishes GT's state-change event).
    on_status: Callable[[LabelingJob], None] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.modified = self.modified or self.created
        self.lock = threading.RLock()
        if self.status == "Stopping":
            self.stop_requested.set()

    @property
    def total(self) -> int:
        return len(self.spec.manifest_lines)

    @property
    def reference_code(self) -> str:
        return hashlib.sha1(self.arn.encode()).hexdigest()[:20]

    @property
    def workteam_arn(self) -> str:
        return self.request["HumanTaskConfig"]["WorkteamArn"]

    @property
    def output_uri(self) -> str:
        return output_manifest_uri(self.spec.output_path, self.name)

    def row(self) -> dict[str, Any]:
        """The job as a `StateStore` row."""
        return {"name": self.name, "arn": self.arn, "account": self.account, "request": self.request,
                "spec": self.spec.to_dict(), "workforce": self.workforce, "workforce_state": self.workforce_state,
                "status": self.status, "failure_reason": self.failure_reason, "human_labeled": self.human_labeled,
                "failed": self.failed, "created": self.created, "modified": self.modified}

    @classmethod
    def from_row(cls, row: dict[str, Any], store: StateStore) -> LabelingJob:
        return cls(name=row["name"], arn=row["arn"], request=row["request"], spec=JobSpec.from_dict(row["spec"]),
                   account=row["account"], workforce=row["workforce"], created=row["created"],
                   status=row["status"], failure_reason=row["failure_reason"], human_labeled=row["human_labeled"],
                   failed=row["failed"], modified=row["modified"], workforce_state=row["workforce_state"],
                   store=store)

    def set_status(self, status: str, reason: str | None = None) -> None:
        with self.lock:
            self.status = status
            if reason is not None:
                self.failure_reason = reason
            self.modified = time.time()
            if self.store is not None:
                self.store.update_job(self.name, status=self.status, failure_reason=self.failure_reason,
                                      modified=self.modified)
            if self.on_status is not None:
                self.on_status(self)

    def record(self, index: int, line: dict[str, Any], *, failure: str | None = None) -> bool:
        """Record a finished data object (durably) with its output-manifest line, and count it as
        labeled, or failed when `failure` says why; False if it was recorded before."""
        with self.lock:
            modified = time.time()
            if self.store is not None and not self.store.record_object(self.name, index, line, failure=failure,
                                                                       modified=modified):
                return False
            if failure is None:
                self.human_labeled += 1
            else:
                self.failed += 1
            self.modified = modified
            return True

    def save_workforce_state(self, **values: Any) -> None:
        """Persist the workforce's own ids for this job (e.g. its Label Studio project)."""
        with self.lock:
            self.workforce_state = {**self.workforce_state, **values}
            if self.store is not None:
                self.store.update_job(self.name, workforce_state=self.workforce_state)

    def counters(self) -> dict[str, int]:
        return {"TotalLabeled": self.human_labeled, "HumanLabeled": self.human_labeled, "MachineLabeled": 0,
                "FailedNonRetryableError": self.failed,
                "Unlabeled": max(self.total - self.human_labeled - self.failed, 0)}

    def _output(self) -> dict[str, Any] | None:
        # GT fills LabelingJobOutput once the job completed (an output manifest then exists).
        return {"OutputDatasetS3Uri": self.output_uri} if self.status == "Completed" else None

    def describe(self) -> dict[str, Any]:
        r = self.request
        out: dict[str, Any] = {
            "LabelingJobStatus": self.status, "LabelCounters": self.counters(),
            "CreationTime": self.created, "LastModifiedTime": self.modified,
            "JobReferenceCode": self.reference_code, "LabelingJobName": self.name,
            "LabelingJobArn": self.arn, "LabelAttributeName": r["LabelAttributeName"],
            "InputConfig": r["InputConfig"], "OutputConfig": r["OutputConfig"], "RoleArn": r["RoleArn"],
            "HumanTaskConfig": r["HumanTaskConfig"],
        }
        for key in ("LabelCategoryConfigS3Uri", "StoppingConditions", "LabelingJobAlgorithmsConfig"):
            if key in r:
                out[key] = r[key]
        out["Tags"] = [*r.get("Tags", []), {"Key": WORKFORCE_TAG, "Value": self.workforce}]
        if self.failure_reason:
            out["FailureReason"] = self.failure_reason
        if (output := self._output()) is not None:
            out["LabelingJobOutput"] = output
        return out

    def summary(self) -> dict[str, Any]:
        human = self.request["HumanTaskConfig"]
        out: dict[str, Any] = {
            "LabelingJobName": self.name, "LabelingJobArn": self.arn, "CreationTime": self.created,
            "LastModifiedTime": self.modified, "LabelingJobStatus": self.status,
            "LabelCounters": self.counters(), "WorkteamArn": self.workteam_arn,
            "PreHumanTaskLambdaArn": human.get("PreHumanTaskLambdaArn"),
            "AnnotationConsolidationLambdaArn":
                human.get("AnnotationConsolidationConfig", {}).get("AnnotationConsolidationLambdaArn"),
            "InputConfig": self.request["InputConfig"],
        }
        if self.failure_reason:
            out["FailureReason"] = self.failure_reason
        if (output := self._output()) is not None:
            out["LabelingJobOutput"] = output
        return out

    def workteam_summary(self) -> dict[str, Any]:
        return {
            "LabelingJobName": self.name, "JobReferenceCode": self.reference_code,
            "WorkRequesterAccountId": self.account, "CreationTime": self.created,
            "LabelCounters": {"HumanLabeled": self.human_labeled,
                              "PendingHuman": 0 if self.status in TERMINAL else self.total - self.human_labeled,
                              "Total": self.total},
            "NumberOfHumanWorkersPerDataObject": self.request["HumanTaskConfig"]["NumberOfHumanWorkersPerDataObject"],
        }


class JobStore:
    def __init__(self, *, account: str, validate: Callable[[dict[str, Any], str], JobSpec],
                 start: Callable[[LabelingJob], None], store: StateStore,
                 choose_workforce: Callable[[JobSpec], str] = lambda spec: "simulated",
                 on_status: Callable[[LabelingJob], None] | None = None) -> None:
        self.account = account
        self.on_status = on_status
        self._validate = validate
        self._start = start
        self._choose = choose_workforce
        self.store = store
        self._jobs: dict[str, LabelingJob] = {}  # lower-case name -> job, never removed
        self._lock = threading.Lock()

    def load(self) -> list[LabelingJob]:
        """Read every job from the state file (after a restart); returns those still running."""
        with self._lock:
            for row in self.store.jobs():
                job = LabelingJob.from_row(row, self.store)
                job.on_status = self.on_status
                self._jobs[job.name.lower()] = job
            return [j for j in self._jobs.values() if j.status not in TERMINAL]

    def get(self, name: Any) -> LabelingJob:
        job = self._jobs.get(name.lower()) if isinstance(name, str) else None
        if job is None:
            raise ResourceNotFound(f"Could not find requested job with name {name}")
        return job

    def all(self) -> list[LabelingJob]:
        with self._lock:
            return list(self._jobs.values())

    def create(self, request: dict[str, Any], region: str) -> dict[str, Any]:
        name = request.get("LabelingJobName")
        if isinstance(name, str) and name.lower() in self._jobs:
            raise _name_taken(name)
        spec = self._validate(request, region)  # reads S3: outside the lock
        arn = f"arn:aws:sagemaker:{region}:{self.account}:labeling-job/{name.lower()}"
        job = LabelingJob(name=name, arn=arn, request=request, spec=spec, account=self.account,
                          workforce=self._choose(spec), store=self.store, on_status=self.on_status)
        with self._lock:
            try:
                # The state file's primary key decides a race between two creates of one name, and
                # the job is on disk before CreateLabelingJob answers.
                self.store.insert_job(job.row())
            except NameTaken:
                raise _name_taken(name) from None
            self._jobs[name.lower()] = job
        self._start(job)
        return {"LabelingJobArn": arn}

    def stop(self, name: Any) -> dict[str, Any]:
        job = self.get(name)
        with job.lock:
            if job.status in TERMINAL:
                raise ValidationException(f"Job {job.name} is in status {job.status} and cannot be stopped")
            if job.status != "Stopping":
                job.set_status("Stopping")
        job.stop_requested.set()
        return {}

    def list(self, params: dict[str, Any]) -> dict[str, Any]:
        jobs = self.all()
        if contains := params.get("NameContains"):
            jobs = [j for j in jobs if contains.lower() in j.name.lower()]
        if status := params.get("StatusEquals"):
            jobs = [j for j in jobs if j.status == status]
        jobs = _time_filter(jobs, params, "CreationTime", lambda j: j.created)
        jobs = _time_filter(jobs, params, "LastModifiedTime", lambda j: j.modified)
        sort_by = params.get("SortBy", "CreationTime")
        key: Callable[[LabelingJob], Any] = {"Name": lambda j: j.name.lower(), "Status": lambda j: j.status}.get(
            sort_by, lambda j: j.created)
        jobs.sort(key=key, reverse=params.get("SortOrder", "Ascending") == "Descending")
        page, token = _paginate(jobs, params)
        out: dict[str, Any] = {"LabelingJobSummaryList": [j.summary() for j in page]}
        if token:
            out["NextToken"] = token
        return out

    def list_for_workteam(self, params: dict[str, Any], team_exists: Callable[[str], bool]) -> dict[str, Any]:
        team = params.get("WorkteamArn")
        if not isinstance(team, str) or not team_exists(team):
            raise ResourceNotFound(f"Workteam {team} does not exist")
        jobs = [j for j in self.all() if j.workteam_arn == team]
        if code := params.get("JobReferenceCodeContains"):
            jobs = [j for j in jobs if code in j.reference_code]
        jobs = _time_filter(jobs, params, "CreationTime", lambda j: j.created)
        jobs.sort(key=lambda j: j.created, reverse=params.get("SortOrder", "Ascending") == "Descending")
        page, token = _paginate(jobs, params)
        out: dict[str, Any] = {"LabelingJobSummaryList": [j.workteam_summary() for j in page]}
        if token:
            out["NextToken"] = token
        return out


def _time_filter(items: list, params: dict[str, Any], prefix: str, get: Callable[[Any], float]) -> list:
    after, before = params.get(f"{prefix}After"), params.get(f"{prefix}Before")
    if after is not None:
        items = [i for i in items if get(i) > float(after)]
    if before is not None:
        items = [i for i in items if get(i) < float(before)]
    return items


def _paginate(items: list, params: dict[str, Any]) -> tuple[list, str | None]:
    """Offset tokens: good enough for a local store whose listing order is stable."""
    limit = params.get("MaxResults", 10)
    if not isinstance(limit, int) or not 1 <= limit <= 100:
        raise ValidationException(f"MaxResults must be between 1 and 100, got {limit}")
    token = params.get("NextToken")
    try:
        start = int(token) if token else 0
    except ValueError:
        raise ValidationException(f"Invalid NextToken {token}") from None
    page = items[start:start + limit]
    return page, (str(start + limit) if start + limit < len(items) else None)


def _name_taken(name: str) -> ResourceInUse:
    return ResourceInUse(f"Job name {name} must be unique within an AWS account and region, "
                         "and a job with this name already exists")
