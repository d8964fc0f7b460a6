"""SageMaker's JSON-protocol error shapes, so botocore raises the same ClientError codes as on AWS."""

from __future__ import annotations


class ApiError(Exception):
    """An error returned as `{"__type": code, "message": ...}` with HTTP 400 (SageMaker uses 400 for all
    of these, including throttling; botocore decides on retries from the code, not the status)."""

    code = "InternalFailure"
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> dict[str, str]:
        return {"__type": self.code, "message": self.message}


class ValidationException(ApiError):
    code = "ValidationException"


class ResourceInUse(ApiError):
    code = "ResourceInUse"


class ResourceNotFound(ApiError):
    code = "ResourceNotFound"


class ResourceLimitExceeded(ApiError):
    code = "ResourceLimitExceeded"


class ThrottlingException(ApiError):
    code = "ThrottlingException"


class UnknownOperation(ApiError):
    code = "UnknownOperationException"


class InternalFailure(ApiError):
    code = "InternalFailure"
    status = 500
