"""CreateLabelingJobOperator: start (or adopt) one Ground Truth labeling job."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.amazon.version_compat import NOTSET, ArgNotSet
from airflow.providers.common.compat.sdk import AirflowFailException

from smgt.gt.hooks import (
    LabelingJobHook,
    error_record,
    gt_error_message,
    is_non_retryable,
    resolve_connection_params,
    workforce_of,
)
from smgt.gt.requests import output_manifest_uri

# XCom key of the GT error a failed try leaves (read by batch/show and the batch's outcome).
ERROR_XCOM_KEY = "error"


def push_error(context: Any, error: BaseException, *, operation: str) -> None:
    """Leave `error_record(error)` in the task's XCom (no-op without a task instance)."""
    ti = context.get("ti") if hasattr(context, "get") else None
    if ti is not None:
        ti.xcom_push(key=ERROR_XCOM_KEY, value=error_record(error, operation=operation))

if TYPE_CHECKING:
    from airflow.sdk import Context


class CreateLabelingJobOperator(AwsBaseOperator[LabelingJobHook]):
    """
    Create a SageMaker Ground Truth labeling job, adopting an identical job of the same name.

    Thin by design: the request is built by
    :func:`smgt.gt.requests.build_create_labeling_job_request` (or by hand) and passed as is;
    waiting is :class:`smgt.gt.sensors.LabelingJobSensor`'s job. Re-running the task is safe: the
    job created by an earlier try is adopted (see :meth:`LabelingJobHook.create_labeling_job`).

    Returns (and pushes as XCom) ``{"LabelingJobName", "LabelingJobArn", "OutputManifestS3Uri",
    "adopted"}``.

    Fails fast: an error no retry can fix (:func:`smgt.gt.hooks.is_non_retryable`: validation,
    access denied, resource limits, the name taken by a different job) fails the task at once with
    GT's message (``AirflowFailException``: no task retries). Throttling, 5xx and network errors are
    retried by botocore and then by the task's retries. Either way GT's error is left in XCom under
    ``error`` (``{"operation", "code", "message", "retryable"}``).

    :param request: Keyword arguments of ``CreateLabelingJob``. (templated)
    :param aws_conn_id: The Airflow connection used for AWS credentials.
        (default: ``SMGT_AWS_CONN_ID``, else ``aws_default``)
    :param region_name: AWS region_name. (default: ``SMGT_REGION``, the region the request's ARNs
        were built for)
    :param verify: Whether or not to verify SSL certificates. See:
        https://boto3.amazonaws.com/v1/documentation/api/latest/reference/core/session.html
    :param botocore_config: Configuration dictionary (key-values) for botocore client. See:
        https://botocore.amazonaws.com/v1/documentation/api/latest/reference/config.html
    """

    aws_hook_class = LabelingJobHook
    template_fields: Sequence[str] = aws_template_fields("request")
    template_fields_renderers = {"request": "json"}
    ui_color = "#ededed"

    def __init__(
        self,
        *,
        request: dict[str, Any],
        aws_conn_id: str | None | ArgNotSet = NOTSET,
        region_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        conn_id, region = resolve_connection_params(aws_conn_id, region_name)
        super().__init__(aws_conn_id=conn_id, region_name=region, **kwargs)
        self.request = request

    def execute(self, context: Context) -> dict[str, Any]:
        result = create_or_adopt_labeling_job(self.hook, self.request, context)
        # Who labels it (a person wants to know where to go while the job runs): one Describe.
        if workforce := workforce_of(self.hook.describe_labeling_job(result["LabelingJobName"])):
            result["Workforce"] = workforce
        return result


def create_or_adopt_labeling_job(hook: LabelingJobHook, request: dict[str, Any], context: Any) -> dict[str, Any]:
    """CreateLabelingJob with `request` (an earlier try's identical job adopted), failing fast on a GT
    error no retry can fix; shared with operators that create the job as one step of their own.

    Returns ``{"LabelingJobName", "LabelingJobArn", "OutputManifestS3Uri", "adopted"}``. Raises
    ``AirflowFailException`` for an error no retry can fix, else GT's error as is; either way GT's
    error is left in XCom ``error`` (operation ``CreateLabelingJob``).
    """
    try:
        created = hook.create_labeling_job(request)
    except Exception as error:
        push_error(context, error, operation="CreateLabelingJob")
        if is_non_retryable(error):
            name = request.get("LabelingJobName")
            raise AirflowFailException(
                f"CreateLabelingJob {name} failed with an error no retry can fix: {gt_error_message(error)}"
            ) from error
        raise
    return {
        "LabelingJobName": created["LabelingJobName"],
        "LabelingJobArn": created["LabelingJobArn"],
        "OutputManifestS3Uri": output_manifest_uri(request["OutputConfig"]["S3OutputPath"], created["LabelingJobName"]),
        "adopted": created["adopted"],
    }
