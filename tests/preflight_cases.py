"""A batch that breaks every pre-flight rule once, for the unit, API and DAG tests.

`upload_fixtures(s3, bucket)` puts the objects the cases name under one fresh prefix (nothing else
is touched); `defective_batch(batch_id, fixtures)` returns the batch config, one job per rule, and
`expected`: for each job, the start of its message (job and field) and a fragment of the rule's
wording. Job 0 is valid and never named; the audit jobs chain from it, so only their label config
is checked.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from label_config_cases import CASES, case_config
from sample_batches import INPUT

from smgt.settings import LOCAL_ACCOUNT_ID

BUCKET = INPUT.removeprefix("s3://")
DEMO_CONFIG = f"{INPUT}/tracking_manifests/vehicle_label_category.json"
DEMO_MANIFEST = f"{INPUT}/tracking_manifests/MOT17-13-SDP.manifest"
DEMO_SEQUENCE = f"{INPUT}/tracking_manifests/MOT17-13-SDP_seq.json"
DEMO_FRAMES = f"{INPUT}/MOT17/train/MOT17-13-SDP/img1/"
MISSING_TEAM = f"arn:aws:sagemaker:us-east-1:{LOCAL_ACCOUNT_ID}:workteam/private-crowd/no-such-team"
MISSING_TOPIC = f"arn:aws:sns:us-east-1:{LOCAL_ACCOUNT_ID}:no-such-topic"
MISSING_BUCKET_MANIFEST = "s3://smgt-no-such-bucket-4f1c/in.manifest"


@dataclass
class Fixtures:
    prefix: str  # s3://bucket/preflight-fixtures/<token>
    uris: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> str:
        return self.uris[name]


def _video_sequence(prefix: str, frames: int, **changes: Any) -> dict[str, Any]:
    sequence = {"seq-no": 0, "prefix": prefix, "number-of-frames": frames,
                "frames": [{"frame-no": i + 1, "frame": f"{i % 30 + 1:06d}.jpg"} for i in range(frames)]}
    sequence.update(changes)
    return sequence


def _cloud_sequence(prefix: str, frames: int, **changes: Any) -> dict[str, Any]:
    sequence = {"seq-no": 1, "prefix": prefix, "number-of-frames": frames,
                "frames": [{"frame-no": i, "unix-timestamp": 1566861644.0 + i, "frame": f"{i % 2}.bin"}
                           for i in range(frames)]}
    sequence.update(changes)
    return sequence


def upload_fixtures(s3: Any, bucket: str = BUCKET) -> Fixtures:
    """Upload every fixture object under a fresh prefix; the demo data must be there already."""
    token = uuid.uuid4().hex[:8]
    key_prefix = f"preflight-fixtures/{token}"
    fixtures = Fixtures(prefix=f"s3://{bucket}/{key_prefix}")

    def put(name: str, body: bytes | str | Any) -> str:
        if not isinstance(body, bytes | str):
            body = json.dumps(body)
        data = body.encode() if isinstance(body, str) else body
        key = f"{key_prefix}/{name}"
        s3.put_object(Bucket=bucket, Key=key, Body=data)
        fixtures.uris[name] = f"s3://{bucket}/{key}"
        return fixtures.uris[name]

    def manifest(name: str, refs: list[str]) -> str:
        return put(name, "".join(json.dumps({"source-ref": r}) + "\n" for r in refs))

    fixtures.uris["missing.json"] = f"{fixtures.prefix}/missing.json"
    fixtures.uris["missing.manifest"] = f"{fixtures.prefix}/missing.manifest"
    put("not-json.json", b"{not json")
    for index, name in enumerate(sorted(CASES)):
        put(f"case-{index}.json", case_config(name))
    put("cloud-ok.json", {"document-version": "2020-03-01", "labels": [{"label": "Car"}]})
    put("image-ok.json", {"document-version": "2018-11-28", "labels": [{"label": "Car"}, {"label": "Bus"}]})

    put("empty.manifest", b"")
    put("not-json.manifest", b"{oops\n")
    put("no-ref.manifest", b'{"frame": 1}\n')
    put("source-only.manifest", b'{"source": "inline text"}\n')
    put("bad-ref.manifest", b'{"source-ref": "https://example.com/a.jpg"}\n')
    manifest("eleven.manifest", [DEMO_SEQUENCE] * 11)
    manifest("seq-missing.manifest", [f"{fixtures.prefix}/seq/missing.json"])
    manifest("seq-not-json.manifest", [put("seq/not-json.json", b"[1, 2")])
    manifest("seq-no-slash.manifest", [put("seq/no-slash.json", _video_sequence(DEMO_FRAMES.rstrip("/"), 3))])
    manifest("seq-count.manifest", [put("seq/count.json", _video_sequence(DEMO_FRAMES, 15, **{"number-of-frames": 16}))])
    manifest("seq-2001.manifest", [put("seq/2001.json", _video_sequence(DEMO_FRAMES, 2001))])
    gone = _video_sequence(DEMO_FRAMES, 3)
    gone["frames"][-1]["frame"] = "000099.jpg"
    manifest("seq-frame-gone.manifest", [put("seq/frame-gone.json", gone)])
    no_number = _video_sequence(DEMO_FRAMES, 2)
    del no_number["frames"][0]["frame-no"]
    manifest("seq-no-frame-no.manifest", [put("seq/no-frame-no.json", no_number)])
    manifest("seq-empty.manifest", [put("seq/empty.json", _video_sequence(DEMO_FRAMES, 0))])
    no_seq_no = _video_sequence(DEMO_FRAMES, 2)
    del no_seq_no["seq-no"]
    manifest("seq-no-seq-no.manifest", [put("seq/no-seq-no.json", no_seq_no)])

    cloud_frames = f"{fixtures.prefix}/pc/frames/"
    put("pc/frames/0.bin", b"\x00" * 64)
    put("pc/frames/1.bin", b"\x00" * 64)
    manifest("pc-ok.manifest", [put("pc/seq-ok.json", _cloud_sequence(cloud_frames, 2))])
    manifest("pc-501.manifest", [put("pc/seq-501.json", _cloud_sequence(cloud_frames, 501))])
    no_time = _cloud_sequence(cloud_frames, 2)
    del no_time["frames"][1]["unix-timestamp"]
    manifest("pc-no-timestamp.manifest", [put("pc/seq-no-ts.json", no_time)])
    manifest("pc-single.manifest", [f"{cloud_frames}0.bin"])

    manifest("img-ok.manifest", [f"{DEMO_FRAMES}000001.jpg", f"{DEMO_FRAMES}000002.jpg"])
    manifest("img-gone.manifest", [f"{fixtures.prefix}/img/gone.jpg"])
    return fixtures


def _job(name: str, modality: str, config: str, manifest: str | None = None, *, level: int = 1,
         chain: str | None = None, **extra: Any) -> dict[str, Any]:
    inputs: dict[str, Any] = {"chainFromJobName": chain, "downSamplingRate": 50} if chain else {
        "inputManifestS3Uri": manifest}
    return {"jobName": name, "jobType": "BATCH", "jobModality": modality, "jobLevel": level,
            "labelCategoryConfigS3Uri": config, "inputConfig": inputs, **extra}


# Per first-level modality: a valid manifest fixture and label config (so a label-config case only
# breaks its own rule).
_VALID = {
    "VideoObjectTracking": ("DEMO_MANIFEST", "DEMO_CONFIG"),
    "PointCloudObjectTracking": ("pc-ok.manifest", "cloud-ok.json"),
    "PointCloudSemanticSegmentation": ("pc-single.manifest", "cloud-ok.json"),
    "BoundingBox": ("img-ok.manifest", "image-ok.json"),
    "SemanticSegmentation": ("img-ok.manifest", "image-ok.json"),
}


def defective_batch(batch_id: str, fx: Fixtures) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """(batch config, [(message start "labelingJobs[i] 'name': field", rule fragment)...])."""
    jobs: list[dict[str, Any]] = []
    expected: list[tuple[str, str]] = []

    def uri(name: str) -> str:
        return {"DEMO_MANIFEST": DEMO_MANIFEST, "DEMO_CONFIG": DEMO_CONFIG}.get(name) or fx[name]

    def add(job: dict[str, Any], field_name: str | None, fragment: str | None) -> None:
        index = len(jobs)
        jobs.append(job)
        if field_name is not None and fragment is not None:
            expected.append((f"labelingJobs[{index}] {job['jobName']!r}: {field_name}: ", fragment))

    parent = f"{batch_id}-ok"
    add(_job(parent, "VideoObjectTracking", DEMO_CONFIG, DEMO_MANIFEST), None, None)

    # Label category config: readable JSON, then every documented rule of its task type.
    add(_job(f"{batch_id}-cfg-missing", "VideoObjectTracking", fx["missing.json"], DEMO_MANIFEST),
        "labelCategoryConfigS3Uri", f"{fx['missing.json']} does not exist")
    add(_job(f"{batch_id}-cfg-not-json", "VideoObjectTracking", fx["not-json.json"], DEMO_MANIFEST),
        "labelCategoryConfigS3Uri", f"{fx['not-json.json']} is not valid JSON")
    for index, name in enumerate(sorted(CASES)):
        modality, _, fragment = CASES[name]
        config = fx[f"case-{index}.json"]
        if modality.is_audit:
            job = _job(f"{batch_id}-case{index}", modality.name, config, level=2, chain=parent)
        else:
            manifest, _ = _VALID[modality.name]
            job = _job(f"{batch_id}-case{index}", modality.name, config, uri(manifest))
        add(job, f"labelCategoryConfigS3Uri: {config}", fragment)

    # Input manifests: exist, readable, their first lines JSON objects with an s3:// source-ref.
    def manifest_case(suffix: str, fixture: str, fragment: str, modality: str = "VideoObjectTracking") -> None:
        _, config = _VALID[modality]
        add(_job(f"{batch_id}-{suffix}", modality, uri(config), uri(fixture)), "inputConfig.inputManifestS3Uri",
            fragment)

    manifest_case("m-missing", "missing.manifest", f"{fx['missing.manifest']} does not exist")
    add(_job(f"{batch_id}-m-bucket", "VideoObjectTracking", DEMO_CONFIG, MISSING_BUCKET_MANIFEST),
        "inputConfig.inputManifestS3Uri", "bucket 'smgt-no-such-bucket-4f1c' does not exist")
    manifest_case("m-empty", "empty.manifest", "is empty: a manifest needs one JSON line per data object")
    manifest_case("m-not-json", "not-json.manifest", "line 1 is not valid JSON")
    manifest_case("m-no-ref", "no-ref.manifest", 'line 1 has no "source-ref"')
    manifest_case("m-source", "source-only.manifest", 'line 1 has "source" (inline text) but no "source-ref"',
                  "BoundingBox")
    manifest_case("m-bad-ref", "bad-ref.manifest", "line 1: source-ref 'https://example.com/a.jpg' is not an s3://")
    manifest_case("m-eleven", "eleven.manifest", "has 11 lines; Ground Truth takes at most 10 video frame sequences")
    manifest_case("m-img-gone", "img-gone.manifest", f"line 1: source-ref {fx.prefix}/img/gone.jpg does not exist",
                  "BoundingBox")
    manifest_case("m-pc-gone", "img-gone.manifest", f"line 1: source-ref {fx.prefix}/img/gone.jpg does not exist",
                  "PointCloudSemanticSegmentation")

    # Sequence files of video and point-cloud tracking jobs.
    manifest_case("s-missing", "seq-missing.manifest", f"line 1: sequence file {fx.prefix}/seq/missing.json does not exist")
    manifest_case("s-not-json", "seq-not-json.manifest", "seq/not-json.json is not valid JSON")
    manifest_case("s-no-slash", "seq-no-slash.manifest", "prefix: 's3://" + DEMO_FRAMES[5:].rstrip("/") + "' must end with '/'")
    manifest_case("s-count", "seq-count.manifest", "number-of-frames is 16 but frames lists 15 (they must be equal)")
    manifest_case("s-2001", "seq-2001.manifest", "2001 frames; Ground Truth allows at most 2000 video frames per sequence")
    manifest_case("s-frame-gone", "seq-frame-gone.manifest", f"frame '000099.jpg': {DEMO_FRAMES}000099.jpg does not exist")
    manifest_case("s-no-frame-no", "seq-no-frame-no.manifest", "frames[0] needs frame-no")
    manifest_case("s-empty", "seq-empty.manifest", "frames is empty; a sequence needs at least one frame")
    manifest_case("s-no-seq-no", "seq-no-seq-no.manifest", "seq-no: required; must be an integer")
    manifest_case("s-pc-501", "pc-501.manifest", "501 frames; Ground Truth allows at most 500 point cloud frames",
                  "PointCloudObjectTracking")
    manifest_case("s-pc-no-ts", "pc-no-timestamp.manifest", "frames[1] needs unix-timestamp", "PointCloudObjectTracking")

    # Named AWS resources: a job's own work team.
    add(_job(f"{batch_id}-team", "VideoObjectTracking", DEMO_CONFIG, DEMO_MANIFEST, workteamArn=MISSING_TEAM),
        "workteamArn", f"work team {MISSING_TEAM} does not exist")

    conf = {"batchId": batch_id, "destinationSnsArn": MISSING_TOPIC, "labelingJobs": jobs}
    expected.append(("destinationSnsArn: ", f"SNS topic {MISSING_TOPIC} does not exist"))
    return conf, expected


def chained_job_names(conf: dict[str, Any]) -> list[str]:
    return [j["jobName"] for j in conf["labelingJobs"] if "chainFromJobName" in j["inputConfig"]]


def missing_expectations(problems: list[str], expected: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Expected (start, fragment) pairs no problem matches."""
    return [(start, fragment) for start, fragment in expected
            if not any(p.startswith(start) and fragment in p for p in problems)]
