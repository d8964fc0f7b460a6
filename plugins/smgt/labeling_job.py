"""BatchLabelingJobOperator: one labeling job of a batch DAG, from its input to its collected output.

One deferrable task per job (`level_<n>.labeling_job`, a mapped task named by jobName in the UI):

1. prepare the job's input (the chained, down-sampled input manifest, the audit's label category
   config, the UI template: `smgt.batch.prepare_job_input`) and create the GT labeling job from it
   (`smgt.gt.operators.create_or_adopt_labeling_job`);
2. wait for the job to end as `LabelingJobSensor` does (deferred to the triggerer, no worker slot
   held), starting from the DescribeLabelingJob the create step made;
3. when it completed, collect its result (output manifest, label counters) for later levels and
   batch/show, write its quality report, and run its QA gate (`qa.gate` / `qaGates`): while data
   objects fail the gate and rounds remain, create a re-work adjustment job on their high-risk
   frames (smgt.rework), defer to `LabelingJobTrigger` again until that job ends, merge its labels
   into the job's effective output and score that again. The result's
   `effectiveOutputManifestS3Uri` is what later levels chain from; `rework` (also the XCom
   `rework`, updated before each wait) lists the rounds, their jobs and why each data object was
   sent back.

Each step is idempotent (fixed keys, a seeded sample, an earlier try's GT job adopted by name and
request, every round's files at fixed keys), so a retry, or a worker killed anywhere, redoes the
steps and adopts what exists. One task instead of three starts (create, wait, resume) saves two
worker starts per job, each seconds under load (issue 13): the task runs on a worker twice, before
and after the wait.

Module-level imports stay light (DAG files import this at parse time); the work imports lazily.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from smgt.gt.sensors import LabelingJobSensor

QUALITY_XCOM_KEY = "quality_report"  # labeling_job: the job's report summary; finalize_batch: the batch's
REWORK_XCOM_KEY = "rework"  # labeling_job: the QA gate's rounds so far (batch/show)
CREATED_XCOM_KEY = "created"  # labeling_job: GT's answer to CreateLabelingJob (the job runs in GT)
# The prepared input (batch/show and the quality report), pushed before the job is created.
PREPARED_XCOM_KEYS = ("request", "inputManifestS3Uri", "labelCategoryS3Uri", "downSamplingRate", "sampling")
SENT_BACK_XCOM_LIMIT = 20  # sent-back objects per round kept in XCom; sent-back.json on S3 has all

log = logging.getLogger(__name__)


def s3_storage(settings: Any) -> Any:
    """Manifest storage on S3 through the AWS connection (the emulator or AWS alike)."""
    from smgt.gt.hooks import AwsHook
    from smgt.manifests import Storage

    return Storage(AwsHook(aws_conn_id=settings.aws_conn_id, client_type="s3").get_conn())


def gt_hook(settings: Any) -> Any:
    from smgt.gt.hooks import LabelingJobHook

    return LabelingJobHook(aws_conn_id=settings.aws_conn_id, region_name=settings.region)


class BatchLabelingJobOperator(LabelingJobSensor):
    """
    Prepare a batch job's input, create (or adopt) its Ground Truth labeling job, wait for it in the
    triggerer, then collect its output and run its QA gate's re-work rounds.

    Returns (XCom) the job's result (`smgt.batch.collected_result`) plus, for a job with a QA gate,
    ``rework`` ({"gate", "rounds": [{round, jobName, status, objectsSentBack, framesSentBack,
    sentBack, ...}], "stillFlagged"}) and, when a round ran, ``effectiveOutputManifestS3Uri``.
    Other XComs: the prepared input (``request``, ``inputManifestS3Uri``, ``labelCategoryS3Uri``,
    ``downSamplingRate``, ``sampling``: the down-sampling summary of a chained job, else None),
    ``created`` (what :class:`~smgt.gt.operators.CreateLabelingJobOperator` returns: the job runs in
    GT), ``quality_report`` and ``rework``.

    Fails fast (no retries) when no retry can help: a parent output that is not a usable manifest, a
    request that cannot be built, S3 answering NoSuchKey / AccessDenied, GT refusing the request, a
    job that ended Failed or Stopped (GT's FailureReason), a re-work job that failed or was stopped.
    GT's words are left in XCom ``error`` with the ``operation`` that failed ("prepare_input",
    "CreateLabelingJob", "wait_for_job"); the batch then ends INTERNAL_ERROR naming the job.

    :param batch_id: The batch's id. (templated)
    :param job_name: The labeling job's name. (templated)
    :param job: The job's config (``smgt.config.LabelingJobConfig`` as JSON). (templated)
    :param parent: The collected result of the job it chains from, or None. (templated)
    :param rate: The down-sampling rate in percent (0 < rate <= 100), or None. (templated)

    Also takes :class:`~smgt.gt.sensors.LabelingJobSensor`'s parameters, except ``deferrable``:
    waiting can take days, so it always waits in the triggerer, never holding a worker slot,
    whatever ``[operators] default_deferrable`` says (Airflow ships it False); its QA gate's re-work
    rounds wait there too.
    """

    template_fields: Sequence[str] = (*LabelingJobSensor.template_fields, "batch_id", "job", "parent", "rate")
    template_fields_renderers = {"job": "json", "parent": "json"}
    ui_color = "#e8f4ea"

    def __init__(self, *, batch_id: str, job_name: str, job: dict[str, Any], parent: dict[str, Any] | None,
                 rate: float | None, **kwargs: Any) -> None:
        kwargs.pop("deferrable", None)
        super().__init__(job_name=job_name, deferrable=True, **kwargs)
        self.batch_id, self.job, self.parent, self.rate = batch_id, job, parent, rate
        self._described: dict[str, Any] | None = None  # the create step's DescribeLabelingJob answer

    def execute(self, context: Any) -> dict[str, Any]:
        self._described = self._prepare_and_create(context)
        return self._collect(context, super().execute(context))

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._collect(context, super().execute_complete(context, event))

    def first_look(self, context: Any) -> dict[str, Any]:
        described, self._described = self._described, None
        return described if described is not None else super().first_look(context)

    # -- input and CreateLabelingJob -------------------------------------------------------------

    def _prepare_and_create(self, context: Any) -> dict[str, Any]:
        """Prepare the input, create (or adopt) the job; return its DescribeLabelingJob answer."""
        from smgt.gt.hooks import workforce_of
        from smgt.gt.operators import create_or_adopt_labeling_job

        ti = context["ti"]
        prepared = self._prepare(context)
        for key in PREPARED_XCOM_KEYS:
            ti.xcom_push(key=key, value=prepared.get(key))
        created = create_or_adopt_labeling_job(self.hook, prepared["request"], context)
        # Who labels it (a person wants to know where to go while the job runs), and the wait's
        # first look at its status: one Describe.
        described = self.hook.describe_labeling_job(created["LabelingJobName"])
        if workforce := workforce_of(described):
            created["Workforce"] = workforce
        ti.xcom_push(key=CREATED_XCOM_KEY, value=created)
        return described

    def _prepare(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from smgt.batch import prepare_job_input
        from smgt.gt.hooks import gt_error_message, is_non_retryable
        from smgt.gt.operators import push_error
        from smgt.gt.requests import RequestBuildError
        from smgt.manifests import ManifestError
        from smgt.settings import get_settings

        settings = get_settings()
        try:
            return prepare_job_input(self._spec(), settings=settings, storage=s3_storage(settings))
        except Exception as error:
            push_error(context, error, operation="prepare_input")
            if isinstance(error, ManifestError | RequestBuildError) or is_non_retryable(error):
                raise AirflowFailException(
                    f"job {self.job_name}: its input cannot be prepared: {gt_error_message(error)}"
                ) from error
            raise

    def _spec(self) -> dict[str, Any]:
        """The job's plan, as its level's plan_jobs gave it (`smgt.batch.plan_level`)."""
        return {"batch_id": self.batch_id, "job_name": self.job_name, "job": self.job, "parent": self.parent,
                "rate": self.rate}

    # -- output, quality report ------------------------------------------------------------------

    def _collect(self, context: Any, summary: dict[str, Any]) -> dict[str, Any]:
        """The job completed (the sensor raised otherwise; `summary` is its final summary)."""
        from smgt.batch import JOB_COMPLETE, result_of_summary
        from smgt.settings import get_settings

        settings = get_settings()
        result = result_of_summary(summary)  # the sensor's last DescribeLabelingJob: no second call
        if result.get("status") != JOB_COMPLETE or not result.get("outputManifestS3Uri"):
            return result
        ti = context["ti"]
        risk = _job_quality_report(ti, settings, result, self._spec())
        gate = ((self.job.get("qa") or {}).get("gate"))
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
        prepared = prepare_rework(storage, settings=settings, batch_id=self.batch_id, job=job,
                                  round_number=round_number, manifest_uri=manifest_uri, sent_back=sent_back)
        name = prepared["jobName"]
        hook = self.hook  # the connection and region the wait uses
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
        hook = self.hook
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
        merged_uri = effective_manifest_uri(settings, self.batch_id, self.job_name, current["round"])
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

        job = LabelingJobConfig.model_validate(self.job)
        return job, job.qa.gate


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
        job = LabelingJobConfig.model_validate(spec["job"])
        sampling = ti.xcom_pull(task_ids=ti.task_id, key="sampling", map_indexes=ti.map_index)
        report, risk = write_job_report_and_risk(
            s3_storage(settings),
            job_name=result["jobName"],
            job_level=job.jobLevel,
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
