"""Minimal S3 access used by validation and the simulated workforce (GT reads and writes S3 too)."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from smgt.config import parse_s3_uri


class S3:
    def __init__(self, client: Any) -> None:
        self.client = client

    def get_bytes(self, uri: str) -> bytes:
        bucket, key = parse_s3_uri(uri)
        return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()

    def get_text(self, uri: str) -> str:
        return self.get_bytes(uri).decode("utf-8")

    def get_json(self, uri: str) -> Any:
        return json.loads(self.get_bytes(uri))

    def exists(self, uri: str) -> bool:
        bucket, key = parse_s3_uri(uri)
        try:
            self.client.head_object(Bucket=bucket, Key=key)
            return True
        except ClientError:
            return False

    def bucket_exists(self, bucket: str) -> bool:
        try:
            self.client.head_bucket(Bucket=bucket)
            return True
        except ClientError:
            return False

    def put_bytes(self, uri: str, body: bytes, content_type: str = "application/octet-stream") -> None:
        bucket, key = parse_s3_uri(uri)
        self.client.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)

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
