"""Minimal S3 access used by validation, the workforces and the outputs (GT reads and writes S3 too).

Calls ride out an outage of the S3 store (a restart of SeaweedFS, a network blip) for up to
`OUTAGE_SECONDS`: connection errors, timeouts and 5xx answers are retried with backoff (tenacity), on
top of botocore's own retries. Answers that name a problem (NoSuchKey, AccessDenied, ...) are not
retried: they reach the caller at once, and a data object whose input is missing fails as on GT.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError, ConnectionError, HTTPClientError
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

from smgt.config import parse_s3_uri

OUTAGE_SECONDS = 600.0


def is_transient(exc: BaseException) -> bool:
    """An S3 failure that says nothing about the request: the store was unreachable or failed."""
    if isinstance(exc, ConnectionError | HTTPClientError):
        return True
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return status >= 500 or exc.response.get("Error", {}).get("Code") in ("SlowDown", "InternalError")
    return False


class S3:
    def __init__(self, client: Any, *, outage_seconds: float = OUTAGE_SECONDS) -> None:
        self.client = client
        self.outage_seconds = outage_seconds

    def _retry(self, call: Any) -> Any:
        retrying = Retrying(retry=retry_if_exception(is_transient), stop=stop_after_delay(self.outage_seconds),
                            wait=wait_exponential(multiplier=0.5, max=10.0), reraise=True)
        return retrying(call)

    def _call(self, method: str, **kwargs: Any) -> Any:
        return self._retry(lambda: getattr(self.client, method)(**kwargs))

    def get_bytes(self, uri: str) -> bytes:
        bucket, key = parse_s3_uri(uri)
        # The body is read inside the retry: a store dying mid-read is retried too.
        return self._retry(lambda: self.client.get_object(Bucket=bucket, Key=key)["Body"].read())

    def get_text(self, uri: str) -> str:
        return self.get_bytes(uri).decode("utf-8")

    def get_json(self, uri: str) -> Any:
        return json.loads(self.get_bytes(uri))

    def exists(self, uri: str) -> bool:
        bucket, key = parse_s3_uri(uri)
        try:
            self._call("head_object", Bucket=bucket, Key=key)
            return True
        except ClientError:
            return False

    def bucket_exists(self, bucket: str) -> bool:
        try:
            self._call("head_bucket", Bucket=bucket)
            return True
        except ClientError:
            return False

    def put_bytes(self, uri: str, body: bytes, content_type: str = "application/octet-stream") -> None:
        """One PutObject: S3 publishes an object whole or not at all, so a reader (or a crash of
        either side) never sees it half-written; an interrupted overwrite leaves the old version."""
        bucket, key = parse_s3_uri(uri)
        self._call("put_object", Bucket=bucket, Key=key, Body=body, ContentType=content_type)

    def put_json(self, uri: str, data: Any) -> None:
        self.put_bytes(uri, json.dumps(data).encode(), "application/json")

    def put_lines(self, uri: str, lines: list[dict[str, Any]]) -> None:
        body = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines)
        self.put_bytes(uri, body.encode(), "application/jsonlines")

    def list_keys(self, bucket: str, prefix: str) -> list[str]:
        keys: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
        return keys
