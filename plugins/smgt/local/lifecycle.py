"""Runs a labeling job: Initializing -> InProgress -> Completed (or Failed), and Stopping -> Stopped.

One thread per job (jobs spend nearly all their time waiting, so threads are cheap and the code reads
top to bottom). The lifecycle owns what Ground Truth owns: status, counters, injected faults, task
expiry, stop, and the output files; the job's workforce (see workforce.py) only labels data objects.
Each finished data object is written to S3 and then recorded in the state file, so a job resumed
after a restart (`start` on a loaded job) hands the workforce only what is still unlabeled, and the
output manifest, published last, is assembled from the recorded lines.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from .faults import FaultState
from .jobs import LabelingJob
from .labels_common import Task
from .outputs import EXPIRED_REASON, Worker, consolidated_prefix, failed_line, write_manifest, write_object
from .s3io import S3
from .workforce import JobRun, ObjectResult, Workforces, WorkforceUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Timing:
    task_seconds: float = 0.0  # per wave of tasks (simulated workforce)
    init_seconds: float = 0.0  # Initializing phase (GT takes minutes to create tasks)
    stop_seconds: float = 0.0  # Stopping phase before Stopped
    # Origin of the timestamps a job's outputs carry; None = the job's creation time. A fixed origin
    # makes two runs of the same batch write byte-identical output manifests (restart tests).
    clock_origin: float | None = None


class _Shutdown(Exception):
    """The emulator is shutting down: leave the job exactly as the state file has it."""


def default_worker(region: str) -> Worker:
    return Worker("local-worker", f"private.{region}.localworker00000", "00000000-0000-4000-8000-000000000000")


class Lifecycle:
    def __init__(self, *, s3: S3, timing: Timing, faults: FaultState, seed: int, region: str,
                 workers_for: Callable[[str], list[Worker]], issuer: str, workforces: Workforces) -> None:
        self.s3 = s3
        self.timing = timing
        self.faults = faults
        self.seed = seed
        self.region = region
        self.workers_for = workers_for
        self.issuer = issuer
        self.workforces = workforces
        self.threads: list[threading.Thread] = []
        self.closing = threading.Event()

    def shutdown(self, jobs: list[LabelingJob]) -> None:
        """Wake every job thread and let it exit without changing its job (a restart resumes it)."""
        self.closing.set()
        for job in jobs:
            job.stop_requested.set()

    def start(self, job: LabelingJob) -> None:
        """Run a new job, or resume a loaded one from where its state file left it."""
        thread = threading.Thread(target=self._run, args=(job,), name=f"gt-job-{job.name}", daemon=True)
        self.threads.append(thread)
        thread.start()

    def _run(self, job: LabelingJob) -> None:
        try:
            self._lifecycle(job)
        except _Shutdown:
            return
        except Exception as exc:  # a bug here must not leave the job InProgress forever
            log.exception("labeling job %s crashed", job.name)
            job.set_status("Failed", f"InternalServerError: {exc}")

    def _wait(self, job: LabelingJob, seconds: float) -> bool:
        """Sleep; True if the job was asked to stop."""
        stopped = job.stop_requested.is_set() if seconds <= 0 else job.stop_requested.wait(seconds)
        if self.closing.is_set():
            raise _Shutdown
        return stopped

    def _finish_stop(self, job: LabelingJob) -> None:
        if self.closing.wait(self.timing.stop_seconds):
            raise _Shutdown  # the job stays Stopping; a restart finishes the stop
        lines = job.store.output_lines(job.name) if job.store else {}
        if lines:  # GT keeps what workers submitted before the stop
            write_manifest(self.s3, job.spec.output_path, job.name, [lines[i] for i in sorted(lines)])
        job.set_status("Stopped")

    def _lifecycle(self, job: LabelingJob) -> None:
        if job.status == "Stopping":
            return self._finish_stop(job)
        if job.status == "Initializing":
            if self._wait(job, self.timing.init_seconds):
                return self._finish_stop(job)
            with job.lock:
                if job.status == "Initializing":
                    job.set_status("InProgress")
        faults = self.faults.faults
        if reason := faults.failure_for(job.name):
            if self._wait(job, self.timing.task_seconds):
                return self._finish_stop(job)
            job.set_status("Failed", reason)
            return

        try:
            workforce = self.workforces.get(job.workforce)
        except WorkforceUnavailable as exc:
            # Not a failure of the job: it goes on when the emulator runs with its workforce again.
            log.warning("job %s waits: %s", job.name, exc)
            return
        human = job.request["HumanTaskConfig"]
        lifetime = human.get("TaskAvailabilityLifetimeInSeconds")
        deadline = job.created + lifetime if lifetime else None
        expired = threading.Event()

        def wait(seconds: float) -> bool:
            if deadline is not None:
                left = deadline - time.time()
                if left <= seconds:
                    stopped = self._wait(job, max(left, 0))
                    if not stopped:
                        expired.set()
                    return True
            return self._wait(job, seconds)

        origin = self.timing.clock_origin if self.timing.clock_origin is not None else job.created
        run = JobRun(job=job, tasks=self._pending_tasks(job), origin=datetime.fromtimestamp(origin, UTC),
                     workers=self.workers_for(job.workteam_arn) or [default_worker(self.region)], wait=wait)
        pending = {task.index: task for task in run.tasks}
        for result in workforce.label(run):
            self._record(job, pending.pop(result.index, None), result)

        if job.stop_requested.is_set():
            return self._finish_stop(job)
        lines = job.store.output_lines(job.name) if job.store else {}
        if expired.is_set():
            # GT: a task no worker finished within TaskAvailabilityLifetimeInSeconds expires; the job
            # ends with its data object unlabeled, written to the manifest with the expiry reason.
            for task in pending.values():
                lines[task.index] = failed_line(task, EXPIRED_REASON)
            log.info("job %s: task availability lifetime ended with %d of %d data objects unlabeled",
                     job.name, len(pending), job.total)
        elif pending:
            raise RuntimeError(f"the {workforce.name} workforce returned with data objects unlabeled")
        if job.human_labeled == 0:
            failures = list((job.store.failures(job.name) if job.store else {}).items())[:3]
            detail = "; ".join(f"data object {i}: {why.removeprefix('ClientError: ')}" for i, why in failures)
            detail = detail or "every task expired"
            job.set_status("Failed", f"ClientError: no data object could be labeled; {detail}")
            return
        if self._wait(job, faults.delay_for(job.name)):
            return self._finish_stop(job)
        write_manifest(self.s3, job.spec.output_path, job.name, [lines[i] for i in sorted(lines)])
        with job.lock:
            if job.status == "InProgress":
                job.set_status("Completed")
                return
        self._finish_stop(job)  # a stop arrived while the manifest was written

    def _pending_tasks(self, job: LabelingJob) -> list[Task]:
        done = job.store.finished_indexes(job.name) if job.store else set()
        prefix = consolidated_prefix(job.spec.output_path, job.name)
        errors = self.faults.faults.label_errors_for(job.name)
        return [Task(job.name, index, line, job.spec.modality, job.spec.category_config,
                     job.request["LabelAttributeName"], prefix, self.seed, errors)
                for index, line in enumerate(job.spec.manifest_lines) if index not in done]

    def _record(self, job: LabelingJob, task: Task | None, result: ObjectResult) -> None:
        if task is None:
            log.warning("job %s: the workforce returned data object %d, which was not pending", job.name, result.index)
            return
        if result.labeled is None or not result.answers:
            reason = result.failure or "no answer"
            if not reason.startswith("ClientError"):  # GT's failure reasons name the error class
                reason = f"ClientError: {reason}"
            job.record(result.index, failed_line(task, reason), failure=reason)
            return
        line = write_object(self.s3, task, result.labeled, result.answers, output_path=job.spec.output_path,
                            issuer=self.issuer)
        job.record(result.index, line)


def worker_from_cognito(user: dict, region: str) -> Worker:
    """A GT worker identity (`private.<region>.<16 hex>`) for a Cognito user, from its `sub`."""
    attrs = {a["Name"]: a["Value"] for a in user.get("Attributes", [])}
    sub = attrs.get("sub") or str(hashlib.md5(user["Username"].encode()).hexdigest())
    return Worker(user["Username"], f"private.{region}.{hashlib.sha1(sub.encode()).hexdigest()[:16]}", sub)
