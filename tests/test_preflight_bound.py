"""A 10-million-line input manifest is pre-flighted within the stated bound (smgt.preflight).

The manifest is made on SeaweedFS with one multipart upload of repeated bytes (50 parts of
200,000 identical lines). Every S3 call the pre-flight makes is counted on the client with
botocore's own event hooks: one ranged GET of the manifest's first MiB, a HEAD of each of the first
3 data objects, one GET of the label config, whatever the manifest's size.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from smgt.config import validate_batch_config
from smgt.preflight import DEFAULT_LIMITS, PREFLIGHT_BOTOCORE_CONFIG, AwsClients, preflight_batch

pytestmark = pytest.mark.timeout(600)

BUCKET = "pfb"  # a short bucket name keeps the 10M lines at 32 bytes each (320 MB)
LINE = b'{"source-ref":"s3://pfb/a.jpg"}\n'
LINES_PER_PART = 200_000  # 6.4 MB parts, above S3's 5 MiB minimum part size
PARTS = 50
LINES = LINES_PER_PART * PARTS  # 10,000,000


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from s3_store import seaweedfs_store

    with seaweedfs_store(tmp_path_factory.mktemp("bound-s3")) as store:
        client = boto3.session.Session().client(
            "s3", endpoint_url=store.endpoint_url, aws_access_key_id=store.access_key,
            aws_secret_access_key=store.secret_key, region_name="us-east-1", config=PREFLIGHT_BOTOCORE_CONFIG)
        client.create_bucket(Bucket=BUCKET)
        client.put_object(Bucket=BUCKET, Key="a.jpg", Body=b"\xff\xd8\xff\xe0 not much of a JPEG")
        client.put_object(Bucket=BUCKET, Key="labels.json", Body=json.dumps(
            {"document-version": "2018-11-28", "labels": [{"label": "Car"}]}).encode())
        client.put_object(Bucket=BUCKET, Key="video-labels.json", Body=json.dumps(
            {"document-version": "2020-08-15", "labels": [{"label": "Car"}]}).encode())
        upload = client.create_multipart_upload(Bucket=BUCKET, Key="ten-million.manifest")
        part = LINE * LINES_PER_PART
        parts = [{"PartNumber": n, "ETag": client.upload_part(Bucket=BUCKET, Key="ten-million.manifest", PartNumber=n,
                                                               UploadId=upload["UploadId"], Body=part)["ETag"]}
                 for n in range(1, PARTS + 1)]
        client.complete_multipart_upload(Bucket=BUCKET, Key="ten-million.manifest", UploadId=upload["UploadId"],
                                         MultipartUpload={"Parts": parts})
        yield client


def job(name: str, modality: str, config: str) -> dict:
    return {"jobName": name, "jobType": "BATCH", "jobModality": modality, "jobLevel": 1,
            "labelCategoryConfigS3Uri": f"s3://{BUCKET}/{config}",
            "inputConfig": {"inputManifestS3Uri": f"s3://{BUCKET}/ten-million.manifest"}}


class CallLog:
    """Every S3 operation the client sends, with its Range (botocore's before-call event)."""

    def __init__(self, client: Any) -> None:
        self.calls: list[tuple[str, str | None]] = []
        client.meta.events.register("before-call.s3", self._record)

    def _record(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.calls.append((model.name, params.get("headers", {}).get("Range")))


def test_ten_million_line_manifest_is_preflighted_within_the_bound(s3: Any) -> None:
    size = s3.head_object(Bucket=BUCKET, Key="ten-million.manifest")["ContentLength"]
    assert size == LINES * len(LINE) == 320_000_000

    log = CallLog(s3)
    config = validate_batch_config({"batchId": "bound", "labelingJobs": [job("bound-boxes", "BoundingBox", "labels.json")]})
    started = time.monotonic()
    report = preflight_batch(config, AwsClients(s3=s3))
    elapsed = time.monotonic() - started
    print(f"\n10M-line manifest ({size} bytes): pre-flight {elapsed:.3f} s, {report.calls} S3 calls, "
          f"{report.bytes_read} bytes read")

    assert report.problems == [] and report.unchecked == []
    assert sorted(log.calls) == sorted([
        ("GetObject", f"bytes=0-{DEFAULT_LIMITS.config_bytes - 1}"),  # the label config
        ("GetObject", f"bytes=0-{DEFAULT_LIMITS.manifest_bytes - 1}"),  # the manifest's first MiB only
        ("HeadObject", None), ("HeadObject", None), ("HeadObject", None),  # its first 3 images
    ])
    assert report.calls == 5
    assert report.bytes_read <= DEFAULT_LIMITS.manifest_bytes + 100
    assert elapsed < 5.0  # the stated bound is 30 s of calls; this is a few ranged reads


def test_a_ten_million_line_video_manifest_is_refused_from_its_sample(s3: Any) -> None:
    config = validate_batch_config(
        {"batchId": "bound-v", "labelingJobs": [job("bound-video", "VideoObjectTracking", "video-labels.json")]})
    started = time.monotonic()
    report = preflight_batch(config, AwsClients(s3=s3))
    assert time.monotonic() - started < 5.0
    assert report.problems[0] == (
        f"labelingJobs[0] 'bound-video': inputConfig.inputManifestS3Uri: s3://{BUCKET}/ten-million.manifest has at "
        f"least {DEFAULT_LIMITS.manifest_lines + 1} lines; Ground Truth takes at most 10 video frame sequences per "
        "manifest file")
    # Its first 10 lines point at a JPEG, not at a sequence file: each sampled sequence says so.
    assert len(report.problems) == 1 + DEFAULT_LIMITS.sequence_files
    assert all("a.jpg is not valid JSON" in p for p in report.problems[1:])
    assert report.calls <= 1 + 1 + DEFAULT_LIMITS.sequence_files
