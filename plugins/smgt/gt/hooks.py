"""LabelingJobHook: SageMaker Ground Truth labeling jobs, in the amazon provider's hook style.

The provider's `SageMakerHook` has nothing for labeling jobs and its `non_terminal_states` misses
`Initializing`; it also builds S3 and CloudWatch Logs hooks in its constructor that labeling jobs
never use. This hook therefore extends `AwsBaseHook` directly with `client_type="sagemaker"`, so
the client (sync boto3 and async aiobotocore alike) is built from the Airflow connection: its
credentials, region, `endpoint_url` (how the local emulator is reached) and botocore config.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.providers.amazon.version_compat import ArgNotSet
from airflow.providers.common.compat.sdk import AirflowException
from botocore.config import Config
from botocore.exceptions import ClientError

from smgt.gt.requests import output_manifest_uri
from smgt.settings import get_settings

# Throttling and transient errors (5xx, timeouts, connection resets) are retried by botocore with
# exponential backoff and jitter. Retrying CreateLabelingJob is safe: if an earlier attempt did
# create the job, the retry fails with ResourceInUse and `create_labeling_job` adopts the job.
DEFAULT_RETRY_CONFIG: dict[str, Any] = {"mode": "standard", "total_max_attempts": 10}

NON_TERMINAL_STATES = frozenset({"Initializing", "InProgress", "Stopping"})
SUCCESS_STATES = frozenset({"Completed"})
FAILED_STATES = frozenset({"Failed", "Stopped"})
TERMINAL_STATES = SUCCESS_STATES | FAILED_STATES

WAITER_NAME = "LabelingJobComplete"


class LabelingJobConflictError(AirflowException):
    """A labeling job of the requested name exists with a different configuration."""


# Error codes no retry can fix: the same request gets the same answer until a person changes the
# request, the permissions or the quota. Everything else (throttling, 5xx, timeouts, connection
# errors, and codes not listed here) is left to botocore's retries and then the task's retries.
# Sources: the API's common errors, https://docs.aws.amazon.com/sagemaker/latest/APIReference/CommonErrors.html
# (AccessDeniedException, IncompleteSignature, InvalidAction, InvalidClientTokenId, NotAuthorized,
# OptInRequired, ValidationError); SageMaker's modelled errors in botocore's service model
# (ValidationException; ResourceLimitExceeded, ResourceInUse and ResourceNotFound, the errors of
# CreateLabelingJob / DescribeLabelingJob / StopLabelingJob); botocore's own retry lists
# (botocore/retries/standard.py: throttling codes such as ThrottlingException and transient ones
# such as RequestTimeout are retried, so none of them is here); S3's error responses
# (https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html: NoSuchKey, NoSuchBucket,
# AccessDenied) for tasks that read S3.
NON_RETRYABLE_ERROR_CODES = frozenset({
    "ValidationException", "ValidationError",
    "AccessDeniedException", "AccessDenied", "NotAuthorized", "UnauthorizedOperation",
    "InvalidClientTokenId", "UnrecognizedClientException", "IncompleteSignature", "SignatureDoesNotMatch",
    "OptInRequired", "InvalidAction",
    "ResourceLimitExceeded", "ResourceInUse", "ResourceNotFound",
    "NoSuchKey", "NoSuchBucket",
})


def error_code(error: BaseException) -> str | None:
    """The AWS error code of a botocore ClientError, else None."""
    if isinstance(error, ClientError):
        return error.response.get("Error", {}).get("Code") or None
    return None


def is_non_retryable(error: BaseException) -> bool:
    """True for errors a retry cannot fix: NON_RETRYABLE_ERROR_CODES (answers below HTTP 500), a
    request botocore refuses to send, or a job name taken by a different job."""
    from botocore.exceptions import ParamValidationError

    if isinstance(error, LabelingJobConflictError | ParamValidationError):
        return True
    if isinstance(error, ClientError):
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 400
        return error_code(error) in NON_RETRYABLE_ERROR_CODES and int(status) < 500
    return False


def gt_error_message(error: BaseException) -> str:
    """`<Code>: <GT's message>` of a ClientError (GT's own words), else the exception's text."""
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        return f"{details.get('Code', 'Error')}: {details.get('Message') or error}"
    return str(error)


def error_record(error: BaseException, *, operation: str) -> dict[str, Any]:
    """What a failed GT call leaves in XCom (key `error`) for batch/show and the batch's outcome."""
    return {
        "operation": operation,
        "code": error_code(error) or type(error).__name__,
        "message": gt_error_message(error),
        "retryable": not is_non_retryable(error),
    }


def task_type_from_lambda_arn(arn: str | None) -> str | None:
    """GT task type from a built-in pre-human-task Lambda ARN (`...:function:PRE-{TaskType}`)."""
    if not arn:
        return None
    function = arn.rsplit(":function:", 1)[-1].split(":", 1)[0]
    return function.removeprefix("PRE-") if function.startswith("PRE-") else function


def _manifest_uri(request_or_description: dict[str, Any]) -> str | None:
    source = request_or_description.get("InputConfig", {}).get("DataSource", {})
    return source.get("S3DataSource", {}).get("ManifestS3Uri")


def labeling_job_differences(request: dict[str, Any], description: dict[str, Any]) -> list[str]:
    """What makes an existing job (DescribeLabelingJob) differ from a CreateLabelingJob request.

    Only what decides whether the existing job labels the same data the same way is compared:
    the input manifest, the label attribute it writes and the task type (from the Lambda ARN).
    """
    checks = (
        ("input manifest", _manifest_uri(request), _manifest_uri(description)),
        ("label attribute", request.get("LabelAttributeName"), description.get("LabelAttributeName")),
        (
            "task type",
            task_type_from_lambda_arn(request.get("HumanTaskConfig", {}).get("PreHumanTaskLambdaArn")),
            task_type_from_lambda_arn(description.get("HumanTaskConfig", {}).get("PreHumanTaskLambdaArn")),
        ),
    )
    return [
        f"{what}: existing {existing!r}, requested {wanted!r}"
        for what, wanted, existing in checks
        if wanted != existing
    ]


# The local Ground Truth tags each job with who labels it (GT itself has no such field).
LOCAL_WORKFORCE_TAG = "smgt-local:workforce"


def workforce_of(description: dict[str, Any]) -> str | None:
    """Who labels a job: `labelstudio` or `simulated` on the local Ground Truth (its tag), else the
    work team from the ARN, e.g. `private-crowd/smgt-workflows-first-level` (GT's workforce types:
    private-crowd, vendor-crowd, public-crowd)."""
    for tag in description.get("Tags") or []:
        if tag.get("Key") == LOCAL_WORKFORCE_TAG:
            return tag.get("Value")
    arn = (description.get("HumanTaskConfig") or {}).get("WorkteamArn") or ""
    return arn.split(":workteam/", 1)[1] if ":workteam/" in arn else None


def labeling_job_summary(description: dict[str, Any]) -> dict[str, Any]:
    """JSON-ready summary of a DescribeLabelingJob response (for XCom and trigger events)."""
    name = description["LabelingJobName"]
    output = description.get("LabelingJobOutput") or {}
    manifest = output.get("OutputDatasetS3Uri")
    if not manifest and description.get("OutputConfig", {}).get("S3OutputPath"):
        # GT only fills LabelingJobOutput once the job has produced output; the location is fixed.
        manifest = output_manifest_uri(description["OutputConfig"]["S3OutputPath"], name)
    summary: dict[str, Any] = {
        "LabelingJobName": name,
        "LabelingJobArn": description.get("LabelingJobArn"),
        "LabelingJobStatus": description.get("LabelingJobStatus"),
        "LabelCounters": dict(description.get("LabelCounters") or {}),
        "OutputManifestS3Uri": manifest,
    }
    if description.get("FailureReason"):
        summary["FailureReason"] = description["FailureReason"]
    if workforce := workforce_of(description):
        summary["Workforce"] = workforce
    return summary


def _error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def _is_name_taken(error: ClientError) -> bool:
    code = _error_code(error)
    message = error.response.get("Error", {}).get("Message", "").lower()
    return code == "ResourceInUse" or (code == "ValidationException" and "already exists" in message)


def _is_not_found(error: ClientError) -> bool:
    code = _error_code(error)
    message = error.response.get("Error", {}).get("Message", "").lower()
    return code == "ResourceNotFound" or (
        code == "ValidationException" and ("could not find" in message or "does not exist" in message)
    )


def calling_class(function_name: str) -> str | None:
    """The class of the innermost frame of this thread's stack running a method `function_name`
    (e.g. the operator whose ``execute`` is running), walked with ``sys._getframe``: what the
    provider's ``AwsGenericHook._find_operator_class_name`` finds with ``inspect.stack()``, which
    also reads every frame's source file and costs ~0.3 s of CPU in a task process."""
    import sys

    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == function_name:
            owner = frame.f_locals.get("self")
            return type(owner).__name__ if owner is not None else None
        frame = frame.f_back
    return None


class FastCallerMixin:
    """For an amazon provider hook: the ``Caller/<operator>`` of its client's user agent found
    without ``inspect.stack()`` (`calling_class`). The provider computes it for every client it
    builds; in the load test that was 12 % of the Celery worker's CPU (bench/load_test.py)."""

    def _get_caller(self, target_function_name: str = "execute") -> str:
        caller = calling_class(target_function_name)
        if caller == "BaseSensorOperator":  # as the provider does: then what called poke
            caller = calling_class("poke")
        return caller or "Unknown"


class AwsHook(FastCallerMixin, AwsBaseHook):
    """``AwsBaseHook`` (pass ``client_type``) with `FastCallerMixin`: the client of any AWS service
    this project calls besides SageMaker (S3, SNS, SQS, STS)."""


class LabelingJobHook(FastCallerMixin, AwsBaseHook):
    """
    Interact with Amazon SageMaker Ground Truth labeling jobs.

    Provide thick wrapper around :external+boto3:py:class:`boto3.client("sagemaker") <SageMaker.Client>`
    for labeling jobs: idempotent create, describe, stop and list, and the custom
    ``LabelingJobComplete`` waiter (``waiters/labeling_job.json``).

    Unless the hook's ``config`` or the connection's ``config_kwargs`` set ``retries``, the client
    retries throttling and transient errors in botocore's ``standard`` mode (10 attempts).

    Additional arguments (such as ``aws_conn_id``) may be specified and
    are passed down to the underlying AwsBaseHook.

    .. seealso::
        - :class:`airflow.providers.amazon.aws.hooks.base_aws.AwsBaseHook`
    """

    non_terminal_states = NON_TERMINAL_STATES
    success_states = SUCCESS_STATES
    failed_states = FAILED_STATES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["client_type"] = "sagemaker"
        super().__init__(*args, **kwargs)

    @property
    def config(self) -> Config:
        """Botocore config of the connection/hook, with retries on throttling unless configured."""
        config = super().config
        if config.retries is None:
            config = config.merge(Config(retries=dict(DEFAULT_RETRY_CONFIG)))
        return config

    @cached_property
    def waiter_path(self) -> Path:
        return Path(__file__).parent / "waiters" / "labeling_job.json"

    def create_labeling_job(self, request: dict[str, Any]) -> dict[str, Any]:
        """
        Create a labeling job, or adopt the existing job of the same name.

        GT keeps job names unique per account and region forever, so a retried task (or a
        botocore retry whose first attempt did reach GT) finds its own job already there. That
        job is adopted when its input manifest, label attribute and task type match the request;
        otherwise :class:`LabelingJobConflictError` names what differs.

        :param request: keyword arguments of ``CreateLabelingJob``
            (see :func:`smgt.gt.requests.build_create_labeling_job_request`).
        :return: ``{"LabelingJobName", "LabelingJobArn", "adopted"}``
        """
        name = request["LabelingJobName"]
        try:
            response = self.conn.create_labeling_job(**request)
        except ClientError as error:
            if not _is_name_taken(error):
                raise
            self.log.info("Labeling job %s already exists; checking whether it can be adopted.", name)
            description = self.describe_labeling_job(name)
            differences = labeling_job_differences(request, description)
            if differences:
                raise LabelingJobConflictError(
                    f"A Ground Truth labeling job named {description['LabelingJobName']!r} already exists "
                    f"with a different configuration ({'; '.join(differences)}). GT keeps job names "
                    "unique per account and region forever: choose another jobName."
                ) from error
            status = description.get("LabelingJobStatus")
            if status in FAILED_STATES:
                self.log.warning("Adopted labeling job %s has already ended %s.", name, status)
            else:
                self.log.info("Adopted existing labeling job %s (status %s).", name, status)
            return {
                "LabelingJobName": description["LabelingJobName"],
                "LabelingJobArn": description["LabelingJobArn"],
                "adopted": True,
            }
        self.log.info("Created labeling job %s: %s", name, response["LabelingJobArn"])
        return {"LabelingJobName": name, "LabelingJobArn": response["LabelingJobArn"], "adopted": False}

    def describe_labeling_job(self, name: str) -> dict[str, Any]:
        """Return the DescribeLabelingJob response (without ``ResponseMetadata``)."""
        response = self.conn.describe_labeling_job(LabelingJobName=name)
        response.pop("ResponseMetadata", None)
        return response

    def stop_labeling_job(self, name: str) -> bool:
        """
        Ask GT to stop a labeling job; a job that already ended (or never existed) is left alone.

        :return: True if a stop request was accepted, False if there was nothing to stop.
        """
        try:
            self.conn.stop_labeling_job(LabelingJobName=name)
        except ClientError as error:
            if _is_not_found(error):
                self.log.info("Labeling job %s does not exist; nothing to stop.", name)
                return False
            # GT rejects stopping a job that is no longer running; check instead of parsing messages.
            try:
                status = self.describe_labeling_job(name).get("LabelingJobStatus")
            except ClientError:
                raise error from None
            if status in TERMINAL_STATES or status == "Stopping":
                self.log.info("Labeling job %s is already %s; nothing to stop.", name, status)
                return False
            raise
        self.log.info("Requested stop of labeling job %s.", name)
        return True

    def list_labeling_jobs(self, **kwargs: Any) -> list[dict[str, Any]]:
        """
        Return every LabelingJobSummary matching the ``ListLabelingJobs`` filters in ``kwargs``.

        :param kwargs: e.g. ``NameContains``, ``StatusEquals``, ``CreationTimeAfter``.
        """
        paginator = self.conn.get_paginator("list_labeling_jobs")
        jobs: list[dict[str, Any]] = []
        for page in paginator.paginate(**kwargs):
            jobs.extend(page.get("LabelingJobSummaryList", []))
        return jobs

    def labeling_job_exists(self, name: str) -> bool:
        """Whether GT knows a labeling job of this name (names are case-insensitive)."""
        try:
            self.describe_labeling_job(name)
        except ClientError as error:
            if _is_not_found(error):
                return False
            raise
        return True


def resolve_connection_params(aws_conn_id: str | None | ArgNotSet, region_name: str | None) -> tuple[str | None, str]:
    """Connection id and region for a GT task: explicit values, else the smgt settings.

    The region defaults to `Settings.region` (not the connection's) because the request builder
    derives the Lambda and UI ARNs from it: the job must be created and watched in that region.
    """
    settings = get_settings()
    conn_id = settings.aws_conn_id if isinstance(aws_conn_id, ArgNotSet) else aws_conn_id
    return conn_id, region_name or settings.region
