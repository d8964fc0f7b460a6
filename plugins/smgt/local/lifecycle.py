"""Runs a labeling job: Initializing -> InProgress -> Completed (or Failed), and Stopping -> Stopped.

One thread per job (jobs spend nearly all their time waiting, so threads are cheap and the code reads
top to bottom). Time is simulated with `task_seconds` per wave of tasks: the team works on as many
data objects at once as it has workers (capped by MaxConcurrentTaskCount). Every wait is
interruptible by StopLabelingJob.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from . import workforce
from .faults import FaultState
from .jobs import LabelingJob
from .outputs import Worker, consolidated_prefix, now, write_manifest, write_object
from .s3io import S3

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Timing:
    task_seconds: float = 0.0  # per wave of tasks
    init_seconds: float = 0.0  # Initializing phase (GT takes minutes to create tasks)
    stop_seconds: float = 0.0  # Stopping phase before Stopped


def default_worker(region: str) -> Worker:
    return Worker("local-worker", f"private.{region}.localworker00000", "00000000-0000-4000-8000-000000000000")


class Lifecycle:
    def __init__(self, *, s3: S3, timing: Timing, faults: FaultState, seed: int, region: str,
                 workers_for: Callable[[str], list[Worker]], issuer: str) -> None:
        self.s3 = s3
        self.timing = timing
        self.faults = faults
        self.seed = seed
        self.region = region
        self.workers_for = workers_for
        self.issuer = issuer
        self.threads: list[threading.Thread] = []

    def start(self, job: LabelingJob) -> None:
        thread = threading.Thread(target=self._run, args=(job,), name=f"gt-job-{job.name}", daemon=True)
        self.threads.append(thread)
        thread.start()

    def _run(self, job: LabelingJob) -> None:
        try:
            self._lifecycle(job)
        except Exception as exc:  # a bug here must not leave the job InProgress forever
            log.exception("labeling job %s crashed", job.name)
            job.set_status("Failed", f"InternalServerError: {exc}")

    def _wait(self, job: LabelingJob, seconds: float) -> bool:
        """Sleep; True if the job was asked to stop."""
        if seconds <= 0:
            return job.stop_requested.is_set()
        return job.stop_requested.wait(seconds)

    def _stop(self, job: LabelingJob, lines: list[dict]) -> None:
        time.sleep(self.timing.stop_seconds)
        if lines:  # GT keeps what workers submitted before the stop
            write_manifest(self.s3, job.spec.output_path, job.name, lines)
        job.set_status("Stopped")

    def _lifecycle(self, job: LabelingJob) -> None:
        if self._wait(job, self.timing.init_seconds):
            return self._stop(job, [])
        with job.lock:
            if job.status == "Initializing":
                job.status = "InProgress"
        faults = self.faults.faults
        if reason := faults.failure_for(job.name):
            if self._wait(job, self.timing.task_seconds):
                return self._stop(job, [])
            job.set_status("Failed", reason)
            return

        workers = self.workers_for(job.workteam_arn) or [default_worker(self.region)]
        max_tasks = job.request["HumanTaskConfig"].get("MaxConcurrentTaskCount", 1000)
        parallel = max(1, min(len(workers), max_tasks))
        spec = job.spec
        prefix = consolidated_prefix(spec.output_path, job.name)
        lines: list[dict] = []
        problems: list[str] = []
        for first in range(0, job.total, parallel):
            if self._wait(job, self.timing.task_seconds):
                return self._stop(job, lines)
            for index in range(first, min(first + parallel, job.total)):
                task = workforce.Task(job.name, index, spec.manifest_lines[index], spec.modality,
                                      spec.category_config, job.request["LabelAttributeName"], prefix, self.seed)
                worker = workers[index % len(workers)]
                try:
                    labeled = workforce.label(task, self.s3)
                    spent = self.timing.task_seconds or random.Random(f"{self.seed}:{job.name}:{index}:t").uniform(20, 180)
                    submitted = now()
                    lines.append(write_object(self.s3, task, labeled, worker, output_path=spec.output_path,
                                              submitted=submitted, seconds_spent=spent, issuer=self.issuer))
                    job.count(labeled=1)
                except Exception as exc:  # bad sequence file, unreadable image, ...: GT fails the object
                    log.info("job %s object %d failed: %s", job.name, index, exc)
                    problems.append(f"data object {index}: {exc}")
                    job.count(failed=1)

        if not lines:
            job.set_status("Failed", "ClientError: no data object could be labeled; " + "; ".join(problems[:3]))
            return
        if self._wait(job, faults.delay_for(job.name)):
            return self._stop(job, lines)
        write_manifest(self.s3, spec.output_path, job.name, lines)
        job.set_status("Completed")


def worker_from_cognito(user: dict, region: str) -> Worker:
    attrs = {a["Name"]: a["Value"] for a in user.get("Attributes", [])}
    sub = attrs.get("sub") or str(hashlib.md5(user["Username"].encode()).hexdigest())
    return Worker(user["Username"], f"private.{region}.{hashlib.sha1(sub.encode()).hexdigest()[:16]}", sub)

