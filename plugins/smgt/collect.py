"""CollectOutputSensor: the last task of a labeling job's group in a batch DAG (`wait_for_job`).

It waits for the labeling job to end as `LabelingJobSensor` does (deferred to the triggerer, no
worker slot held), and in the same task, when the job completed, collects its result (output
manifest, label counters) for later levels and batch/show, writes the job's quality report, and
runs the job's QA gate (`qa.gate` / `qaGates`): while data objects fail the gate and rounds remain,
it creates a re-work adjustment job on their high-risk frames (smgt.rework), defers to
`LabelingJobTrigger` again until that job ends, merges its labels into the job's effective output
and scores that again. The result's `effectiveOutputManifestS3Uri` is what later levels chain from;
`rework` (also the XCom `rework`, updated before each wait) lists the rounds, their jobs and why
each data object was sent back. Waiting and collecting in one task saves a task start per job
(issue 13).

Module-level imports stay light (DAG files import this at parse time); the work imports lazily.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from smgt.gt.sensors import LabelingJobSensor

QUALITY_XCOM_KEY = "quality_report"  # wait_for_job: the job's report summary; finalize_batch: the batch's
REWORK_XCOM_KEY = "rework"  # wait_for_job: the QA gate's rounds so far (batch/show)
SENT_BACK_XCOM_LIMIT = 20  # sent-back objects per round kept in XCom; sent-back.json on S3 has all

log = logging.getLogger(__name__)


def s3_storage(settings: Any) -> Any:
    """Manifest storage on S3 through the AWS connection (the emulator or AWS alike)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from smgt.manifests import Storage

    return Storage(S3Hook(aws_conn_id=settings.aws_conn_id).get_conn())


def gt_hook(settings: Any) -> Any:
    from smgt.gt.hooks import LabelingJobHook

    return LabelingJobHook(aws_conn_id=settings.aws_conn_id, region_name=settings.region)


def _level_group(ti: Any) -> str:
    """The level's task group ("level_<n>") of a task of a job group."""
    return ti.task_id.rsplit(".job.", 1)[0]


def job_plan(ti: Any) -> dict[str, Any]:
    """This job's spec from its level's plan_jobs (the mapped group's arguments)."""
    return (ti.xcom_pull(task_ids=f"{_level_group(ti)}.plan_jobs") or [])[ti.map_index]


class CollectOutputSensor(LabelingJobSensor):
    """
    Wait for a labeling job to end (:class:`~smgt.gt.sensors.LabelingJobSensor`), then collect its
    output and run its QA gate's re-work rounds.

    Returns (XCom) the job's result (`smgt.batch.collected_result`) plus, for a job with a QA gate,
    ``rework`` ({"gate", "rounds": [{round, jobName, status, objectsSentBack, framesSentBack,
    sentBack, ...}], "stillFlagged"}) and, when a round ran, ``effectiveOutputManifestS3Uri``.

    Waiting fails as the sensor's does (GT's FailureReason, XCom ``error``). A re-work job that fails
    or is stopped fails the task with GT's reason (no retry can change it); the batch then ends
    INTERNAL_ERROR naming it. Retrying the task is safe: it finds the job ended at its first look,
    every round's files go to fixed keys and its job is adopted (`LabelingJobHook.create_labeling_job`).

    Takes the sensor's parameters (``job_name`` is templated).
    """

    ui_color = "#e8f4ea"

    def execute(self, context: Any) -> dict[str, Any]:
        return self._collect(context, super().execute(context))

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._collect(context, super().execute_complete(context, event))

    def _collect(self, context: Any, summary: dict[str, Any]) -> dict[str, Any]:
        """The job completed (the sensor raised otherwise; `summary` is its final summary)."""
        from smgt.batch import JOB_COMPLETE, result_of_summary
        from smgt.settings import get_settings

        settings = get_settings()
        result = result_of_summary(summary)  # the sensor's last DescribeLabelingJob: no second call
        if result.get("status") != JOB_COMPLETE or not result.get("outputManifestS3Uri"):
            return result
        ti = context["ti"]
        spec = job_plan(ti)
        risk = _job_quality_report(ti, settings, result, spec)
        gate = ((spec["job"].get("qa") or {}).get("gate"))
        if not gate:
            return result
        return self._gate(context, result=result, round_number=1, manifest_uri=result["outputManifestS3Uri"],
                          rounds=[], risk=risk)

    # -- the QA gate's rounds --------------------------------------------------------------------

    def _gate(self, context: Any, *, result: dict[str, Any], round_number: int, manifest_uri: str,
              rounds: list[dict[str, Any]], risk: Any = None) -> dict[str, Any]:
        """Score `manifest_uri` (the job's output as corrected so far) and start the next round, or finish.
        `risk`: its scores when already computed (round 1: the quality report's, of the same output)."""
        from smgt.batch import JOB_RUNNING
        from smgt.gt.hooks import labeling_job_summary
        from smgt.qa import score_job_output
        from smgt.qa.gate import gate_failures
        from smgt.rework import prepare_rework, sent_back_summary
        from smgt.settings import get_settings

        settings = get_settings()
        storage = s3_storage(settings)
        job, gate = self._job(context)
        if risk is None:
            risk = score_job_output(storage, manifest_uri, job.label_attribute, job_name=self.job_name,
                                    count_rules=job.qa.frameAttributeCounts if job.qa else None)
        sent_back = gate_failures(risk, min_risk=gate.minRisk, max_flagged_percent=gate.maxFlaggedPercent)
        if not sent_back or round_number > gate.maxRounds:
            return self._finish(context, result, manifest_uri, rounds, gate, sent_back)
        prepared = prepare_rework(storage, settings=settings, batch_id=self._batch_id(context), job=job,
                                  round_number=round_number, manifest_uri=manifest_uri, sent_back=sent_back)
        name = prepared["jobName"]
        hook = gt_hook(settings)
        created = hook.create_labeling_job(prepared["request"])
        rounds = [*rounds, {
            "round": round_number, "jobName": name, "status": JOB_RUNNING, "adopted": created["adopted"],
            "inputManifestS3Uri": prepared["inputManifestS3Uri"], "sentBackS3Uri": prepared["sentBackS3Uri"],
            # What the resumed task merges into (the XCom is the state across the wait, not the
            # defer kwargs: dag.test() drops those when the trigger fires).
            "manifestS3Uri": manifest_uri, "sentBackLines": [s.line for s in sent_back],
            **sent_back_summary(sent_back, SENT_BACK_XCOM_LIMIT),
        }]
        context["ti"].xcom_push(key=REWORK_XCOM_KEY, value=self._rework(gate, rounds))
        self.log.info("QA gate of %s, round %d: %d data object(s), %d frame(s) sent back to work team in "
                      "adjustment job %s. First: %s", self.job_name, round_number, len(sent_back),
                      rounds[-1]["framesSentBack"], name, rounds[-1]["sentBack"][0])
        summary = labeling_job_summary(hook.describe_labeling_job(name))
        if summary["LabelingJobStatus"] in ("Completed", "Failed", "Stopped"):  # adopted after its end
            return self.execute_rework_complete(context, None)
        from smgt.gt.triggers import LabelingJobTrigger

        delay = max(1, int(settings.poke_interval))
        self.defer(
            trigger=LabelingJobTrigger(job_name=name, waiter_delay=delay, aws_conn_id=settings.aws_conn_id,
                                       region_name=settings.region),
            method_name="execute_rework_complete",
        )
        return result  # not reached: defer() raises TaskDeferred

    def execute_rework_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """A round's adjustment job ended: merge its labels, then score again (`_gate`). The rounds so
        far are this task's XCom `rework`."""
        from airflow.sdk.exceptions import AirflowException, AirflowFailException

        from smgt.batch import JOB_COMPLETE, JOB_FAILED, collected_result
        from smgt.config import rework_label_attribute
        from smgt.gt.hooks import labeling_job_summary
        from smgt.rework import effective_manifest_uri, merge_rework
        from smgt.settings import get_settings

        settings = get_settings()
        ti = context["ti"]
        state = ti.xcom_pull(task_ids=ti.task_id, key=REWORK_XCOM_KEY, map_indexes=ti.map_index) or {}
        rounds: list[dict[str, Any]] = [dict(r) for r in state.get("rounds") or []]
        if not rounds:
            raise AirflowException(f"{self.job_name}: resumed for a re-work round, but no round is recorded "
                                   f"in XCom {REWORK_XCOM_KEY!r}")
        current = rounds[-1]
        job, gate = self._job(context)
        hook = gt_hook(settings)
        description = hook.describe_labeling_job(current["jobName"])
        summary = labeling_job_summary(description)
        status = summary["LabelingJobStatus"]
        if status != "Completed":
            if status in ("Failed", "Stopped"):
                current.update(status=JOB_FAILED, gtStatus=status, failureReason=summary.get("FailureReason"))
                context["ti"].xcom_push(key=REWORK_XCOM_KEY, value=self._rework(gate, rounds))
                raise AirflowFailException(
                    f"re-work job {current['jobName']} (QA gate of {self.job_name}, round {current['round']}) "
                    f"{status}: {summary.get('FailureReason') or 'no reason given'}")
            raise AirflowException(f"waiting for re-work job {current['jobName']} ended while it is {status}: "
                                   f"{(event or {}).get('message')}")
        merged_uri = effective_manifest_uri(settings, self._batch_id(context), self.job_name, current["round"])
        merged = merge_rework(
            s3_storage(settings), manifest_uri=current["manifestS3Uri"], label_attribute=job.label_attribute,
            rework_input_uri=current["inputManifestS3Uri"], rework_output_uri=summary["OutputManifestS3Uri"],
            rework_attribute=rework_label_attribute(job.label_attribute, current["round"]),
            out_manifest_uri=merged_uri, sent_back_lines=current["sentBackLines"])
        done = collected_result(description)
        current.update(status=JOB_COMPLETE, labelCounters=done["labelCounters"],
                       outputManifestS3Uri=done["outputManifestS3Uri"], effectiveOutputManifestS3Uri=merged_uri,
                       **merged)
        self.log.info("Re-work job %s completed: %d line(s), %d frame(s) replaced in %s", current["jobName"],
                      merged["linesReworked"], merged["framesReplaced"], merged_uri)
        return self._gate(context, result=collected_result(hook.describe_labeling_job(self.job_name)),
                          round_number=current["round"] + 1, manifest_uri=merged_uri, rounds=rounds)

    def _finish(self, context: Any, result: dict[str, Any], manifest_uri: str, rounds: list[dict[str, Any]],
                gate: Any, still_flagged: Sequence[Any]) -> dict[str, Any]:
        from smgt.rework import sent_back_summary

        rework = self._rework(gate, rounds)
        rework["stillFlagged"] = sent_back_summary(still_flagged, SENT_BACK_XCOM_LIMIT)
        context["ti"].xcom_push(key=REWORK_XCOM_KEY, value=rework)
        if rounds:
            _rework_into_report(context["ti"], rework)
        if still_flagged:
            self.log.warning("QA gate of %s: %d data object(s) still fail it after %d round(s); the batch goes on "
                             "with them", self.job_name, len(still_flagged), len(rounds))
        out = {**result, "rework": rework}
        if rounds:
            out["effectiveOutputManifestS3Uri"] = manifest_uri
        return out

    @staticmethod
    def _rework(gate: Any, rounds: list[dict[str, Any]]) -> dict[str, Any]:
        return {"gate": gate.model_dump(mode="json"), "rounds": rounds}

    def _job(self, context: Any) -> tuple[Any, Any]:
        from smgt.config import LabelingJobConfig

        job = LabelingJobConfig.model_validate(job_plan(context["ti"])["job"])
        return job, job.qa.gate

    @staticmethod
    def _batch_id(context: Any) -> str:
        return job_plan(context["ti"])["batch_id"]


def _rework_into_report(ti: Any, rework: dict[str, Any]) -> None:
    """Add the QA gate's rounds to the job's quality report JSON, each with every sent-back data
    object, frame and reason (its sent-back.json). Like the report itself, never fails the batch."""
    from smgt.settings import get_settings

    quality = ti.xcom_pull(task_ids=ti.task_id, key=QUALITY_XCOM_KEY, map_indexes=ti.map_index) or {}
    if not quality.get("reportS3Uri"):
        return
    try:
        storage = s3_storage(get_settings())
        report = storage.read_json(quality["reportS3Uri"])
        rounds = []
        for entry in rework["rounds"]:
            full = storage.read_json(entry["sentBackS3Uri"])["sentBack"]
            rounds.append({**{k: v for k, v in entry.items() if k != "sentBackLines"}, "sentBack": full,
                           "sentBackTruncated": False})
        report["rework"] = {**rework, "rounds": rounds}
        storage.write_json(quality["reportS3Uri"], report)
    except Exception:
        log.exception("adding the re-work rounds to the quality report of %s failed", ti.task_id)


def _job_quality_report(ti: Any, settings: Any, result: dict[str, Any], spec: dict[str, Any]) -> Any:
    """Write a completed job's quality report; push its summary (or the error) as XCom `quality_report`;
    return the JobRisk it scored (None when it failed).

    A report that cannot be made is logged and recorded there as `error`: it never fails the job or
    the batch.
    """
    from smgt.config import LabelingJobConfig
    from smgt.qa.report import report_summary, write_job_report_and_risk

    try:
        group = _level_group(ti)
        level = int(group.split("_", 1)[1])
        job = LabelingJobConfig.model_validate(spec["job"])
        sampling = ti.xcom_pull(task_ids=f"{group}.job.create_job", key="sampling", map_indexes=ti.map_index)
        report, risk = write_job_report_and_risk(
            s3_storage(settings),
            job_name=result["jobName"],
            job_level=level,
            output_manifest_uri=result["outputManifestS3Uri"],
            label_attribute=job.label_attribute,
            parent=spec.get("parent"),
            sampling=sampling if isinstance(sampling, dict) else None,
            count_rules=job.qa.frameAttributeCounts if job.qa else None,
        )
        ti.xcom_push(key=QUALITY_XCOM_KEY, value=report_summary(report))
        return risk
    except Exception as error:  # the report is an extra: the batch goes on without it
        log.exception("quality report of job %s failed", result.get("jobName"))
        ti.xcom_push(key=QUALITY_XCOM_KEY, value={"jobName": result.get("jobName"),
                                                  "error": f"{type(error).__name__}: {error}"[:500]})
        return None
