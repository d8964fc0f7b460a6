"""Demo data generator and the one-command CLI (`python -m smgt.local serve` / `demo-data`)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import pytest

from smgt.local.demo import generate_video
from smgt.local.references import parse_mot

from .local_gt_helpers import SETTINGS

ROOT = Path(__file__).resolve().parents[2]


def test_synthetic_video_is_deterministic_and_labelled():
    a, b = generate_video(n_frames=6, seed=1), generate_video(n_frames=6, seed=1)
    assert a.frames == b.frames and a.gt_lines == b.gt_lines
    assert generate_video(n_frames=6, seed=2).gt_lines != a.gt_lines
    assert sorted(a.frames) == [f"{n:06d}.jpg" for n in range(1, 7)]
    boxes = parse_mot("\n".join(a.gt_lines))
    assert sorted(boxes) == list(range(1, 7))
    for frame_boxes in boxes.values():
        assert len(frame_boxes) == 4
        for box in frame_boxes:  # inside the 320x180 frame
            assert box.left >= 0 and box.left + box.width <= 320 and box.top >= 0 and box.top + box.height <= 180
    assert len(a.lanes) == 4


def test_demo_upload_follows_the_notebook_layout(emu, demo):
    bucket = SETTINGS.input_bucket
    assert demo["manifest_uri"] == f"s3://{bucket}/tracking_manifests/MOT17-13-SDP.manifest"
    lines = emu.s3.get_text(demo["manifest_uri"]).splitlines()
    assert [json.loads(line) for line in lines] == [{"source-ref": f"s3://{bucket}/tracking_manifests/MOT17-13-SDP_seq.json"}]
    seq = emu.s3.get_json(demo["sequence_uri"])
    assert seq["prefix"] == f"s3://{bucket}/MOT17/train/MOT17-13-SDP/img1/"
    # Every other frame, renumbered from 1, as the notebook's files[:300:2].
    assert [f["frame"] for f in seq["frames"]] == [f"{n:06d}.jpg" for n in range(1, 31, 2)]
    assert [f["frame-no"] for f in seq["frames"]] == list(range(1, 16))
    assert seq["number-of-frames"] == 15
    for f in seq["frames"]:
        assert emu.s3.exists(seq["prefix"] + f["frame"])
    config = emu.s3.get_json(demo["label_configs"]["vehicle_label_category"])
    assert config["annotationType"] == "BoundingBox" and config["labels"][0]["label"] == "Vehicle"


def _serve(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, dict[str, str]]:
    """Start `python -m smgt.local serve ARGS`; return it and the environment it printed (once ready)."""
    server = subprocess.Popen([sys.executable, "-m", "smgt.local", "serve", "--port", "0", *args],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    printed: dict[str, str] = {}
    deadline = time.time() + 90
    while time.time() < deadline:
        line = server.stdout.readline()
        if match := re.match(r"export ([A-Z0-9_]+)='(.*)'$", line.rstrip("\n")):
            printed[match.group(1)] = match.group(2)
        if line.startswith("# status queue:") or (not line and server.poll() is not None):
            break
    return server, printed


@pytest.mark.parametrize("rate", ["0", "150", "-1"])
def test_demo_refuses_a_rate_out_of_range_before_starting_anything(tmp_path, rate):
    work = tmp_path / "demo"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "plugins")}
    proc = subprocess.run([sys.executable, "-m", "smgt.demo", "--rate", rate, "--work-dir", str(work)],
                          capture_output=True, text=True, env=env, timeout=60, check=False)
    assert proc.returncode == 2
    assert f"--rate: must be a number with 0 < rate <= 100, got {rate}" in proc.stderr
    assert not work.exists()


def test_cli_serve_and_demo_data(tmp_path, s3_store):
    """`serve` on a given S3 store (keys from the environment), with faults and a state dir."""
    faults = tmp_path / "faults.json"
    faults.write_text(json.dumps({"fail_jobs": [{"pattern": "cli-fail-*"}]}))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins"), "SMGT_LOCAL_S3_ACCESS_KEY": s3_store.access_key,
           "SMGT_LOCAL_S3_SECRET_KEY": s3_store.secret_key}
    server, printed = _serve(["--task-seconds", "0", "--faults", str(faults), "--s3-endpoint-url",
                              s3_store.endpoint_url, "--state-dir", str(tmp_path / "gt")], env)
    try:
        url = printed.get("AWS_ENDPOINT_URL")
        assert url, "server did not start"
        assert printed["AWS_ENDPOINT_URL_S3"] == s3_store.endpoint_url
        with urllib.request.urlopen(f"{url}/_smgt/faults", timeout=10) as resp:
            assert json.loads(resp.read())["fail_jobs"][0]["pattern"] == "cli-fail-*"
        # The client side uses the environment `serve` prints (S3 on the store, keys of the store).
        out = subprocess.run([sys.executable, "-m", "smgt.local", "demo-data", "--endpoint-url", url, "--frames", "8"],
                             capture_output=True, text=True, env={**env, **printed}, timeout=120, check=True).stdout
        manifest = json.loads(out)["manifest_uri"]
        s3 = boto3.client("s3", endpoint_url=s3_store.endpoint_url, region_name="us-east-1",
                          aws_access_key_id=s3_store.access_key, aws_secret_access_key=s3_store.secret_key)
        bucket, key = manifest[5:].split("/", 1)
        assert b"MOT17-13-SDP_seq.json" in s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    assert server.returncode == 0
    assert (tmp_path / "gt" / "gt.sqlite3").exists()


def test_cli_serve_runs_its_own_seaweedfs_in_the_state_dir(tmp_path):
    """Without --s3-endpoint-url, `serve` runs a SeaweedFS of its own, its data under the state dir, and
    stops it on SIGTERM; a second serve on the same state dir finds the same objects."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SMGT_LOCAL_"))}
    env["PYTHONPATH"] = str(ROOT / "plugins")
    server, printed = _serve(["--demo-data", "--state-dir", str(tmp_path)], env)
    try:
        assert printed["AWS_ENDPOINT_URL_S3"] != printed["AWS_ENDPOINT_URL"]
        s3 = boto3.client("s3", endpoint_url=printed["AWS_ENDPOINT_URL_S3"], region_name="us-east-1",
                          aws_access_key_id=printed["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=printed["AWS_SECRET_ACCESS_KEY"])
        frames = s3.list_objects_v2(Bucket=SETTINGS.input_bucket, Prefix="MOT17/")["KeyCount"]
        assert frames > 30
        anonymous = urllib.request.Request(f"{printed['AWS_ENDPOINT_URL_S3']}/{SETTINGS.input_bucket}/")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(anonymous, timeout=10)
        assert refused.value.code == 403
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    assert server.returncode == 0 and (tmp_path / "s3" / "store").is_dir()
    again, printed = _serve(["--state-dir", str(tmp_path)], env)
    try:
        s3 = boto3.client("s3", endpoint_url=printed["AWS_ENDPOINT_URL_S3"], region_name="us-east-1",
                          aws_access_key_id=printed["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=printed["AWS_SECRET_ACCESS_KEY"])
        assert s3.list_objects_v2(Bucket=SETTINGS.input_bucket, Prefix="MOT17/")["KeyCount"] == frames
    finally:
        again.send_signal(signal.SIGTERM)
        again.wait(timeout=60)


def test_label_demo_walkthrough_runs_the_notebook_jobs(emu, demo, monkeypatch):
    from smgt.local.walkthrough import label_demo

    for key, value in emu.env().items():  # what a newcomer exports after `serve`
        monkeypatch.setenv(key, value)

    outputs = label_demo(emu.endpoint_url, timeout=60, prefix="walk")
    assert sorted(outputs) == ["walk-lane", "walk-lane-audit", "walk-vehicle", "walk-vehicle-audit"]
    audit_line = json.loads(emu.s3.get_text(outputs["walk-vehicle-audit"]).splitlines()[0])
    assert {"vehicle-ref", "vehicle-audit-ref", "vehicle-audit-ref-metadata"} <= set(audit_line)


def test_notebook_flow_without_s3_credentials_says_to_run_the_printed_exports(tmp_path):
    # A new user runs the notebook flow in a fresh shell, without scripts/up.sh's export lines.
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONPATH": str(ROOT / "plugins")}
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "notebook_flow.py"), "--password", "x",
                           "--base-url", "http://127.0.0.1:9", "--endpoint-url", "http://127.0.0.1:9",
                           "--work-dir", str(tmp_path / "out")], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "Unable to locate credentials for S3: run the `export` lines scripts/up.sh printed" in proc.stderr
