"""Chaining and down-sampling of manifests (SPEC section 6), on local files and on S3 (moto)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

import smgt.manifests as manifests
from smgt.manifests import (
    SEQ_LABEL_LISTS,
    ManifestError,
    Storage,
    build_chained_manifest,
    kept_count,
    record_uri_for,
    sample_seed,
    seq_label_frames,
    shape_vertices,
)
from smgt.registry import MediaKind

ATTR = "vehicles-ref"
META = {
    "class-map": {"0": "Vehicle"},
    "job-name": "labeling-job/vehicles",
    "human-annotated": "yes",
    "creation-date": "2026-11-24T00:00:00.000000",
    "type": "groundtruth/video-object-tracking",
}


def frames(n: int) -> list[dict]:
    return [
        {"frame-no": i + 1, "frame": f"{i + 1:06d}.jpg", "unix-timestamp": 1700000000 + i} for i in range(n)
    ]


def sequence(n: int, prefix: str = "s3://in/vid/img1/") -> dict:
    return {
        "version": "2020-07-01",
        "seq-no": 0,
        "prefix": prefix,
        "number-of-frames": n,
        "frames": frames(n),
    }


def video_output_line(seq_uri: str, i: int = 0) -> dict:
    return {
        "source-ref": seq_uri,
        ATTR: f"s3://out/vehicles/annotations/consolidated-annotation/output/{i}/SeqLabel.json",
        f"{ATTR}-metadata": META,
    }


def write_video_parent(tmp_path: Path, frame_counts: list[int]) -> str:
    """A video job's output manifest with one sequence file per line; returns its path."""
    lines = []
    for i, n in enumerate(frame_counts):
        seq_path = tmp_path / "in" / f"vid{i}_seq.json"
        seq_path.parent.mkdir(parents=True, exist_ok=True)
        seq_path.write_text(json.dumps(sequence(n)))
        lines.append(json.dumps(video_output_line(str(seq_path), i)))
    manifest = tmp_path / "parent" / "output.manifest"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text("\n".join(lines) + "\n")
    return str(manifest)


def read_jsonl(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def chain(src: str, dest: str, *, media=MediaKind.VIDEO, rate=50, job="vehicles-audit", batch="b1", **kw):
    return build_chained_manifest(
        Storage(), src, dest, media=media, rate=rate, batch_id=batch, job_name=job, **kw
    )


def sampled_sequences(dest: str) -> list[dict]:
    return [json.loads(Path(line["source-ref"]).read_text()) for line in read_jsonl(dest)]


# ------------------------------------------------------------------------------------------ counts


@pytest.mark.parametrize(
    ("n", "rate", "expected"),
    [(2, 50, 1), (1, 1, 1), (3, 50, 2), (10, 33.3, 4), (100, 7, 7), (100, 0.5, 1), (7, 100, 7), (5, None, 5)],
)
def test_kept_count_is_ceil_with_at_least_one(n, rate, expected):
    assert kept_count(n, rate) == expected


def test_rate_out_of_range_is_rejected(tmp_path):
    src = write_video_parent(tmp_path, [2])
    for rate in (0, -5, 100.5, True, "50", float("nan")):
        with pytest.raises(ManifestError, match="downSamplingRate"):
            chain(src, str(tmp_path / "out" / "x.manifest"), rate=rate)


# ------------------------------------------------------------------------------------------ video


def test_two_frame_sequence_at_50_percent_keeps_exactly_one(tmp_path):
    src = write_video_parent(tmp_path, [2])
    dest = str(tmp_path / "child" / "input.manifest")
    summary = chain(src, dest)
    (seq,) = sampled_sequences(dest)
    assert seq["number-of-frames"] == 1 and len(seq["frames"]) == 1
    assert seq["frames"][0] in frames(2)
    assert (summary.lines_in, summary.lines_out, summary.frames_in, summary.frames_out) == (1, 1, 2, 1)


@pytest.mark.parametrize("rate", [1, 10, 33.3, 50, 75, 99])
def test_each_sequence_keeps_ceil_n_rate_frames(tmp_path, rate):
    counts = [1, 2, 3, 7, 10, 31, 150]
    src = write_video_parent(tmp_path, counts)
    dest = str(tmp_path / "child" / "input.manifest")
    chain(src, dest, rate=rate)
    for n, seq in zip(counts, sampled_sequences(dest), strict=True):
        expected = max(1, math.ceil(n * rate / 100 - 1e-9))
        assert seq["number-of-frames"] == len(seq["frames"]) == expected


def test_kept_frames_are_the_original_objects_in_order(tmp_path):
    src = write_video_parent(tmp_path, [40])
    dest = str(tmp_path / "child" / "input.manifest")
    chain(src, dest, rate=25)
    (seq,) = sampled_sequences(dest)
    originals = frames(40)
    assert all(f in originals for f in seq["frames"])  # frame-no, frame, unix-timestamp untouched
    numbers = [f["frame-no"] for f in seq["frames"]]
    assert numbers == sorted(numbers) and len(set(numbers)) == 10
    # Everything but the frames is carried over from the original sequence file.
    assert {k: v for k, v in seq.items() if k not in ("frames", "number-of-frames")} == {
        k: v for k, v in sequence(40).items() if k not in ("frames", "number-of-frames")
    }


def test_same_seed_same_frames_other_job_other_frames(tmp_path):
    src = write_video_parent(tmp_path, [100, 60])
    picks = {}
    for name, job, batch in [
        ("a", "audit", "b1"),
        ("a2", "audit", "b1"),
        ("j", "other-job", "b1"),
        ("b", "audit", "b2"),
    ]:
        dest = str(tmp_path / name / "input.manifest")
        chain(src, dest, job=job, batch=batch)
        picks[name] = [[f["frame-no"] for f in s["frames"]] for s in sampled_sequences(dest)]
    assert picks["a"] == picks["a2"]
    assert picks["a"] != picks["j"]
    assert picks["a"] != picks["b"]
    # Each sequence draws from its own seed (its source-ref), not one stream shared by the manifest.
    assert picks["a"][0][:30] != picks["a"][1][:30]


def test_frame_picks_are_a_seeded_uniform_sample():
    """k of n indices, ascending and distinct; the same for the same seed; every k-subset reachable and
    every index kept about k/n of the time (4000 seeds: 10 choose 3 = 120 subsets, ~33 draws each)."""
    picks = [manifests.frame_picks(10, 3, b"seed-%d" % s) for s in range(4000)]
    assert all(p == sorted(set(p)) and len(p) == 3 and p[0] >= 0 and p[-1] < 10 for p in picks)
    assert manifests.frame_picks(10, 3, b"seed-7") == picks[7]
    assert len({tuple(p) for p in picks}) == math.comb(10, 3)
    counts = [sum(i in p for p in picks) for i in range(10)]
    assert all(abs(c - 1200) < 4 * math.sqrt(4000 * 0.3 * 0.7) for c in counts), counts
    assert manifests.frame_picks(4, 4, b"x") == manifests.frame_picks(4, 9, b"x") == [0, 1, 2, 3]
    assert manifests.frame_picks(0, 0, b"x") == []


def test_a_sampled_sequence_file_keeps_what_it_does_not_change_as_written():
    """The other fields and the kept frames are the bytes that were read (spacing, a 23-digit
    integer, escapes); only "frames" and "number-of-frames" are new. The record's labels are the
    kept frames' "frame", else "frame-no", else None."""
    frame_objs = [b'{"frame-no": %d, "frame": "%06d.jpg", "pose": {"x": 1.50}}' % (i, i) for i in range(6)]
    frame_objs[2] = b'{"frame-no":2}'
    frame_objs[4] = b'{"other": "\\u00e9"}'
    data = b'{"seq-no" : 12345678901234567890123, "number-of-frames": 6, "frames": [%b], "note": "caf\\u00e9"}' % (
        b", ".join(frame_objs))
    out, n_in, labels = manifests.sample_sequence_file(data, 100 * 5 / 6, b"s")
    kept = manifests.frame_picks(6, 5, b"s")
    assert n_in == 6 and len(kept) == 5
    assert out == (b'{"seq-no":12345678901234567890123,"number-of-frames":5,"frames":[%b],"note":"caf\\u00e9"}'
                   % b",".join(frame_objs[i] for i in kept))
    names = {0: "000000.jpg", 1: "000001.jpg", 2: 2, 3: "000003.jpg", 4: None, 5: "000005.jpg"}
    assert labels == [names[i] for i in kept]


@pytest.mark.parametrize(("data", "labels"), [
    (b'\xef\xbb\xbf{"frames": [{"frame": "a.jpg"}, {"frame": "b.jpg"}]}', None),  # BOM: json.loads reads it
    (b'{"frames": [{"frame": "a.jpg", "t": NaN}, {"frame": "b.jpg", "t": 1}]}', None),
    (b'{"frames": [7, 8]}', [7, 8]),  # frames that are not objects are their own labels
])
def test_sequence_files_msgspec_refuses_are_sampled_as_json_loads_reads_them(data, labels):
    out, n_in, got = manifests.sample_sequence_file(data, 50, b"s")
    frames = json.loads(data.decode("utf-8-sig").replace("NaN", "null"))["frames"]
    kept = manifests.frame_picks(2, 1, b"s")
    assert n_in == 2 and got == [(labels or ["a.jpg", "b.jpg"])[i] for i in kept]
    assert json.loads(out) == {"frames": [frames[i] for i in kept], "number-of-frames": 1}


@pytest.mark.parametrize(("data", "message"), [
    (b'[{"frames": []}]', "not a JSON object"),
    (b'{"frames": {"0": {}}}', "no 'frames' list"),
    (b'{"prefix": "s3://b/"}', "no 'frames' list"),
    (b'{"frames": [1,', "not valid JSON"),
])
def test_sequence_files_that_cannot_be_sampled_say_why(data, message):
    with pytest.raises(ManifestError, match=message):
        manifests.sample_sequence_file(data, 50, b"s", "s3://b/seq.json")


def test_output_line_keeps_label_reference_and_metadata(tmp_path):
    src = write_video_parent(tmp_path, [4, 6])
    dest = str(tmp_path / "child" / "input.manifest")
    chain(src, dest, parent_label_attribute=ATTR)
    parent_lines, child_lines = read_jsonl(src), read_jsonl(dest)
    for i, (parent, child) in enumerate(zip(parent_lines, child_lines, strict=True)):
        assert child[ATTR] == parent[ATTR]
        assert child[f"{ATTR}-metadata"] == META
        assert child["source-ref"] != parent["source-ref"]
        assert child["source-ref"] == str(tmp_path / "child" / "sequences" / f"{i:06d}-vid{i}_seq.json")
        assert list(child) == list(parent)  # key order kept too


def test_record_and_summary_list_chosen_frames(tmp_path):
    src = write_video_parent(tmp_path, [2, 4, 6])
    dest = str(tmp_path / "child" / "input.manifest")
    summary = chain(src, dest, summary_limit=2)
    record = read_jsonl(record_uri_for(dest))
    assert summary.record_uri == record_uri_for(dest)
    assert [(r["framesIn"], r["framesOut"]) for r in record] == [(2, 1), (4, 2), (6, 3)]
    for entry, seq in zip(record, sampled_sequences(dest), strict=True):
        assert entry["frames"] == [f["frame"] for f in seq["frames"]]
    assert summary.samples == record[:2] and summary.samples_truncated
    as_dict = summary.to_dict()
    assert as_dict["framesIn"] == 12 and as_dict["framesOut"] == 6 and as_dict["level"] == "frames"
    json.dumps(as_dict)  # XCom-safe


def test_rate_none_or_100_copies_lines_unchanged(tmp_path):
    src = write_video_parent(tmp_path, [2, 3])
    for rate in (None, 100):
        dest = tmp_path / f"copy-{rate}" / "input.manifest"
        summary = chain(src, str(dest), rate=rate)
        assert read_jsonl(dest) == read_jsonl(src)
        assert summary.level == "copy" and summary.record_uri is None
        assert (summary.lines_in, summary.lines_out) == (2, 2)
        assert not (dest.parent / "sequences").exists()


def test_not_the_parents_output_fails_clearly(tmp_path):
    src = write_video_parent(tmp_path, [2])
    with pytest.raises(ManifestError, match="lanes-ref-metadata"):
        chain(src, str(tmp_path / "c" / "m"), parent_label_attribute="lanes-ref")
    assert not (tmp_path / "c" / "m").exists()  # nothing half-written


def test_failed_objects_are_counted(tmp_path):
    src = tmp_path / "out.manifest"
    seq = tmp_path / "s.json"
    seq.write_text(json.dumps(sequence(2)))
    failed = {"source-ref": str(seq), f"{ATTR}-metadata": {"failure-reason": "timeout"}}
    src.write_text(json.dumps(video_output_line(str(seq))) + "\n" + json.dumps(failed) + "\n")
    summary = chain(str(src), str(tmp_path / "c" / "m"), parent_label_attribute=ATTR)
    assert summary.lines_without_label == 1 and summary.lines_out == 2


def test_bad_sequence_file_names_line_and_file(tmp_path):
    seq = tmp_path / "bad_seq.json"
    seq.write_text(json.dumps({"prefix": "x"}))
    src = tmp_path / "out.manifest"
    src.write_text(json.dumps(video_output_line(str(seq))) + "\n")
    with pytest.raises(ManifestError, match=r"line 1: sequence file .*bad_seq.json: .*'frames'"):
        chain(str(src), str(tmp_path / "c" / "m"))


def test_missing_sequence_file_names_line_and_file(tmp_path, s3):
    src = tmp_path / "out.manifest"
    src.write_text(json.dumps(video_output_line(str(tmp_path / "gone_seq.json"))) + "\n")
    with pytest.raises(ManifestError, match=r"line 1: sequence file .*gone_seq.json: .*no such file"):
        chain(str(src), str(tmp_path / "c" / "m"))
    src.write_text(json.dumps(video_output_line("s3://labels/gone_seq.json")) + "\n")
    with pytest.raises(
        ManifestError, match=r"line 1: sequence file s3://labels/gone_seq.json: .*no such object"
    ):
        build_chained_manifest(
            Storage(s3),
            str(src),
            str(tmp_path / "c" / "m"),
            media="video",
            rate=50,
            batch_id="b",
            job_name="j",
        )


def test_point_cloud_sequences_sample_frames_single_frames_sample_lines(tmp_path):
    src = write_video_parent(tmp_path, [4])
    dest = str(tmp_path / "pc" / "input.manifest")
    assert chain(src, dest, media=MediaKind.POINT_CLOUD).level == "frames"
    clouds = tmp_path / "clouds.manifest"
    clouds.write_text("".join(json.dumps({"source-ref": f"s3://b/c/{i}.pcd"}) + "\n" for i in range(10)))
    summary = chain(str(clouds), str(tmp_path / "pc1" / "input.manifest"), media=MediaKind.POINT_CLOUD)
    assert summary.level == "lines" and summary.lines_out == 5


# ------------------------------------------------------------ a parent's SeqLabel.json in GT's layout
# https://docs.aws.amazon.com/sagemaker/latest/dg/sms-data-output.html (video and 3D object tracking output)


def video_seq_label(names: list[str], kind: str = "Polyline") -> dict:
    """A video tracking SeqLabel.json as GT writes it: frame-no from 0, the tool's list, vertices."""
    item = {"Polyline": {"vertices": [{"x": 1, "y": 170}, {"x": 150, "y": 70}]},
            "Polygon": {"vertices": [{"x": 1, "y": 1}, {"x": 9, "y": 1}, {"x": 9, "y": 9}]},
            "Keypoint": {"x": 5, "y": 6},
            "BoundingBox": {"height": 4, "width": 5, "top": 6, "left": 7}}[kind]
    return {"tracking-annotations": [
        {"frame-no": i, "frame": name, SEQ_LABEL_LISTS[kind]: [
            {**item, "class-id": "0", "label-category-attributes": {}, "object-id": "a1", "object-name": "Lane:1"}],
         "frame-attributes": {}} for i, name in enumerate(names)]}


def cloud_sequence(n: int) -> dict:
    """A 3D point-cloud sequence file with GT's per-frame fields (poses, camera images)."""
    return {"seq-no": 1, "prefix": "s3://in/lidar/", "number-of-frames": n, "frames": [
        {"frame-no": i, "unix-timestamp": 1566861644.0 + i, "frame": f"frames/{i}.txt.pcd", "format": "text/xyzi",
         "ego-vehicle-pose": {"heading": {"qx": 0, "qy": 0, "qz": 0, "qw": 1}, "position": {"x": i, "y": 0, "z": 0}},
         "images": [{"image-path": f"images/{i}.jpg", "unix-timestamp": 1566861644.0 + i, "fx": 1, "fy": 1,
                     "cx": 0, "cy": 0, "position": {"x": 0, "y": 0, "z": 0},
                     "heading": {"qx": 0, "qy": 0, "qz": 0, "qw": 1}, "camera_model": "pinhole"}]}
        for i in range(n)]}


def cloud_seq_label(names: list[str]) -> dict:
    return {"tracking-annotations": [
        {"frame-number": i, "frame-name": name, "frame-attributes": {}, "annotations": [
            {"object-id": "c1", "object-name": "Car:1", "class-id": 0, "label-category-attributes": {},
             "center-x": i, "center-y": 0, "center-z": 0, "length": 4, "width": 2, "height": 1.5,
             "roll": 0, "pitch": 0, "yaw": 0.1}]} for i, name in enumerate(names)]}


def test_seq_label_frames_by_name_for_video_and_point_clouds():
    video = seq_label_frames(video_seq_label(["000001.jpg", "000003.jpg"]), "tracking-annotations")
    assert list(video) == ["000001.jpg", "000003.jpg"] and video["000003.jpg"]["frame-no"] == 1
    cloud = seq_label_frames(cloud_seq_label(["frames/0.txt.pcd", "frames/1.txt.pcd"]), "tracking-annotations")
    assert list(cloud) == ["frames/0.txt.pcd", "frames/1.txt.pcd"] and cloud["frames/1.txt.pcd"]["frame-number"] == 1
    with pytest.raises(ManifestError, match="no 'detection-annotations' list"):
        seq_label_frames(video_seq_label(["a.jpg"]), "detection-annotations")
    with pytest.raises(ManifestError, match=r"tracking-annotations\[0\] names no frame file"):
        seq_label_frames({"tracking-annotations": [{"frame-no": 0, "annotations": []}]}, "tracking-annotations")


def test_shape_vertices_reads_gt_vertices_and_older_points():
    (line,) = video_seq_label(["a.jpg"])["tracking-annotations"][0]["polylines"]
    assert shape_vertices(line) == [{"x": 1, "y": 170}, {"x": 150, "y": 70}]
    # the local emulator's layout before it followed GT's: read, never written
    assert shape_vertices({"points": [{"x": 1.5, "y": 2}]}) == [{"x": 1.5, "y": 2}]
    for bad in ({}, {"vertices": [{"x": 1}]}, {"vertices": [[1, 2]]}, {"vertices": [{"x": True, "y": 1}]}):
        with pytest.raises(ManifestError, match="needs 'vertices'"):
            shape_vertices(bad)


@pytest.mark.parametrize("media", [MediaKind.VIDEO, MediaKind.POINT_CLOUD])
def test_down_sampled_frames_are_found_in_the_parents_seq_label(tmp_path, media):
    """A chained adjustment job's frames keep their names, which GT's SeqLabel.json repeats (video `frame`,
    3D `frame-name`), and every field of the sequence file's frames (3D poses and camera images too)."""
    n = 9
    seq = sequence(n) if media is MediaKind.VIDEO else cloud_sequence(n)
    names = [f["frame"] for f in seq["frames"]]
    (tmp_path / "in").mkdir()
    seq_path = tmp_path / "in" / "seq.json"
    seq_path.write_text(json.dumps(seq))
    label_path = tmp_path / "out" / "0" / "SeqLabel.json"
    label_path.parent.mkdir(parents=True)
    label_path.write_text(json.dumps(video_seq_label(names) if media is MediaKind.VIDEO else cloud_seq_label(names)))
    meta = {**META} if media is MediaKind.VIDEO else {
        "objects": [{"frame-no": i, "confidence": []} for i in range(n)], "class-map": {"0": "Car"},
        "type": "groundtruth/point_cloud_object_tracking", "human-annotated": "yes",
        "creation-date": "2026-11-24T00:00:00.000000", "job-name": "labeling-job/cars"}
    src = tmp_path / "parent.manifest"
    src.write_text(json.dumps({"source-ref": str(seq_path), ATTR: str(label_path), f"{ATTR}-metadata": meta}) + "\n")
    dest = tmp_path / "chained" / "input.manifest"
    summary = chain(str(src), str(dest), media=media, rate=34, parent_label_attribute=ATTR)
    assert (summary.level, summary.frames_in, summary.frames_out) == ("frames", 9, 4)
    (line,) = read_jsonl(dest)
    assert line[ATTR] == str(label_path) and line[f"{ATTR}-metadata"] == meta
    sampled = json.loads(Path(line["source-ref"]).read_text())
    parent = seq_label_frames(json.loads(label_path.read_text()), "tracking-annotations")
    kept = [f["frame"] for f in sampled["frames"]]
    assert len(kept) == 4 and set(kept) <= set(parent)
    assert sampled["frames"] == [f for f in seq["frames"] if f["frame"] in kept]  # verbatim, in order


# ------------------------------------------------------------------------------------------ images


def write_image_parent(path: Path, n: int) -> str:
    with path.open("w") as f:
        for i in range(n):
            line = {
                "source-ref": f"s3://in/images/{i:05d}.jpg",
                "boxes": {
                    "image_size": [{"width": 1920, "height": 1080, "depth": 3}],
                    "annotations": [{"class_id": 0, "left": i, "top": 2, "width": 30, "height": 40}],
                },
                "boxes-metadata": {"type": "groundtruth/object-detection", "class-map": {"0": "car"}},
            }
            f.write(json.dumps(line) + "\n")
        f.write("\n")  # a trailing blank line is not an object
    return str(path)


@pytest.mark.parametrize(("n", "rate"), [(1, 50), (2, 50), (10, 33.3), (1000, 50), (1000, 1), (999, 99.9)])
def test_images_keep_exact_count(tmp_path, n, rate):
    src = write_image_parent(tmp_path / "out.manifest", n)
    dest = tmp_path / "child" / "input.manifest"
    summary = chain(src, str(dest), media=MediaKind.IMAGE, rate=rate, parent_label_attribute="boxes")
    kept = read_jsonl(dest)
    assert len(kept) == summary.lines_out == kept_count(n, rate)
    assert summary.lines_in == n and summary.level == "lines"
    assert len({line["source-ref"] for line in kept}) == len(kept)


def test_images_deterministic_ordered_and_unchanged(tmp_path):
    src = write_image_parent(tmp_path / "out.manifest", 500)
    originals = Path(src).read_text().splitlines()
    runs = {}
    for name, job in [("a", "boxes-audit"), ("b", "boxes-audit"), ("c", "another")]:
        dest = tmp_path / name / "input.manifest"
        chain(src, str(dest), media=MediaKind.IMAGE, rate=20, job=job)
        runs[name] = dest.read_text().splitlines()
    assert runs["a"] == runs["b"]
    assert runs["a"] != runs["c"]
    positions = [originals.index(line) for line in runs["a"]]  # byte-identical lines...
    assert positions == sorted(positions)  # ...in their original order
    record = read_jsonl(record_uri_for(str(tmp_path / "a" / "input.manifest")))
    assert [r["line"] for r in record] == positions


def test_images_rate_100_copies_all(tmp_path):
    src = write_image_parent(tmp_path / "out.manifest", 50)
    dest = tmp_path / "child" / "input.manifest"
    summary = chain(src, str(dest), media=MediaKind.IMAGE, rate=100)
    assert dest.read_text().splitlines() == Path(src).read_text().splitlines()[:50]
    assert summary.lines_out == 50 and summary.level == "copy"


def test_empty_manifest_gives_empty_manifest(tmp_path):
    src = tmp_path / "out.manifest"
    src.write_text("")
    dest = tmp_path / "child" / "input.manifest"
    summary = chain(str(src), str(dest), media=MediaKind.IMAGE)
    assert dest.read_text() == "" and summary.lines_out == 0


def test_invalid_line_is_reported_with_its_number(tmp_path):
    src = tmp_path / "out.manifest"
    src.write_text('{"source-ref": "s3://b/1.jpg"}\n{not json\n')
    with pytest.raises(ManifestError, match="line 2 is not valid JSON"):
        chain(str(src), str(tmp_path / "c" / "m"), media=MediaKind.IMAGE, rate=100)


# ------------------------------------------------------------------ images: lines read on their bytes
# Line sampling and copying write a kept line's bytes as they are and check them on the bytes (a
# plain "source-ref" first, the label keys as keys); a line whose bytes do not settle the checks is
# parsed. The selection, the record and every error must be what parsing every kept line gave.


def reference_sample(data: bytes, rate, batch: str = "b1", job: str = "vehicles-audit"):
    """Selection sampling over the parsed content lines, as before lines were read on their bytes:
    [(line number, line bytes)] of the kept lines."""
    content = [line.rstrip(b"\r") for line in data.split(b"\n") if line.strip()]
    total, needed = len(content), kept_count(len(content), rate)
    rng = random.Random(sample_seed(batch, job))
    kept = []
    for number, line in enumerate(content):
        if rng.random() * (total - number) < needed:
            needed -= 1
            kept.append((number, line))
    return kept


def box_line(i: int, **extra) -> dict:
    return {"source-ref": f"s3://in/images/{i:05d}.jpg", "boxes": {"annotations": [{"left": i}]},
            "boxes-metadata": {"type": "groundtruth/object-detection"}, **extra}


def sample_images(tmp_path: Path, data: bytes, rate, name: str = "c", **kw):
    src = tmp_path / f"{name}.src.manifest"
    src.write_bytes(data)
    dest = tmp_path / name / "input.manifest"
    summary = chain(str(src), str(dest), media=MediaKind.IMAGE, rate=rate, **kw)
    return summary, dest.read_bytes(), Path(record_uri_for(str(dest))).read_bytes() if summary.record_uri else None


@pytest.mark.parametrize("rate", [1, 20, 50, 99.9])
@pytest.mark.parametrize("chunk", [7, 64, 1 << 20])
def test_lines_read_on_bytes_keep_the_seeded_selection(tmp_path, monkeypatch, rate, chunk):
    """Same lines, bytes and record as Algorithm S over parsed lines, whatever the read size (lines
    spanning chunks), with blank lines, both JSON spacings and a last line without b"\\n"."""
    monkeypatch.setattr(manifests, "READ_CHUNK", chunk)
    rng = random.Random(3)
    lines = []
    for i in range(300):
        lines.append(json.dumps(box_line(i, pad="x" * rng.randrange(80)),
                                separators=rng.choice([(",", ":"), (", ", ": ")])).encode())
        if i % 37 == 0:
            lines.append(rng.choice([b"", b"  ", b"\t"]))
    data = b"\n".join(lines)  # no b"\n" after the last line
    summary, out, record = sample_images(tmp_path, data, rate, parent_label_attribute="boxes")
    expected = reference_sample(data, rate)
    assert out == b"".join(line + b"\n" for _, line in expected)
    assert record == b"".join(
        json.dumps({"line": n, "source-ref": json.loads(line)["source-ref"]}, separators=(",", ":")).encode() + b"\n"
        for n, line in expected)
    assert (summary.lines_in, summary.lines_out) == (300, len(expected))
    assert summary.samples == [json.loads(x) for x in record.splitlines()[:10]]
    assert summary.samples_truncated == (len(expected) > 10)


@pytest.mark.parametrize("chunk", [5, 64, 1 << 20])
def test_objects_are_counted_like_stripped_lines_whatever_starts_a_line(tmp_path, monkeypatch, chunk):
    """The count pass gives what counting the lines whose strip() is not empty gives, for lines led
    by each whitespace byte and lines spanning reads."""
    monkeypatch.setattr(manifests, "READ_CHUNK", chunk)
    rng = random.Random(5)
    pieces = [b'{"source-ref":"s3://b/1.jpg"}', b'  {"source-ref":"s3://b/2.jpg"}', b"", b" ", b"\t", b"\x0b",
              b"\x0c", b"\r", b" \t "]
    for trial in range(40):
        lines = [rng.choice(pieces) for _ in range(rng.randrange(1, 30))]
        data = b"\n".join(lines) + rng.choice([b"", b"\n", b"\n\n"])
        path = tmp_path / f"{trial}.manifest"
        path.write_bytes(data)
        expected = sum(1 for line in data.split(b"\n") if line.strip())
        assert manifests._count_content_lines(Storage(), str(path)) == expected, data


def test_crlf_manifest_samples_like_its_lf_twin(tmp_path):
    lines = [json.dumps(box_line(i)).encode() for i in range(200)]
    lf = sample_images(tmp_path, b"\n".join(lines) + b"\n", 30, "lf", parent_label_attribute="boxes")
    crlf = sample_images(tmp_path, b"\r\n".join(lines) + b"\r\n", 30, "crlf", parent_label_attribute="boxes")
    assert crlf[1:] == lf[1:] and b"\r" not in crlf[1]  # written with b"\n" like every line
    assert crlf[0].to_dict()["samples"] == lf[0].to_dict()["samples"]
    copy = sample_images(tmp_path, b"\r\n".join(lines), 100, "copy")
    assert copy[1] == b"\n".join(lines) + b"\n"


def test_source_refs_that_json_escapes_are_read_by_parsing(tmp_path):
    """A source-ref with escapes or non-ASCII text: the record holds json.dumps of the parsed string."""
    refs = ["s3://b/q\"1.jpg", "s3://b/é.jpg", "s3://b/tab\\t.jpg", "s3://b/\x7f.jpg", "s3://b/plain.jpg"]
    lines = [json.dumps({"source-ref": ref, "boxes": {}, "boxes-metadata": {}}, ensure_ascii=i % 2 == 0).encode()
             for i, ref in enumerate(refs)]
    summary, out, record = sample_images(tmp_path, b"\n".join(lines) + b"\n", 99, parent_label_attribute="boxes")
    assert out == b"\n".join(lines) + b"\n"
    assert [json.loads(x)["source-ref"] for x in record.splitlines()] == refs
    assert record.splitlines()[3] == b'{"line":3,"source-ref":"s3://b/\\u007f.jpg"}'
    assert [s["source-ref"] for s in summary.samples] == refs


def test_label_check_on_bytes_still_catches_a_line_without_metadata(tmp_path):
    bad = {"source-ref": "s3://in/images/x.jpg", "boxes": {"annotations": []}}
    for rate in (100, 99.9):  # copied, and kept by sampling
        lines = [json.dumps(box_line(i)) for i in range(5)] + [json.dumps(bad)]
        with pytest.raises(ManifestError, match=r"line 6 has no 'boxes-metadata'; is this the output manifest"):
            sample_images(tmp_path, "\n".join(lines).encode(), rate, parent_label_attribute="boxes")


@pytest.mark.parametrize("impostor", [
    {"note": '"boxes-metadata": {}'},  # the key's bytes only inside a string value
    {"note": "boxes-metadata"},  # the name as a value, not a key
    {"note": 'x\\"boxes-metadata":'},  # after an escaped quote
    {'a"boxes-metadata': 1},  # a key that only ends with the name
])
def test_label_key_only_inside_a_string_is_not_a_key(tmp_path, impostor):
    line = {"source-ref": "s3://in/images/x.jpg", "boxes": {}, **impostor}
    data = (json.dumps(line) + "\n").encode()
    for rate in (100, 50):
        with pytest.raises(ManifestError, match="line 1 has no 'boxes-metadata'"):
            sample_images(tmp_path, data, rate, parent_label_attribute="boxes")


def test_escaped_label_keys_are_found_by_parsing(tmp_path):
    """Keys written with escapes (json.loads decodes them) pass, and count as labelled."""
    escaped = '{"source-ref": "s3://in/images/%d.jpg", "bo\\u0078es": {}, "boxes\\u002dmetadata": {}}'
    data = "\n".join(escaped % i for i in range(4)).encode()
    for rate in (100, 50):
        summary, out, _ = sample_images(tmp_path, data, rate, parent_label_attribute="boxes")
        assert summary.lines_without_label == 0 and summary.lines_out == kept_count(4, rate)


@pytest.mark.parametrize("rate", [100, 50])
def test_failed_objects_on_lines_are_counted_among_written_lines(tmp_path, rate):
    """lines_without_label counts the written lines without the label: every line when copied, the
    kept ones when sampled (a failed object is found on its bytes, confirmed by parsing)."""
    objs = [box_line(i) if i % 4 else {"source-ref": f"s3://in/images/{i:05d}.jpg",
                                       "boxes-metadata": {"failure-reason": "timeout"}} for i in range(40)]
    data = b"".join(json.dumps(o, separators=(",", ":")).encode() + b"\n" for o in objs)
    summary, _, _ = sample_images(tmp_path, data, rate, parent_label_attribute="boxes")
    kept = range(40) if rate == 100 else [n for n, _ in reference_sample(data, rate)]
    assert summary.lines_without_label == sum(1 for n in kept if "boxes" not in objs[n]) > 0


@pytest.mark.parametrize("line", [
    '{"source-ref": "s3://b/2.jpg", "boxes": {"annotations": [',  # truncated
    '{"source-ref": "s3://b/2.jpg"} trailing',
    '["source-ref", "s3://b/2.jpg"]',
    '{"source-ref": 2}',
])
def test_broken_kept_lines_are_reported_as_before(tmp_path, line):
    data = ('{"source-ref": "s3://b/1.jpg"}\n' + line + "\n").encode()
    for rate in (100, 99):
        with pytest.raises(ManifestError, match=r"line 2 is not (valid JSON|a JSON object with a 'source-ref' string)"):
            sample_images(tmp_path, data, rate)


@pytest.mark.parametrize(("delta", "seen"), [(1, 10), (-1, 10), (-5, 6)])
def test_manifest_changing_between_the_passes_fails(tmp_path, monkeypatch, delta, seen):
    """10 lines, counted as 10 + delta: reported with the lines seen, up to the first one too many."""
    data = b"".join(json.dumps(box_line(i)).encode() + b"\n" for i in range(10))
    counted = manifests._count_content_lines
    monkeypatch.setattr(manifests, "_count_content_lines", lambda storage, uri: counted(storage, uri) + delta)
    with pytest.raises(ManifestError, match=rf"changed while being sampled \({10 + delta} lines, then {seen}\)"):
        sample_images(tmp_path, data, 50)


# ------------------------------------------------------------------------------------------ S3


@pytest.fixture
def s3(monkeypatch):
    # moto's in-process mock as a test double: unit tests of this module's S3 paths, each on an empty
    # bucket without a server; the same code runs against SeaweedFS in tests/dag and tests/deployment.
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)  # the mock only answers AWS's own endpoints
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="labels")
        yield client


def put_json_lines(s3, key: str, lines: list[dict]) -> str:
    s3.put_object(Bucket="labels", Key=key, Body="".join(json.dumps(x) + "\n" for x in lines).encode())
    return f"s3://labels/{key}"


def get_json_lines(s3, uri: str) -> list[dict]:
    key = uri.removeprefix("s3://labels/")
    body = s3.get_object(Bucket="labels", Key=key)["Body"].read().decode()
    return [json.loads(x) for x in body.splitlines() if x.strip()]


def test_s3_round_trip_video(s3, tmp_path):
    seq_uris = []
    for i, n in enumerate([2, 9]):
        key = f"inputs/vid{i}_seq.json"
        s3.put_object(Bucket="labels", Key=key, Body=json.dumps(sequence(n)).encode())
        seq_uris.append(f"s3://labels/{key}")
    src = put_json_lines(
        s3,
        "out/vehicles/manifests/output/output.manifest",
        [video_output_line(u, i) for i, u in enumerate(seq_uris)],
    )
    dest = "s3://labels/batches/b1/vehicles-audit/input.manifest"
    storage = Storage(s3, tmp_dir=str(tmp_path))
    summary = build_chained_manifest(
        storage,
        src,
        dest,
        media="video",
        rate=50,
        batch_id="b1",
        job_name="vehicles-audit",
        parent_label_attribute=ATTR,
    )
    lines = get_json_lines(s3, dest)
    assert [line[ATTR] for line in lines] == [video_output_line(u, i)[ATTR] for i, u in enumerate(seq_uris)]
    seqs = [storage.read_json(line["source-ref"]) for line in lines]
    assert [s["number-of-frames"] for s in seqs] == [1, 5]
    assert all(
        line["source-ref"].startswith("s3://labels/batches/b1/vehicles-audit/sequences/") for line in lines
    )
    record = get_json_lines(s3, summary.record_uri)
    assert [r["framesOut"] for r in record] == [1, 5]
    assert list(tmp_path.iterdir()) == []  # temporary files are removed after upload

    # A re-run (e.g. a retried task) writes the same frames.
    build_chained_manifest(
        storage, src, dest, media="video", rate=50, batch_id="b1", job_name="vehicles-audit"
    )
    assert [storage.read_json(line["source-ref"]) for line in get_json_lines(s3, dest)] == seqs


def test_s3_round_trip_images_multipart(s3, tmp_path):
    # Lines big enough that the output (> 8 MB) goes through a multipart upload.
    pad = "x" * 4000
    lines = [
        {"source-ref": f"s3://labels/img/{i}.jpg", "boxes": {"annotations": [], "pad": pad}}
        for i in range(4000)
    ]
    src = put_json_lines(s3, "out/boxes/output.manifest", lines)
    dest = "s3://labels/b1/boxes-audit/input.manifest"
    summary = build_chained_manifest(
        Storage(s3, tmp_dir=str(tmp_path)),
        src,
        dest,
        media=MediaKind.IMAGE,
        rate=75,
        batch_id="b1",
        job_name="a",
    )
    kept = get_json_lines(s3, dest)
    assert len(kept) == summary.lines_out == 3000
    assert all(line in lines for line in kept[:50])
    assert (
        s3.head_object(Bucket="labels", Key="b1/boxes-audit/input.manifest")["ETag"].strip('"').endswith("-2")
    )


@pytest.mark.parametrize("chunk", [5, 1 << 20])
def test_s3_lines_split_like_iter_lines(s3, tmp_path, monkeypatch, chunk):
    """On S3 lines end at b"\\n", b"\\r\\n" or a lone b"\\r" (botocore's iter_lines); read on their bytes,
    with line endings split across reads, they are the same lines."""
    monkeypatch.setattr(manifests, "READ_CHUNK", chunk)
    lines = [json.dumps(box_line(i)).encode() for i in range(60)]
    data = b"\r\n".join(lines[:20]) + b"\r\n" + b"\r".join(lines[20:40]) + b"\r\n\n" + b"\n".join(lines[40:])
    s3.put_object(Bucket="labels", Key="mixed.manifest", Body=data)
    storage, src = Storage(s3, tmp_dir=str(tmp_path)), "s3://labels/mixed.manifest"
    assert [line for line in storage.iter_lines(src) if line.strip()] == lines
    kw = {"media": "image", "batch_id": "b1", "job_name": "vehicles-audit", "parent_label_attribute": "boxes"}
    copy = build_chained_manifest(storage, src, "s3://labels/copy/input.manifest", rate=None, **kw)
    assert copy.lines_out == 60
    assert s3.get_object(Bucket="labels", Key="copy/input.manifest")["Body"].read() == b"\n".join(lines) + b"\n"
    sampled = build_chained_manifest(storage, src, "s3://labels/s/input.manifest", rate=50, **kw)
    expected = reference_sample(b"\n".join(lines), 50)
    assert s3.get_object(Bucket="labels", Key="s/input.manifest")["Body"].read() == b"".join(
        line + b"\n" for _, line in expected)
    assert sampled.lines_out == len(expected) == 30


def test_local_writes_remake_a_folder_removed_after_the_first_write(tmp_path):
    """Storage remembers the folders it made (one makedirs per folder, not per file); a folder
    removed behind its back is made again, not a FileNotFoundError."""
    import shutil

    storage = Storage()
    target = tmp_path / "out" / "sequences"
    storage.write_json(str(target / "a.json"), {"n": 1})
    shutil.rmtree(tmp_path / "out")
    storage.write_json(str(target / "b.json"), {"text": "é"})
    with storage.open_write(str(tmp_path / "other" / "c.manifest")) as f:
        f.write(manifests.json_line({"source-ref": "s3://b/é.jpg"}))
    assert json.loads((target / "b.json").read_bytes()) == {"text": "é"}
    assert not (target / "a.json").exists()
    assert (tmp_path / "other" / "c.manifest").read_bytes() == '{"source-ref":"s3://b/é.jpg"}\n'.encode()
    # Only the finished files: no temporary part left behind.
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["b.json", "c.manifest"]


def test_non_atomic_json_writes_create_new_files_and_replace_existing_ones_atomically(tmp_path, monkeypatch):
    """A down-sampling's sequence files: a new file is written under its name; one that exists (a
    retry, perhaps being read, or a partial file a crash left) is replaced through a temporary file."""
    storage = Storage()
    fresh, existing = tmp_path / "seq" / "a.json", tmp_path / "seq" / "b.json"
    existing.parent.mkdir()
    existing.write_bytes(b'{"frames": [')  # what a crash mid-write leaves
    replaced: list[str] = []
    real_open_write = Storage.open_write
    monkeypatch.setattr(Storage, "open_write", lambda self, uri: replaced.append(uri) or real_open_write(self, uri))
    storage.write_json(str(fresh), {"frames": [1]}, atomic=False)
    storage.write_json(str(existing), {"frames": [2]}, atomic=False)
    storage.write_json(str(tmp_path / "new-folder" / "c.json"), {"frames": [3]}, atomic=False)
    assert json.loads(fresh.read_bytes()) == {"frames": [1]}
    assert json.loads(existing.read_bytes()) == {"frames": [2]}
    assert json.loads((tmp_path / "new-folder" / "c.json").read_bytes()) == {"frames": [3]}
    assert replaced == [str(existing)]


@pytest.mark.parametrize("data", [
    b'{"frames": [{"frame-no": 1, "frame": "a.jpg", "unix-timestamp": 1.7e9}], "n": 12345678901234567890123}',
    b'{"a": 1, "a": 2}',  # the last duplicate wins, as json.loads has it
    '{"name": "caf\u00e9"}'.encode(),
    b'\xef\xbb\xbf{"bom": true}',  # msgspec refuses these three; json.loads reads them
    b'{"a": NaN}',
    '{"utf16": 1}'.encode("utf-16"),
])
def test_decode_json_reads_what_json_loads_reads(data: bytes):
    decoded = manifests.decode_json(data)
    expected = json.loads(data)
    assert decoded == expected or (math.isnan(decoded["a"]) and math.isnan(expected["a"]))


def test_decode_json_refuses_with_json_loads_message(tmp_path: Path):
    with pytest.raises(json.JSONDecodeError, match="Expecting"):
        manifests.decode_json(b'{"a": ')
    bad = tmp_path / "seq.json"
    bad.write_bytes(b'{"frames": [1,')
    with pytest.raises(ManifestError, match="seq.json: not valid JSON"):
        Storage().read_json(str(bad))
