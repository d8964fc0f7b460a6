"""Demo data: a small synthetic street video (Pillow-drawn), uploaded the way the notebook does it.

Layout, as the reference notebook builds it from MOT17 (every other frame kept in the sequence):

    s3://<input bucket>/MOT17/train/MOT17-13-SDP/img1/000001.jpg ...
    s3://<input bucket>/MOT17/train/MOT17-13-SDP/gt/gt.txt         (MOT: frame,id,left,top,w,h,conf,class,vis)
    s3://<input bucket>/MOT17/train/MOT17-13-SDP/gt/lanes.json     (lane polylines, our addition)
    s3://<input bucket>/tracking_manifests/MOT17-13-SDP_seq.json   (sequence file)
    s3://<input bucket>/tracking_manifests/MOT17-13-SDP.manifest   ({"source-ref": <sequence file>})
    s3://<input bucket>/tracking_manifests/{vehicle,lane}_label_category[_audit].json

No download: frames are drawn here, so the generator is part of the repo.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from typing import Any

from smgt.sequences import build_sequence, manifest_line

from .s3io import S3

VIDEO = "MOT17-13-SDP"
VIDEO_PREFIX = f"MOT17/train/{VIDEO}"
MANIFEST_PREFIX = "tracking_manifests"
MOT_CAR_CLASS = 3

_AUDIT = {"name": "audit", "type": "string", "enum": ["Pass", "Fail"]}
_INSTRUCTIONS = {"vehicle": {"shortInstruction": "Please label vehicles.", "fullInstruction": "Please label vehicles."},
                 "lane": {"shortInstruction": "Please label lanes.", "fullInstruction": "Please label lanes."}}
# The notebook's four label category configs, verbatim in content.
LABEL_CONFIGS: dict[str, dict[str, Any]] = {
    "vehicle_label_category.json": {
        "document-version": "2020-08-15",
        "frameAttributes": [{"name": "Number_Of_Vehicles", "description": "How many vehicles to you see in the scene?",
                             "type": "number"}],
        "labels": [{"label": "Vehicle", "attributes": [
            {"name": "Moving", "type": "string", "enum": ["Stationary", "Dynamic"]},
            {"name": "Vehicle_Type", "type": "string", "enum": ["Car", "Van", "Bus", "SUV"]}]}],
        "instructions": _INSTRUCTIONS["vehicle"], "annotationType": "BoundingBox",
    },
    "vehicle_label_category_audit.json": {
        "document-version": "2020-08-15",
        "frameAttributes": [{"name": "Frame_Quality", "description": "Describe the quality of frame",
                             "type": "string", "enum": ["Pass", "Fail"]}],
        "labels": [{"label": "Vehicle", "attributes": [_AUDIT]}],
        "instructions": _INSTRUCTIONS["vehicle"], "annotationType": "BoundingBox",
    },
    "lane_label_category.json": {
        "document-version": "2020-08-15", "labels": [{"label": "Lane"}],
        "instructions": _INSTRUCTIONS["lane"], "annotationType": "Polyline",
    },
    "lane_label_category_audit.json": {
        "document-version": "2020-08-15", "labels": [{"label": "Lane", "attributes": [_AUDIT]}],
        "instructions": _INSTRUCTIONS["lane"], "annotationType": "Polyline",
    },
}


@dataclass
class SyntheticVideo:
    frames: dict[str, bytes]  # file name -> JPEG
    gt_lines: list[str]  # MOT gt.txt lines
    lanes: list[list[tuple[float, float]]]
    size: tuple[int, int]


def generate_video(n_frames: int = 30, size: tuple[int, int] = (320, 180), seed: int = 0,
                   n_cars: int = 4) -> SyntheticVideo:
    """Cars driving along lanes toward the camera, with their boxes in MOT format."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    width, height = size
    horizon = int(height * 0.35)
    vanish_x = width / 2
    # Lane boundaries at the bottom edge, converging to the vanishing point.
    bottoms = [width * f for f in (0.05, 0.35, 0.65, 0.95)]
    top_y = horizon + 2

    def lane_x(bottom: float, y: float) -> float:
        t = (y - top_y) / (height - 1 - top_y)
        return vanish_x + (bottom - vanish_x) * t

    lanes = [[(round(b, 1), float(height - 1)), (round(lane_x(b, top_y), 1), float(top_y))] for b in bottoms]
    cars = []
    for car_id in range(1, n_cars + 1):
        lane = rng.randrange(len(bottoms) - 1)
        cars.append({
            "id": car_id, "lane": lane, "start": rng.uniform(0.0, 0.5), "speed": rng.uniform(0.015, 0.03),
            "color": tuple(rng.randrange(40, 230) for _ in range(3)),
        })

    frames: dict[str, bytes] = {}
    gt_lines: list[str] = []
    for f in range(1, n_frames + 1):
        img = Image.new("RGB", size, (135, 180, 225))
        draw = ImageDraw.Draw(img)
        draw.rectangle([0, horizon, width, height], fill=(90, 90, 95))
        for lane in lanes:
            draw.line([lane[0], lane[1]], fill=(240, 240, 240), width=2)
        boxes = []
        for car in cars:
            travelled = car["start"] + car["speed"] * (f - 1)
            progress = travelled % 1.0
            # A car past the bottom edge is gone; the one entering at the horizon is another car, with
            # its own MOT id (one id per trajectory: reusing it would teleport the object).
            track_id = car["id"] + n_cars * int(travelled)
            y_bottom = top_y + 8 + progress * (height - top_y - 8)
            center = (lane_x(bottoms[car["lane"]], y_bottom) + lane_x(bottoms[car["lane"] + 1], y_bottom)) / 2
            scale = (y_bottom - top_y) / (height - top_y)
            w, h = max(6, round(70 * scale)), max(4, round(45 * scale))
            left, top = round(center - w / 2), round(y_bottom - h)
            boxes.append((y_bottom, car, track_id, left, top, w, h))
        for _, car, track_id, left, top, w, h in sorted(boxes, key=lambda b: b[0]):  # far cars first
            draw.rectangle([left, top, left + w, top + h], fill=car["color"], outline=(20, 20, 20))
            draw.rectangle([left + w * 0.2, top + h * 0.15, left + w * 0.8, top + h * 0.45], fill=(40, 50, 60))
            gt_lines.append(f"{f},{track_id},{left},{top},{w},{h},1,{MOT_CAR_CLASS},1.0")
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=80)
        frames[f"{f:06d}.jpg"] = buf.getvalue()
    return SyntheticVideo(frames, gt_lines, lanes, size)


def upload_demo_data(s3: S3, bucket: str, *, n_frames: int = 30, seed: int = 0) -> dict[str, Any]:
    video = generate_video(n_frames=n_frames, seed=seed)
    root = f"s3://{bucket}/{VIDEO_PREFIX}"
    for name, body in video.frames.items():
        s3.put_bytes(f"{root}/img1/{name}", body, "image/jpeg")
    s3.put_bytes(f"{root}/gt/gt.txt", ("\n".join(video.gt_lines) + "\n").encode(), "text/plain")
    s3.put_json(f"{root}/gt/lanes.json", {"lanes": video.lanes})
    s3.put_bytes(f"{root}/seqinfo.ini", (
        f"[Sequence]\nname={VIDEO}\nimDir=img1\nframeRate=25\nseqLength={n_frames}\n"
        f"imWidth={video.size[0]}\nimHeight={video.size[1]}\nimExt=.jpg\n").encode(), "text/plain")

    # As the notebook: files[:300:2] -> frames numbered 1..n in the sequence file.
    seq = build_sequence(video.frames, f"{root}/img1/", step=2, limit=300)
    seq_uri = f"s3://{bucket}/{MANIFEST_PREFIX}/{VIDEO}_seq.json"
    s3.put_json(seq_uri, seq)
    manifest_uri = f"s3://{bucket}/{MANIFEST_PREFIX}/{VIDEO}.manifest"
    s3.put_bytes(manifest_uri, (manifest_line(seq_uri) + "\n").encode(), "application/jsonlines")
    configs = {}
    for name, config in LABEL_CONFIGS.items():
        uri = f"s3://{bucket}/{MANIFEST_PREFIX}/{name}"
        s3.put_json(uri, config)
        configs[name.removesuffix(".json")] = uri
    return {
        "manifest_uri": manifest_uri, "sequence_uri": seq_uri, "frames_prefix": f"{root}/img1/",
        "gt_uri": f"{root}/gt/gt.txt", "frame_count": n_frames, "sequence_frames": seq["number-of-frames"],
        "label_configs": configs,
    }


__all__ = ["LABEL_CONFIGS", "generate_video", "upload_demo_data"]
