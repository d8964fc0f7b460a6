"""Video inputs for recurring batches built from an S3 prefix of frames (issue 5, point 7)."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from smgt.manifests import ManifestError, Storage, build_video_inputs_from_prefix


@pytest.fixture
def s3(monkeypatch):
    # moto's in-process mock as a test double: unit tests of this module's S3 paths, each on an empty
    # bucket without a server; the same code runs against SeaweedFS in tests/dag and tests/deployment.
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)  # the mock only answers AWS's own endpoints
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="frames")
        yield client


def put(s3, key: str, body: bytes = b"jpeg") -> None:
    s3.put_object(Bucket="frames", Key=key, Body=body)


def read(s3, uri: str) -> bytes:
    return s3.get_object(Bucket="frames", Key=uri.removeprefix("s3://frames/"))["Body"].read()


def test_two_video_folders(s3):
    for i in range(1, 8):
        put(s3, f"raw/MOT20-13/img1/{i:06d}.jpg")
    for i in range(1, 4):
        put(s3, f"raw/MOT20-02/img1/{i:06d}.jpg")
    put(s3, "raw/MOT20-13/det/det.txt")  # not a frame
    put(s3, "raw/MOT20-13.mp4")  # not in a video folder

    result = build_video_inputs_from_prefix(
        s3, "s3://frames/raw", step=2, out_prefix_uri="s3://frames/inputs/run1"
    )

    assert result.manifest_uri == "s3://frames/inputs/run1/input.manifest"
    assert (result.sequences, result.frames) == (2, 4 + 2)
    lines = [json.loads(x) for x in read(s3, result.manifest_uri).decode().splitlines()]
    assert lines == [
        {"source-ref": "s3://frames/inputs/run1/MOT20-02_seq.json"},
        {"source-ref": "s3://frames/inputs/run1/MOT20-13_seq.json"},
    ]
    seq = json.loads(read(s3, lines[1]["source-ref"]))
    assert seq["prefix"] == "s3://frames/raw/MOT20-13/img1/"
    assert seq["seq-no"] == 1 and seq["number-of-frames"] == 4
    # files[::2], renumbered 1..k as the notebook does.
    assert seq["frames"] == [
        {"frame-no": 1, "frame": "000001.jpg"},
        {"frame-no": 2, "frame": "000003.jpg"},
        {"frame-no": 3, "frame": "000005.jpg"},
        {"frame-no": 4, "frame": "000007.jpg"},
    ]
    assert [v["frames"] for v in result.to_dict()["videos"]] == [2, 4]


def test_listing_is_paginated(s3):
    # More than one list_objects_v2 page (1000 keys).
    for i in range(1, 1202):
        put(s3, f"p/v/{i:06d}.jpg", b"")
    result = build_video_inputs_from_prefix(
        Storage(s3), "s3://frames/p/", step=1, out_prefix_uri="s3://frames/o"
    )
    assert result.frames == 1201
    seq = json.loads(read(s3, "s3://frames/o/v_seq.json"))
    assert seq["prefix"] == "s3://frames/p/v/" and seq["frames"][-1] == {
        "frame-no": 1201,
        "frame": "001201.jpg",
    }


def test_no_frames_is_a_clear_error(s3):
    put(s3, "empty/readme.txt")
    with pytest.raises(ManifestError, match=r"no frames found under s3://frames/empty/"):
        build_video_inputs_from_prefix(s3, "s3://frames/empty", step=1, out_prefix_uri="s3://frames/o")
    assert "Contents" not in s3.list_objects_v2(Bucket="frames", Prefix="o/")


def test_frames_of_one_video_in_two_folders_are_rejected(s3):
    put(s3, "x/v/a/1.jpg")
    put(s3, "x/v/b/2.jpg")
    with pytest.raises(ManifestError, match="in 2 folders"):
        build_video_inputs_from_prefix(s3, "s3://frames/x", step=1, out_prefix_uri="s3://frames/o")


def test_bad_step(s3):
    with pytest.raises(ManifestError, match="step"):
        build_video_inputs_from_prefix(s3, "s3://frames/x", step=0, out_prefix_uri="s3://frames/o")


def test_local_prefix(tmp_path):
    for video, n in [("a", 3), ("b", 5)]:
        (tmp_path / "frames" / video).mkdir(parents=True)
        for i in range(n):
            (tmp_path / "frames" / video / f"{i:04d}.png").write_bytes(b"")
    result = build_video_inputs_from_prefix(
        Storage(), str(tmp_path / "frames"), step=3, out_prefix_uri=str(tmp_path / "out")
    )
    assert (result.sequences, result.frames) == (2, 1 + 2)
    seq = json.loads((tmp_path / "out" / "b_seq.json").read_text())
    assert seq["prefix"] == f"{tmp_path}/frames/b/" and [f["frame"] for f in seq["frames"]] == [
        "0000.png",
        "0003.png",
    ]
