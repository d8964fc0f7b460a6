"""PrepareAndCreateLabelingJobOperator: the first task of a labeling job's group in a batch DAG.

One task prepares the job's input (the chained, down-sampled input manifest, the audit's label
category config, the UI template: `smgt.batch.prepare_job_input`) and creates the GT labeling job
from it (`CreateLabelingJobOperator`). Both halves are idempotent (fixed keys, a seeded sample, an
earlier try's job adopted), so a retry or a worker killed between them redoes the first and adopts
the second; one task instead of two saves a task start per job (issue 13).

Module-level imports stay light (DAG files import this at parse time); the work imports lazily.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from smgt.gt.operators import CreateLabelingJobOperator

# XComs of create_job besides its return value (read by batch/show and the quality report).
PREPARED_XCOM_KEYS = ("request", "inputManifestS3Uri", "labelCategoryS3Uri", "downSamplingRate", "sampling")


class PrepareAndCreateLabelingJobOperator(CreateLabelingJobOperator):
    """
    Prepare a batch job's input, then create (or adopt) its Ground Truth labeling job.

    Returns what :class:`~smgt.gt.operators.CreateLabelingJobOperator` returns and leaves the
    prepared input in XCom: ``request`` (the CreateLabelingJob request), ``inputManifestS3Uri``,
    ``labelCategoryS3Uri``, ``downSamplingRate`` and ``sampling`` (the down-sampling summary of a
    chained job, else None).

    Fails fast (no retries) when no retry can help: a parent output that is not a usable manifest,
    a request that cannot be built, S3 answering NoSuchKey / AccessDenied, or GT refusing the
    request. The error is left in XCom (``error``, ``operation`` "prepare_input" or
    "CreateLabelingJob") for batch/show.

    :param batch_id: The batch's id. (templated)
    :param job_name: The labeling job's name. (templated)
    :param job: The job's config (``smgt.config.LabelingJobConfig`` as JSON). (templated)
    :param parent: The collected result of the job it chains from, or None. (templated)
    :param rate: The down-sampling rate in percent (0 < rate <= 100), or None. (templated)
    """

    # The request is built at run time (XCom `request`), so it is not a template field here.
    template_fields: Sequence[str] = (
        *(f for f in CreateLabelingJobOperator.template_fields if f != "request"),
        "batch_id", "job_name", "job", "parent", "rate")
    template_fields_renderers = {"job": "json", "parent": "json"}

    def __init__(self, *, batch_id: str, job_name: str, job: dict[str, Any], parent: dict[str, Any] | None,
                 rate: float | None, **kwargs: Any) -> None:
        super().__init__(request={}, **kwargs)
        self.batch_id, self.job_name, self.job, self.parent, self.rate = batch_id, job_name, job, parent, rate

    def execute(self, context: Any) -> dict[str, Any]:
        prepared = self._prepare(context)
        for key in PREPARED_XCOM_KEYS:
            context["ti"].xcom_push(key=key, value=prepared.get(key))
        self.request = prepared["request"]
        return super().execute(context)

    def _prepare(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from smgt.batch import prepare_job_input
        from smgt.collect import s3_storage
        from smgt.gt.hooks import gt_error_message, is_non_retryable
        from smgt.gt.operators import push_error
        from smgt.gt.requests import RequestBuildError
        from smgt.manifests import ManifestError
        from smgt.settings import get_settings

        settings = get_settings()
        spec = {"batch_id": self.batch_id, "job_name": self.job_name, "job": self.job, "parent": self.parent,
                "rate": self.rate}
        try:
            return prepare_job_input(spec, settings=settings, storage=s3_storage(settings))
        except Exception as error:
            push_error(context, error, operation="prepare_input")
            if isinstance(error, ManifestError | RequestBuildError) or is_non_retryable(error):
                raise AirflowFailException(
                    f"job {self.job_name}: its input cannot be prepared: {gt_error_message(error)}"
                ) from error
            raise
