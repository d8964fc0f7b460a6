"""One emulator per test session (S3 on SeaweedFS, state in a temp dir), with instant tasks; inputs
for every modality family."""

from __future__ import annotations

from typing import Any

import pytest
from s3_store import seaweedfs_store

from smgt.local import LocalGroundTruth

from .local_gt_helpers import SETTINGS


@pytest.fixture(scope="session")
def s3_store(tmp_path_factory):
    with seaweedfs_store(tmp_path_factory.mktemp("local-s3")) as store:
        yield store


@pytest.fixture(scope="session")
def emu(s3_store, tmp_path_factory):
    with LocalGroundTruth(port=0, task_seconds=0.0, seed=7, s3=s3_store,
                          state_dir=tmp_path_factory.mktemp("local-gt")) as emulator:
        yield emulator


@pytest.fixture(scope="session")
def demo(emu) -> dict[str, Any]:
    return emu.upload_demo_data()


@pytest.fixture(scope="session")
def sm(emu):
    return emu.client("sagemaker")


@pytest.fixture(scope="session")
def inputs(emu, demo) -> dict[str, str]:
    """Manifests and configs for the image and point-cloud modalities (the demo covers video)."""
    bucket = SETTINGS.input_bucket
    base = f"s3://{bucket}/test-inputs"
    s3 = emu.s3
    put = s3.put_json

    frames = demo["frames_prefix"]
    s3.put_lines(f"{base}/images.manifest", [{"source-ref": f"{frames}{n:06d}.jpg"} for n in (1, 3, 5)])
    s3.put_bytes(f"{base}/template.liquid.html", b"<crowd-form></crowd-form>", "text/html")
    put(f"{base}/car.json", {"document-version": "2018-11-28", "labels": [{"label": "Car"}, {"label": "Truck"}]})
    put(f"{base}/road.json", {"document-version": "2018-11-28", "labels": [{"label": "Road"}, {"label": "Car"}]})

    cloud = "".join(f"{x * 0.5} {x * 0.25} {x % 3} 0.{x % 9}\n" for x in range(50))
    for i in range(3):
        s3.put_bytes(f"{base}/lidar/frame{i}.txt", cloud.encode(), "text/plain")
    s3.put_lines(f"{base}/cloud.manifest", [
        {"source-ref": f"{base}/lidar/frame{i}.txt",
         "source-ref-metadata": {"format": "text/xyzi", "unix-timestamp": 1566861644.0 + i, "prefix": f"{base}/lidar/"}}
        for i in range(2)])
    put(f"{base}/lidar/seq1.json", {
        "seq-no": 1, "prefix": f"{base}/lidar/", "number-of-frames": 3,
        "frames": [{"frame-no": i, "unix-timestamp": 1566861644.0 + i, "frame": f"frame{i}.txt", "format": "text/xyzi"}
                   for i in range(3)]})
    s3.put_lines(f"{base}/cloud-seq.manifest", [{"source-ref": f"{base}/lidar/seq1.json"}])
    put(f"{base}/cuboids.json", {"document-version": "2020-03-01", "labels": [
        {"label": "Car", "attributes": [{"name": "Occlusion", "type": "string", "enum": ["None", "Partial"]}]},
        {"label": "Pedestrian"}], "frameAttributes": [{"name": "Weather", "type": "string", "enum": ["Sun", "Rain"]}],
        "instructions": {"shortInstruction": "Draw cuboids", "fullInstruction": "Draw cuboids"}})
    return {
        "images": f"{base}/images.manifest", "template": f"{base}/template.liquid.html",
        "car": f"{base}/car.json", "road": f"{base}/road.json", "cloud": f"{base}/cloud.manifest",
        "cloud_seq": f"{base}/cloud-seq.manifest", "cuboids": f"{base}/cuboids.json",
    }


