"""The Label Studio workforce: people label a job's data objects in Label Studio.

One Label Studio project per labeling job, made on the job's first run and found again after any
restart (its id is kept with the job in the emulator's state file; a crash between making it and
recording the id is caught by looking the project up by title and job):

- the labeling interface comes from GT's label category config (labeling_config.py), with the GT
  task title and description on top and the config's instructions as the project's instructions;
- one task per data object of the input manifest (tasks.py): an image, or a whole video sequence
  as a frame list; adjustment jobs open with the parent's labels drawn (a prediction);
- frames and images are `s3://` URIs that Label Studio serves itself from the S3 store through a
  project S3 storage without presigning, so labelers need only their Label Studio login;
- a data object is finished when `NumberOfHumanWorkersPerDataObject` members of the job's work team
  submitted an annotation (skips do not count; another user's annotation is marked skipped, so the
  task goes back to the team's queue); it is then
  converted to GT's output (convert.py) and handed to the lifecycle, which writes and records it.
  An annotation that fails validation (a degenerate box, a label the job does not have: Label
  Studio stores what it is sent, where GT's worker UI would not submit it) is set aside like a
  skip, so the task goes back to the queue, and the reason goes into the task's data
  (`smgt_set_aside`, a column of the project's Data Manager): its labeler corrects it and submits
  again, and the labels of the rest of the sequence are not lost.

Polling Label Studio is the source of truth (its webhooks are delivered once, without retry): a
cheap project read every `poll_seconds`, and a task listing only when its counters moved. Label
Studio being down (a restart) is waited out; the job goes on when it is back.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.config import Config

from smgt.config import parse_s3_uri
from smgt.registry import MediaKind, Modality

from ..bootstrap import worker_email
from ..labels_common import Task
from ..outputs import Worker
from ..s3io import S3
from ..workforce import Answer, JobRun, ObjectResult
from .client import LabelStudioApiError, LabelStudioClient, PredictionsDropped
from .convert import ResultError, answer_content, labeled_from_annotations
from .labeling_config import labeling_config
from .tasks import InputError, task_for_object

log = logging.getLogger(__name__)

IMPORT_CHUNK = 500  # tasks per import request (Label Studio imports one request atomically)
# A full task listing at least this often even when the project's counters did not move (an
# annotation edited in place changes no counter).
FULL_SCAN_EVERY = 10


class LabelStudioWorkforce:
    name = "labelstudio"

    def __init__(self, client: LabelStudioClient, *, s3_store: Any, public_url: str | None = None,
                 storage_endpoint: str | None = None, poll_seconds: float = 5.0) -> None:
        """`client`: Label Studio as its admin. `s3_store` (an `S3Store`): where inputs and outputs
        live; `storage_endpoint`: the same store as Label Studio reaches it (default: its URL).
        `public_url`: Label Studio's address for people (default: the client's)."""
        self.client = client
        self.store = s3_store
        self.storage_endpoint = storage_endpoint or s3_store.endpoint_url
        self.public_url = public_url or client.url
        self.poll_seconds = poll_seconds
        self.s3 = S3(boto3.session.Session().client(
            "s3", endpoint_url=s3_store.endpoint_url, aws_access_key_id=s3_store.access_key,
            aws_secret_access_key=s3_store.secret_key, region_name="us-east-1",
            config=Config(retries={"mode": "standard", "max_attempts": 5}, s3={"addressing_style": "path"})))
        self._emails: dict[int, str] = {}  # Label Studio user id -> e-mail
        # Label Studio on SQLite fails concurrent writes ("database is locked"; an import then even
        # drops its predictions), so this emulator's jobs make their projects and tasks one at a time.
        self._writes = threading.Lock()

    @classmethod
    def from_env(cls, *, s3_store: Any) -> LabelStudioWorkforce:
        """From SMGT_LABELSTUDIO_URL and SMGT_LABELSTUDIO_TOKEN (required), SMGT_LABELSTUDIO_PUBLIC_URL,
        SMGT_LABELSTUDIO_S3_ENDPOINT_URL and SMGT_LABELSTUDIO_POLL_SECONDS (optional)."""
        if s3_store is None:
            raise SystemExit("the Label Studio workforce needs an S3 store (--s3-endpoint-url): "
                             "Label Studio serves frames from it")
        missing = [n for n in ("SMGT_LABELSTUDIO_URL", "SMGT_LABELSTUDIO_TOKEN") if not os.environ.get(n)]
        if missing:
            raise SystemExit(f"--workforce labelstudio needs {' and '.join(missing)} in the environment")
        client = LabelStudioClient(os.environ["SMGT_LABELSTUDIO_URL"], os.environ["SMGT_LABELSTUDIO_TOKEN"])
        return cls(client, s3_store=s3_store, public_url=os.environ.get("SMGT_LABELSTUDIO_PUBLIC_URL"),
                   storage_endpoint=os.environ.get("SMGT_LABELSTUDIO_S3_ENDPOINT_URL"),
                   poll_seconds=float(os.environ.get("SMGT_LABELSTUDIO_POLL_SECONDS", "5")))

    # ------------------------------------------------------------ Workforce

    def supports(self, modality: Modality) -> bool:
        return modality.media is not MediaKind.POINT_CLOUD  # Label Studio has no point-cloud tool

    def portal_url(self) -> str | None:
        return self.public_url

    def label(self, run: JobRun) -> Iterator[ObjectResult]:
        job = run.job
        if not run.tasks:
            return
        pending = {task.index: task for task in run.tasks}
        while True:  # make the project and its tasks, waiting out Label Studio being down
            try:
                project_id = self._project(job)
                unshowable = [] if job.workforce_state.get("tasks_imported") else self._import_tasks(project_id, run)
                break
            except LabelStudioApiError as exc:
                if not _unreachable(exc):
                    raise
                log.warning("job %s: Label Studio did not answer (%s); trying again in %.0f s",
                            job.name, exc, self.poll_seconds)
                if run.wait(self.poll_seconds):
                    return  # stopped (or expired) before its tasks could be made: nothing was labeled
        for index, reason in unshowable:
            # Its input cannot be shown (a missing sequence file, ...): GT fails that data object.
            del pending[index]
            yield ObjectResult(index, failure=f"ClientError: {reason}")
        job.save_workforce_state(tasks_imported=True)
        needed = job.request["HumanTaskConfig"]["NumberOfHumanWorkersPerDataObject"]
        members = {worker_email(w.username).lower(): w for w in run.workers}
        polls, last_counters = 0, None
        while pending:
            stopping = run.wait(0 if last_counters is None else self.poll_seconds)
            try:
                counters = self._counters(project_id)
                if stopping or counters != last_counters or polls % FULL_SCAN_EVERY == 0:
                    yield from self._collect(project_id, pending, members, needed, job)
                    last_counters = counters
                polls += 1
            except LabelStudioApiError as exc:
                if exc.status_code == 404:
                    raise RuntimeError(f"Label Studio project {project_id} of job {job.name} was deleted") from exc
                if not _unreachable(exc):
                    raise
                # Label Studio is down or restarting: wait and poll again (the client retried already).
                log.warning("job %s: Label Studio did not answer (%s); polling again", job.name, exc)
            if stopping:
                return  # what was finished by the stop or expiry was collected above

    # ------------------------------------------------------------ project

    def _project(self, job: Any) -> int:
        """The job's project, made if needed; found again after a crash that lost its id."""
        project_id = job.workforce_state.get("project_id")
        if project_id is None:
            human = job.request["HumanTaskConfig"]
            spec = labeling_config(job.spec.modality, job.spec.category_config, title=job.name,
                                   description=human.get("TaskDescription", ""))
            description = f"{job.name}: {human.get('TaskTitle', '')}\n{spec.description}".strip()
            with self._writes:
                project = self._find_project(job.name, spec.title) or self.client.create_project(
                    **{**spec.payload(), "description": description},
                    maximum_annotations=human["NumberOfHumanWorkersPerDataObject"], show_skip_button=True)
            project_id = project["id"]
            job.save_workforce_state(project_id=project_id)
        return project_id

    def _find_project(self, job_name: str, title: str) -> dict[str, Any] | None:
        # Made before a crash kept us from recording its id: the same title, the job in its description.
        for project in self.client.list_projects(title_contains=title):
            if project.get("title") == title and (project.get("description") or "").startswith(f"{job_name}:"):
                return project
        return None

    def _import_tasks(self, project_id: int, run: JobRun) -> list[tuple[int, str]]:
        """Make a Label Studio task for each data object not imported yet, and an S3 storage for each
        bucket their media live in; returns the data objects that cannot be shown, with why."""
        imported = {t["data"].get("gt_index") for t in self.client.iter_tasks(project_id)}
        payloads, failed = [], []
        for task in run.tasks:
            if task.index in imported:
                continue
            try:
                payloads.append(task_for_object(task, self.s3))
            except (InputError, ResultError, ValueError) as exc:
                failed.append((task.index, str(exc)))
        buckets = {parse_s3_uri(uri)[0] for p in payloads
                   for uri in [p["data"].get("image"), *(p["data"].get("frames") or [])]
                   if isinstance(uri, str) and uri.startswith("s3://")}
        with self._writes:
            have = {s.get("bucket") for s in self.client.list_s3_import_storages(project_id)}
            for bucket in sorted(buckets - have):
                self.client.create_s3_import_storage(
                    project_id, bucket=bucket, s3_endpoint=self.storage_endpoint, access_key_id=self.store.access_key,
                    secret_access_key=self.store.secret_key, presign=False, title=f"{bucket} (served by Label Studio)")
            for start in range(0, len(payloads), IMPORT_CHUNK):
                chunk = payloads[start:start + IMPORT_CHUNK]
                try:
                    self.client.import_tasks(project_id, chunk)
                except PredictionsDropped as dropped:
                    log.warning("job %s: %s; adding them task by task", run.job.name, dropped)
                    self._add_missing_predictions(dropped.task_ids, chunk)
        log.info("job %s: %d task(s) imported into Label Studio project %d (%d with the parent's labels drawn)",
                 run.job.name, len(payloads), project_id, sum(bool(p.get("predictions")) for p in payloads))
        return failed

    def _add_missing_predictions(self, task_ids: list[int], payloads: list[dict[str, Any]]) -> None:
        for task_id, payload in zip(task_ids, payloads, strict=True):
            if payload.get("predictions") and not self.client.get_task(task_id).get("predictions"):
                for prediction in payload["predictions"]:
                    self.client.create_prediction(task_id, prediction["result"],
                                                  model_version=prediction.get("model_version"))

    # ------------------------------------------------------------ results

    def _counters(self, project_id: int) -> tuple[Any, ...]:
        project = self.client.get_project(project_id)
        return tuple(project.get(k) for k in ("task_number", "num_tasks_with_annotations", "total_annotations_number",
                                              "skipped_annotations_number", "finished_task_number"))

    def _collect(self, project_id: int, pending: dict[int, Task], members: dict[str, Worker],
                 needed: int, job: Any) -> Iterator[ObjectResult]:
        for ls_task in self.client.iter_tasks(project_id):
            index = ls_task.get("data", {}).get("gt_index")
            task = pending.get(index)
            if task is None:
                continue
            submitted = []
            set_aside = job.workforce_state.get(SET_ASIDE_KEY) or {}  # annotation id -> its updated_at then
            for annotation in sorted(ls_task.get("annotations") or [], key=lambda a: a.get("id", 0)):
                revived = False
                if annotation.get("was_cancelled"):
                    when_set_aside = set_aside.get(str(annotation.get("id")))
                    if when_set_aside is None or when_set_aside == annotation.get("updated_at"):
                        continue  # a skip (the task stays available to others), or set aside and not edited since
                    # Set aside, edited since by its labeler: a submission again, if valid now.
                    annotation, revived = {**annotation, "was_cancelled": False}, True
                email = self._email(annotation.get("completed_by"))
                worker = members.get(email.lower()) if email else None
                if worker is None:
                    # Only the job's work team labels it (GT's rule). Label Studio would count this
                    # annotation and take the task out of the team's queue: mark it skipped instead
                    # (kept, not deleted), so the task goes back to the team.
                    log.warning("job %s: annotation %s by %s set aside (skipped): not a member of the job's"
                                " work team", task.job_name, annotation.get("id"), email or annotation.get("completed_by"))
                    self.client.update_annotation(annotation["id"], was_cancelled=True)
                    continue
                if worker not in [w for w, _, _ in submitted]:
                    submitted.append((worker, annotation, revived))
            if len(submitted) < needed:
                continue
            chosen = [(worker, annotation) for worker, annotation, _ in submitted[:needed]]
            result = self._result(task, chosen)
            if result is None:
                self._set_aside_invalid(task, ls_task, chosen, job)
                continue  # back in the queue, for a corrected annotation
            for _, annotation, revived in submitted[:needed]:
                if revived:  # corrected in place: no longer a skip in Label Studio either
                    self.client.update_annotation(annotation["id"], was_cancelled=False)
            del pending[index]
            yield result

    def _result(self, task: Task, submitted: list[tuple[Worker, dict[str, Any]]]) -> ObjectResult | None:
        """The finished data object; None when an annotation is not a valid result (set it aside)."""
        annotations = [a for _, a in submitted]
        try:
            labeled = labeled_from_annotations(task, annotations, self.s3)
            answers = [Answer(worker, answer_content(task, a, self.s3), _time(a), float(a.get("lead_time") or 0.0))
                       for worker, a in submitted]
        except ResultError:
            return None
        except InputError as exc:  # the data object itself cannot be labeled: GT fails it
            log.info("job %s data object %d failed: %s", task.job_name, task.index, exc)
            return ObjectResult(task.index, failure=f"ClientError: {exc}")
        return ObjectResult(task.index, labeled, answers)

    def _set_aside_invalid(self, task: Task, ls_task: dict[str, Any], submitted: list[tuple[Worker, dict[str, Any]]],
                           job: Any) -> None:
        """Mark each annotation that is not a valid result skipped (the task goes back to the queue),
        say why in the task's data, for its labeler, and remember it: edited later (its labeler
        corrects it in place), it is looked at again."""
        reasons = []
        for worker, annotation in submitted:
            try:
                labeled_from_annotations(task, [annotation], self.s3)
                answer_content(task, annotation, self.s3)
            except ResultError as exc:
                reasons.append((worker, annotation, str(exc)))
        if not reasons:  # each is valid alone, not together: all of them go back
            try:
                labeled_from_annotations(task, [a for _, a in submitted], self.s3)
            except ResultError as exc:
                reasons = [(worker, annotation, str(exc)) for worker, annotation in submitted]
            else:
                reasons = [(worker, annotation, "not a valid result") for worker, annotation in submitted]
        set_aside = dict(job.workforce_state.get(SET_ASIDE_KEY) or {})
        # Known as set aside before it is marked skipped: after a crash in between, the next scan
        # finds it changed (no time matches "?") and looks at it again, instead of never.
        job.save_workforce_state(**{SET_ASIDE_KEY: {**set_aside, **{str(a["id"]): "?" for _, a, _ in reasons}}})
        for worker, annotation, reason in reasons:
            log.warning("job %s: annotation %s by %s set aside (skipped): %s", task.job_name, annotation.get("id"),
                        worker.username, reason)
            updated = self.client.update_annotation(annotation["id"], was_cancelled=True)
            set_aside[str(annotation["id"])] = updated.get("updated_at")
        job.save_workforce_state(**{SET_ASIDE_KEY: set_aside})
        note = "; ".join(f"annotation {a.get('id')} by {w.username} set aside: {r}. Open the task from the "
                         "project's Data Manager, correct it and press Update (or submit a new one)"
                         for w, a, r in reasons)
        if note and (ls_task.get("data") or {}).get(SET_ASIDE_KEY) != note:
            # The task's data as imported (task_for_object), not as listed: Label Studio lists media
            # URIs resolved to its own proxy links, which written back would replace the s3:// ones.
            data = task_for_object(task, self.s3)["data"]
            self.client.update_task(ls_task["id"], data={**data, SET_ASIDE_KEY: note})

    def _email(self, user: Any) -> str | None:
        if isinstance(user, dict):
            return user.get("email")
        if user not in self._emails:
            self._emails = {u["id"]: u.get("email", "") for u in self.client.list_users()}
        return self._emails.get(user)


# The task data key that says why an annotation was set aside (shown as a Data Manager column).
SET_ASIDE_KEY = "smgt_set_aside"


def _unreachable(exc: LabelStudioApiError) -> bool:
    """Label Studio is down, restarting or failing (no answer, or a 5xx): worth waiting out."""
    return exc.status_code is None or exc.status_code >= 500


def _time(annotation: dict[str, Any]) -> datetime:
    """When an annotation was submitted (its last update), as UTC."""
    raw = annotation.get("updated_at") or annotation.get("created_at")
    if not raw:
        return datetime.now(UTC)
    moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

