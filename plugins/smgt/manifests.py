"""Manifest chaining, down-sampling and frame inputs (SPEC sections 5 and 6).

A chained job's input manifest is its parent's *output* manifest, optionally down-sampled:

- video / point-cloud sequences are sampled on **frames**: each line's sequence file is rewritten
  with `ceil(n * rate / 100)` of its `n` frames (at least one) and the line points at the new file;
- images (and single-frame point clouds) are sampled on **lines**.

The sample is seeded from (batch id, job name[, the sequence's source-ref]), so a retry or a re-run
in another process picks the same frames: lines by selection sampling with a random.Random seeded
through SHA-256 (sample_seed), frames by SHAKE-256 keys (frame_picks). It is uniform ("random", the
default) or "targeted": the parent's labels are scored by smgt.qa and the budget is filled with the
riskiest frames (lines) first, an exploration share drawn uniformly from the rest
(`targeted_choice`). What was chosen is written as JSON lines next to the new manifest and
summarised in a small dict for XCom / batch show.

Manifests can be gigabytes: nothing here reads a whole manifest. Lines are streamed (S3 bodies via
`iter_lines`; line sampling and copying walk raw chunks, `iter_chunks`, and parse a line only when
its bytes do not settle the checks), output goes to a temporary file on disk and is uploaded with
`upload_file` (multipart above its threshold). Only one sequence file (a few thousand frames at
most) is held at a time, split into the bytes of its frames rather than decoded
(sample_sequence_file).

The same code runs on local paths (benchmark, tests) and on S3 (the DAG) through `Storage`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import random
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import groupby
from typing import IO, Any, Literal, TypeVar

import msgspec

from smgt.config import parse_s3_uri
from smgt.registry import MediaKind
from smgt.sequences import build_sequence, manifest_line

_T = TypeVar("_T")

# 1 MiB reads: large enough that per-chunk overhead vanishes, small enough to keep memory flat.
READ_CHUNK = 1 << 20
FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png")
RECORD_SUFFIX = ".sampling.jsonl"
# Sequences (or lines) detailed in the summary; it travels as XCom, the full record is a file.
SUMMARY_LIMIT = 10
# Down-sampling strategies (inputConfig.samplingStrategy): a seeded uniform sample, or the
# highest-risk frames (smgt.qa) first with an exploration share drawn at random.
RANDOM, TARGETED = "random", "targeted"
STRATEGIES = (RANDOM, TARGETED)
DEFAULT_EXPLORATION = 10.0  # percent of each budget
RECORD_REASONS = 3  # reasons kept per chosen frame in the sampling record


class ManifestError(ValueError):
    """A manifest, sequence file or frame prefix that cannot be used as asked."""


# --------------------------------------------------------------------------------------------------
# Storage: s3://bucket/key or a local path (optionally file://...)
# --------------------------------------------------------------------------------------------------


def is_s3_uri(uri: str) -> bool:
    return uri.startswith("s3://")


def join_uri(prefix: str, name: str) -> str:
    return prefix.rstrip("/") + "/" + name


def parent_uri(uri: str) -> str:
    return uri.rsplit("/", 1)[0]


def _local_path(uri: str) -> str:
    return uri[len("file://") :] if uri.startswith("file://") else uri


@contextmanager
def _missing_object(uri: str) -> Iterator[None]:
    """A missing file or S3 object read inside the block becomes ManifestError naming `uri`."""
    try:
        yield
    except FileNotFoundError:
        raise ManifestError(f"{uri}: no such file") from None
    except Exception as exc:
        # NoSuchKey is a modelled error class of the client, so it cannot be imported up front.
        if type(exc).__name__ == "NoSuchKey":
            raise ManifestError(f"{uri}: no such object") from None
        raise


class Storage:
    """The few I/O operations manifest work needs, for S3 URIs and local paths alike.

    `s3_client` is a boto3 S3 client; it is created lazily so local-only use needs no AWS config.
    """

    def __init__(self, s3_client: Any = None, *, tmp_dir: str | None = None) -> None:
        self._s3 = s3_client
        self.tmp_dir = tmp_dir
        # Local folders this Storage made or found: a frame down-sampling writes thousands of files
        # into one folder, and a makedirs per file (a stat and a failing mkdir) costs more than its
        # write. A folder removed behind our back is made again (_local_dir).
        self._made_dirs: set[str] = set()

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            import boto3

            self._s3 = boto3.client("s3")
        return self._s3

    @contextmanager
    def _s3_body(self, uri: str) -> Iterator[Any]:
        """The streaming body of an S3 object, closed on leaving (an abandoned generator reading it
        must not keep the HTTP connection busy)."""
        bucket, key = parse_s3_uri(uri)
        body = self.s3.get_object(Bucket=bucket, Key=key)["Body"]
        try:
            yield body
        finally:
            body.close()

    def iter_lines(self, uri: str) -> Iterator[bytes]:
        """Lines of an object without their line ending, streamed."""
        if is_s3_uri(uri):
            with self._s3_body(uri) as body:
                yield from body.iter_lines(chunk_size=READ_CHUNK)
        else:
            with open(_local_path(uri), "rb", buffering=READ_CHUNK) as f:
                for line in f:
                    yield line.rstrip(b"\r\n")

    def iter_chunks(self, uri: str) -> Iterator[bytes]:
        """The raw bytes of an object in pieces of at most READ_CHUNK, streamed (no line splitting)."""
        if is_s3_uri(uri):
            with self._s3_body(uri) as body:
                yield from body.iter_chunks(chunk_size=READ_CHUNK)
        else:
            with open(_local_path(uri), "rb", buffering=0) as f:
                while chunk := f.read(READ_CHUNK):
                    yield chunk

    def read_bytes(self, uri: str) -> bytes:
        """A small object (sequence file, label config), read whole.

        Raises ManifestError when the object does not exist.
        """
        if not is_s3_uri(uri):
            try:
                return _read_file(_local_path(uri))
            except FileNotFoundError:
                raise ManifestError(f"{uri}: no such file") from None
        with _missing_object(uri):
            bucket, key = parse_s3_uri(uri)
            return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()

    def read_json(self, uri: str) -> Any:
        """A small JSON document (sequence file, label config), read whole and decoded.

        Raises ManifestError when the object does not exist or is not valid JSON.
        """
        return _decoded(self.read_bytes(uri), uri)

    def read_head(self, uri: str, size: int) -> bytes:
        """The first `size` bytes of an object (S3: one ranged GET), e.g. an image's header.

        Raises ManifestError when the object does not exist.
        """
        with _missing_object(uri):
            if is_s3_uri(uri):
                bucket, key = parse_s3_uri(uri)
                return self.s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{size - 1}")["Body"].read()
            with open(_local_path(uri), "rb") as f:
                return f.read(size)

    def write_json(self, uri: str, obj: Any, *, atomic: bool = True) -> None:
        """Write `obj` as compact JSON (UTF-8) to `uri`, atomically (see open_write).

        Locally, `atomic=False` creates a file that does not exist yet straight under its name: for
        files that only count once something written atomically after them refers to them (a
        down-sampling's sequence files, then its manifest), where a temporary name, a chmod and a
        rename per file cost more than the write. A file that exists (a retry, which someone may be
        reading) is still replaced atomically.
        """
        self.write_bytes(uri, _encode_json(obj), atomic=atomic)

    def write_bytes(self, uri: str, data: bytes, *, atomic: bool = True,
                    content_type: str = "application/json") -> None:
        """Write `data` to `uri`; `atomic` as for write_json."""
        if is_s3_uri(uri):
            bucket, key = parse_s3_uri(uri)
            self.s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)
            return
        if not atomic and self._create_local(uri, data):
            return
        with self.open_write(uri) as f:
            f.write(data)

    def _create_local(self, uri: str, data: bytes) -> bool:
        """Create the local file `uri` with `data` straight under its name; False when it exists."""
        path = _local_path(uri)
        try:
            fd = self._in_local_dir(os.path.dirname(path) or ".", lambda: os.open(path, _NEW_FILE, 0o644))
        except FileExistsError:
            return False
        _write_all(fd, data)
        return True

    def create_if_absent(self, uri: str, data: bytes, *, content_type: str = "application/json") -> bool:
        """Write `data` to `uri` only if nothing is there yet; False when something is (then nothing
        is written). Atomic against any other writer: on S3 a conditional PUT (If-None-Match: *,
        https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html; SeaweedFS and
        moto honour it too), locally an exclusive create followed by a rename-free write."""
        if is_s3_uri(uri):
            from botocore.exceptions import ClientError

            bucket, key = parse_s3_uri(uri)
            for attempt in range(5):
                try:
                    self.s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type, IfNoneMatch="*")
                except ClientError as exc:
                    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                    if status == 412:  # the object exists
                        return False
                    if status == 409 and attempt < 4:  # ConditionalRequestConflict: S3 says try again
                        time.sleep(0.2 * 2**attempt)
                        continue
                    raise
                return True
        return self._create_local(uri, data)

    def put_file(self, local_file: str, uri: str) -> None:
        """Copy a finished local file to `uri` (S3: managed, multipart upload for large files)."""
        if is_s3_uri(uri):
            bucket, key = parse_s3_uri(uri)
            self.s3.upload_file(local_file, bucket, key)
        else:
            dest = _local_path(uri)
            self._in_local_dir(os.path.dirname(dest) or ".", lambda: os.replace(local_file, dest))

    def _local_dir(self, path: str, *, again: bool = False) -> str:
        """`path`, made (with its parents) unless this Storage already made or found it."""
        if again or path not in self._made_dirs:
            os.makedirs(path, exist_ok=True)
            self._made_dirs.add(path)
        return path

    def _in_local_dir(self, folder: str, action: Callable[[], _T]) -> _T:
        """`action()`, which makes an entry in the local `folder`: the folder is made first unless this
        Storage made or found it; removed behind our back since, it is made again and `action` retried."""
        self._local_dir(folder)
        try:
            return action()
        except FileNotFoundError:
            self._local_dir(folder, again=True)
            return action()

    @contextmanager
    def open_write(self, uri: str) -> Iterator[IO[bytes]]:
        """A binary file to write `uri` through; it appears at `uri` only if the block succeeds.

        Locally the temporary file sits in the destination folder so the final rename is atomic;
        for S3 it sits in `tmp_dir` (system default) and is uploaded, then deleted.
        """
        tmp_parent = self.tmp_dir if is_s3_uri(uri) else (os.path.dirname(_local_path(uri)) or ".")

        def make_temporary() -> tuple[int, str]:
            return tempfile.mkstemp(prefix=".smgt-", suffix=".part", dir=tmp_parent)

        fd, tmp = make_temporary() if tmp_parent is None else self._in_local_dir(tmp_parent, make_temporary)
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would otherwise stick to the renamed local file
        try:
            with os.fdopen(fd, "wb", buffering=READ_CHUNK) as f:
                yield f
            self.put_file(tmp, uri)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def list_uris(self, prefix_uri: str) -> Iterator[str]:
        """Every object under a folder-like prefix, in lexicographic key order (S3: paginated)."""
        prefix_uri = prefix_uri.rstrip("/") + "/"
        if is_s3_uri(prefix_uri):
            bucket, key = parse_s3_uri(prefix_uri)
            pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key)
            for page in pages:
                for obj in page.get("Contents", ()):
                    if not obj["Key"].endswith("/"):
                        yield f"s3://{bucket}/{obj['Key']}"
            return
        root = _local_path(prefix_uri)
        # Walking sorted keeps every top-level folder's files contiguous, as S3 listing does.
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            rel = os.path.relpath(dirpath, root)
            for name in sorted(filenames):
                yield prefix_uri + (name if rel == "." else f"{rel}/{name}")


# A frame down-sampling reads and writes a sequence file per line: plain os calls, without the
# buffered file object open() builds around them (~5 µs of the ~10 µs a small file costs).
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC


def _read_file(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        pieces = []
        while piece := os.read(fd, READ_CHUNK):
            pieces.append(piece)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    """Write `data` to the new file `fd` and close it (os.write may write less than asked)."""
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def as_storage(storage_or_client: Storage | Any) -> Storage:
    """Accept a `Storage` or a bare boto3 S3 client."""
    return storage_or_client if isinstance(storage_or_client, Storage) else Storage(storage_or_client)


# --------------------------------------------------------------------------------------------------
# Sampling primitives
# --------------------------------------------------------------------------------------------------


def sample_seed(batch_id: str, job_name: str, source_ref: str = "") -> int:
    """Seed for a job's sample; SHA-256 because Python's str hash is salted per process."""
    digest = hashlib.sha256(frame_seed(batch_id, job_name, source_ref)).digest()
    return int.from_bytes(digest[:8], "big")


def frame_seed(batch_id: str, job_name: str, source_ref: str) -> bytes:
    """What a sequence's frame picks are drawn from (frame_picks): its batch, job and source-ref."""
    return "\x1f".join((batch_id, job_name, source_ref)).encode()


def check_rate(rate: float | None) -> float | None:
    # bool is an int subclass: True would otherwise pass as 1 %.
    valid = isinstance(rate, int | float) and not isinstance(rate, bool) and 0 < rate <= 100
    if rate is not None and not valid:
        raise ManifestError(f"downSamplingRate: must be a number with 0 < rate <= 100, got {rate!r}")
    return rate


def is_copy_rate(rate: float | None) -> bool:
    return check_rate(rate) is None or rate == 100


def kept_count(n: int, rate: float | None) -> int:
    """`ceil(n * rate / 100)`, at least 1 of a non-empty set.

    Computed on the decimal value of the rate (Fraction(str(rate))) so e.g. 7 % of 100 is 7,
    not the 8 that binary float rounding (100 * 0.07 = 7.000000000000001) would give.
    """
    check_rate(rate)
    if n <= 0:
        return 0
    if rate is None:
        return n
    return _kept_count(n, rate)


@functools.lru_cache(maxsize=4096)
def _kept_count(n: int, rate: float) -> int:
    # Cached: a frame down-sampling asks once per sequence, mostly for the same few lengths, and
    # the Fraction costs more than the rest of the pick.
    return min(n, max(1, math.ceil(Fraction(str(rate)) * n / 100)))


def frame_picks(n: int, k: int, seed: bytes) -> list[int]:
    """k of the indices range(n), ascending: a uniform sample without replacement, the same for the
    same seed in any process.

    Each index gets a 64-bit key from SHAKE-256(seed) (FIPS 202's extendable output: 8 bytes per
    index); the k smallest keys win, ties to the lower index. The k smallest of n independent uniform
    keys are a uniform k-subset (random sort; Efraimidis & Spirakis, "Weighted random sampling with a
    reservoir", IPL 97(5), 2006, with equal weights). One hash and one NumPy sort per sequence: ~4x
    cheaper than seeding a random.Random and calling sample() on 200 frames, which a frame
    down-sampling pays on every line.
    """
    if k >= n:
        return list(range(n))
    import numpy as np  # not at module import: DAG files import this module

    keys = np.frombuffer(hashlib.shake_256(seed).digest(8 * n), dtype="<u8")
    return np.sort(np.argsort(keys, kind="stable")[:k]).tolist()


def sample_sequence(sequence: dict[str, Any], rate: float | None, seed: bytes) -> dict[str, Any]:
    """A copy of a sequence file with only the sampled frames (frame_picks), in their original order.

    Frame objects are kept as they are (frame-no, frame, unix-timestamp, point-cloud poses...). The
    chained job finds its frames in the parent's SeqLabel.json by frame file name (`frame`), which
    GT's label file repeats as `frame` (video) or `frame-name` (3D); see seq_label_frames.
    """
    frames = sequence.get("frames")
    if not isinstance(frames, list):
        raise ManifestError(_NO_FRAMES)
    kept = frame_picks(len(frames), kept_count(len(frames), rate), seed)
    sampled = dict(sequence)
    sampled["frames"] = [frames[i] for i in kept]
    sampled["number-of-frames"] = len(kept)
    return sampled


_NO_FRAMES = "sequence file has no 'frames' list"


class _FrameName(msgspec.Struct):
    """What _frame_label reads of a frame object; its other fields are skipped unread."""

    frame: Any = msgspec.UNSET
    frame_no: Any = msgspec.field(name="frame-no", default=msgspec.UNSET)


_SEQUENCE_FIELDS = msgspec.json.Decoder(dict[str, msgspec.Raw])
_RAW_ITEMS = msgspec.json.Decoder(list[msgspec.Raw])
_FRAME_NAMES = msgspec.json.Decoder(list[_FrameName])


def sample_sequence_file(data: bytes, rate: float | None, seed: bytes, uri: str = "") -> tuple[bytes, int, list[Any]]:
    """sample_sequence on a sequence file's bytes: (the sampled file's bytes, frames in, the kept
    frames' labels as the sampling record lists them).

    Only the top level and the frames list are split, into the bytes of each value (msgspec.Raw):
    kept frames and the other fields are written back as they were read, not decoded into objects
    and encoded again, which would cost more than the rest of the work. Raises ManifestError when
    `data` is not a JSON object with a 'frames' list (`uri` names the file in the message).
    """
    try:
        fields = _SEQUENCE_FIELDS.decode(data)
    except msgspec.DecodeError:
        # Not an object, or JSON that msgspec refuses but json.loads reads (NaN, a byte-order mark,
        # UTF-16): read it the way read_json does, then split what it holds.
        sequence = _decoded(data, uri)
        if not isinstance(sequence, dict):
            raise ManifestError("not a JSON object") from None
        fields = _SEQUENCE_FIELDS.decode(_encode_json(sequence))
    try:
        frames = _RAW_ITEMS.decode(fields["frames"])
    except (KeyError, msgspec.DecodeError):
        raise ManifestError(_NO_FRAMES) from None
    kept = frame_picks(len(frames), kept_count(len(frames), rate), seed)
    kept_frames = b"[%b]" % b",".join([frames[i] for i in kept])
    try:
        names = _FRAME_NAMES.decode(kept_frames)
    except msgspec.ValidationError:  # frames that are not objects: each is its own label
        labels = _frame_labels(decode_json(kept_frames))
    else:
        labels = [f.frame for f in names]
        if msgspec.UNSET in labels:  # a frame without "frame": its "frame-no" (or None), as _frame_label
            labels = [f.frame_no if f.frame is msgspec.UNSET else f.frame for f in names]
            labels = [None if label is msgspec.UNSET else label for label in labels]
    fields["frames"] = msgspec.Raw(kept_frames)
    fields["number-of-frames"] = msgspec.Raw(b"%d" % len(kept))
    return _encode_json(fields), len(frames), labels


def exploration_count(budget: int, exploration: float, rng: random.Random) -> int:
    """How many of `budget` picks are exploration: `budget * exploration / 100`, its fraction rounded
    up with that probability (one draw from `rng`), so the share holds on average even for budgets of
    a few frames, where plain rounding would always give 0 or always 1."""
    exact = budget * Fraction(str(exploration)) / 100
    whole = math.floor(exact)
    return min(budget, whole + (1 if rng.random() < exact - whole else 0))


def targeted_choice(risks: list[float], budget: int, exploration: float,
                    rng: random.Random) -> list[tuple[int, str]]:
    """Pick `budget` of `len(risks)` items: the highest risks first, an exploration share at random.

    Returns (index, pick) sorted by index, pick being "risk" (chosen for its risk > 0), "explore"
    (drawn uniformly from every item not chosen for risk, so each had the same chance: the unbiased
    part) or "fill" (risk 0, drawn at random because fewer than the budget carry any risk). Ties in
    risk are broken at random. Deterministic for the state of `rng`.
    """
    n = len(risks)
    budget = min(budget, n)
    explore = exploration_count(budget, exploration, rng)
    tiebreak = [rng.random() for _ in range(n)]
    order = sorted(range(n), key=lambda i: (-risks[i], tiebreak[i]))
    by_risk = order[: budget - explore]
    chosen = {i: ("risk" if risks[i] > 0 else "fill") for i in by_risk}
    rest = sorted(set(range(n)) - set(by_risk))
    for i in rng.sample(rest, explore):
        chosen[i] = "explore"
    return sorted(chosen.items())


def _frame_label(frame: Any) -> Any:
    return frame.get("frame", frame.get("frame-no")) if isinstance(frame, dict) else frame


def _frame_labels(frames: list[Any]) -> list[Any]:
    """[_frame_label(f) for f in frames], without a call per frame (a record lists every kept frame)."""
    return [
        (f["frame"] if "frame" in f else f.get("frame-no")) if isinstance(f, dict) else f
        for f in frames
    ]


# --------------------------------------------------------------------------------------------------
# A parent's labels: Ground Truth's SeqLabel.json
# --------------------------------------------------------------------------------------------------
#
# GT writes one SeqLabel.json per labeled video or point-cloud sequence
# (https://docs.aws.amazon.com/sagemaker/latest/dg/sms-data-output.html, "Video frame object
# detection/tracking output" and "3D point cloud object tracking output"):
#
#   video  {"tracking-annotations" | "detection-annotations": [{"frame-no": 0, "frame": "000001.jpg",
#           <list>: [...], "frame-attributes": {...}}, ...]}, <list> named after the tool: "annotations"
#           (boxes: height, width, top, left), "polylines" and "polygons" ({"vertices": [{"x", "y"}, ...]}),
#           "keypoints" ({"x", "y"}); every item also has "class-id" (a string), "label-category-attributes"
#           and, for tracking, "object-id" (same on every frame) and "object-name" ("<label>:<n>")
#   3D     {"tracking-annotations": [{"frame-number": 0, "frame-name": "0.txt.pcd", "frame-attributes": {...},
#           "annotations": [cuboids: "object-id", "object-name", "class-id" (a number), "center-x/y/z",
#           "length", "width", "height", "roll", "pitch", "yaw", "label-category-attributes"]}, ...]}
#
# `vertices` as the list of a polyline's points is also what public code reading GT's video output
# uses, e.g. `polyline["vertices"][0]["x"]` over `frame["polylines"]`; keypoints are read as
# `annotation["x"]` over `frame["keypoints"]` (cunningham-lab/neurocaas,
# ncap_iac/protocols/data_format_lambda.py). frame-no / frame-number count the frames of the labeled
# sequence from 0, so a job whose sequence was down-sampled finds its frames by name, not by number.

# Per-frame list of a video SeqLabel.json for each annotationType of the label category config.
SEQ_LABEL_LISTS = {"BoundingBox": "annotations", "Polyline": "polylines", "Polygon": "polygons",
                   "Keypoint": "keypoints"}


def seq_label_frames(seq_label: Any, key: str) -> dict[str, dict[str, Any]]:
    """The frames of a SeqLabel.json body, by frame file name (video: `frame`, 3D: `frame-name`).

    key: "tracking-annotations" or "detection-annotations". Raises ManifestError naming the problem
    when the body has no such list or a frame names no file.
    """
    frames = seq_label.get(key) if isinstance(seq_label, dict) else None
    if not isinstance(frames, list):
        raise ManifestError(f"SeqLabel has no {key!r} list")
    out: dict[str, dict[str, Any]] = {}
    for i, frame in enumerate(frames):
        name = frame.get("frame", frame.get("frame-name")) if isinstance(frame, dict) else None
        if not isinstance(name, str):
            raise ManifestError(f"SeqLabel {key}[{i}] names no frame file ('frame' or 'frame-name')")
        out[name] = frame
    return out


def shape_vertices(item: Any) -> list[dict[str, Any]]:
    """The vertices [{"x", "y"}, ...] (pixels) of a video polyline or polygon item of a SeqLabel.json.

    GT names the list `vertices`. Files the local emulator wrote before it followed that layout name
    it `points`; they are read too (readers accept both, the emulator writes only `vertices`).
    Raises ManifestError when neither is a list of points with numeric x and y.
    """
    raw = item.get("vertices", item.get("points")) if isinstance(item, dict) else None
    if not isinstance(raw, list) or not all(
        isinstance(v, dict) and all(isinstance(v.get(c), int | float) and not isinstance(v.get(c), bool)
                                    for c in ("x", "y")) for v in raw):
        raise ManifestError("not a polyline/polygon item: needs 'vertices', a list of {\"x\", \"y\"}")
    return [{"x": v["x"], "y": v["y"]} for v in raw]


# --------------------------------------------------------------------------------------------------
# Chaining / down-sampling
# --------------------------------------------------------------------------------------------------


@dataclass
class SamplingSummary:
    """What a chained input manifest holds; small enough for XCom. The full record is at record_uri."""

    manifest_uri: str
    record_uri: str | None  # None when nothing was sampled (rate None / 100: a plain copy)
    media: str
    level: Literal["frames", "lines", "copy"]
    rate: float | None
    lines_in: int = 0
    lines_out: int = 0
    frames_in: int | None = None  # frame level only
    frames_out: int | None = None
    lines_without_label: int = 0  # parent output lines with metadata but no label (failed objects)
    # Per sequence (frame level) or per kept line (line level), only the first SUMMARY_LIMIT.
    samples: list[dict[str, Any]] = field(default_factory=list)
    samples_truncated: bool = False
    strategy: str = RANDOM
    exploration: float | None = None  # targeted only: percent of each budget drawn at random

    def to_dict(self) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.strategy != RANDOM:
            extra = {"strategy": self.strategy, "explorationPercent": self.exploration}
        return {
            "manifestUri": self.manifest_uri,
            "recordUri": self.record_uri,
            "media": self.media,
            "level": self.level,
            "rate": self.rate,
            "linesIn": self.lines_in,
            "linesOut": self.lines_out,
            "framesIn": self.frames_in,
            "framesOut": self.frames_out,
            "linesWithoutLabel": self.lines_without_label,
            "samples": self.samples,
            "samplesTruncated": self.samples_truncated,
            **extra,
        }


def record_uri_for(manifest_uri: str) -> str:
    return manifest_uri + RECORD_SUFFIX


def _content_lines(storage: Storage, uri: str) -> Iterator[bytes]:
    # GT tolerates blank lines (e.g. a trailing newline); they are neither objects nor counted.
    for line in storage.iter_lines(uri):
        if line.strip():
            yield line


# Line sampling and copying read the manifest as byte runs, not as one Python object per line: a line
# that is written unchanged is checked on its bytes and parsed only when they do not show what the
# check needs (then json.loads gives the same verdict and message as a full parse would).


def _line_runs(storage: Storage, uri: str) -> Iterator[tuple[bytes, int, int]]:
    """The lines of `uri` as runs `(buf, start, end)`: buf[start:end] is whole lines, each ended by
    b"\\n" (the object's last line gets one if it has none) and holding no other line ending. Blank
    lines are left in: the callers skip them.

    The same lines as Storage.iter_lines: most chunks hold no b"\\r" and are used in place; a run
    holding one is split the way iter_lines splits (locally on b"\\n", stripping a trailing b"\\r";
    on S3 as botocore does, bytes.splitlines) and joined again with b"\\n".
    """
    s3 = is_s3_uri(uri)
    parts: list[bytes] = []  # a line spanning chunks
    for chunk in storage.iter_chunks(uri):
        first = chunk.find(b"\n")
        if first < 0:
            parts.append(chunk)
            continue
        start = 0
        if parts:
            parts.append(chunk[: first + 1])
            head = b"".join(parts)
            parts = []
            yield _checked_run(head, 0, len(head), s3)
            start = first + 1
        last = chunk.rfind(b"\n") + 1
        if start < last:
            yield _checked_run(chunk, start, last, s3)
        if last < len(chunk):
            parts.append(chunk[last:])
    if parts:
        parts.append(b"\n")
        tail = b"".join(parts)
        yield _checked_run(tail, 0, len(tail), s3)


def _checked_run(buf: bytes, start: int, end: int, s3: bool) -> tuple[bytes, int, int]:
    if buf.find(b"\r", start, end) < 0:
        return buf, start, end
    data = buf[start:end]
    # Locally a line ends at b"\n" only (a trailing b"\r" stripped); botocore splits at b"\r" too.
    lines = data.splitlines() if s3 else [line.rstrip(b"\r") for line in data[:-1].split(b"\n")]
    data = b"".join(line + b"\n" for line in lines)
    return data, 0, len(data)


def _count_content_lines(storage: Storage, uri: str) -> int:
    total = 0
    for buf, start, end in _line_runs(storage, uri):
        find, p = buf.find, start
        while p < end:
            q = find(b"\n", p, end)
            # A blank line is not an object; the first byte settles it for every manifest line ("{").
            if buf[p] == 0x7B or buf[p:q].strip():
                total += 1
            p = q + 1
    return total


# A line read on its bytes: an object whose first key is "source-ref", holding a string that json.dumps
# writes as it is (printable ASCII without '"' or '\\'), then "," or "}"; see _LabelCheck.source_ref.
_BLANK = rb"[ \t]*"
_SOURCE_REF_FIRST = rb'\{%s"source-ref"%s:%s("[ !#-\[\]-~]*")%s' % (_BLANK, _BLANK, _BLANK, _BLANK)
_KEY_COLON = re.compile(_BLANK + b":")


def _parse_line(line: bytes, number: int, uri: str) -> dict[str, Any]:
    try:
        obj = decode_json(line)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{uri}: line {number + 1} is not valid JSON ({exc})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("source-ref"), str):
        raise ManifestError(f"{uri}: line {number + 1} is not a JSON object with a 'source-ref' string")
    return obj


class _LabelCheck:
    """Checks that lines come from the parent's output (carry `<attr>-metadata`), on a parsed line
    (__call__) or on its bytes (source_ref)."""

    def __init__(self, attribute: str | None, uri: str) -> None:
        self.attribute, self.uri, self.missing = attribute, uri, 0
        after = rb"[,}]"
        if attribute is not None:  # the keys as json.dumps writes them
            self._meta_key = json.dumps(f"{attribute}-metadata").encode()
            self._label_key = json.dumps(attribute).encode()
            # GT writes the label right after the source-ref: then the pattern sees it (group 2).
            after = rb"(?:,%s(%s)%s:|[,}])" % (_BLANK, re.escape(self._label_key), _BLANK)
        self._line_start = re.compile(_SOURCE_REF_FIRST + after)

    def __call__(self, obj: dict[str, Any], number: int) -> None:
        if self.attribute is None:
            return
        if f"{self.attribute}-metadata" not in obj:
            raise ManifestError(
                f"{self.uri}: line {number + 1} has no '{self.attribute}-metadata'; "
                f"is this the output manifest of the job labelling '{self.attribute}'?"
            )
        if self.attribute not in obj:
            self.missing += 1  # GT keeps objects whose labelling failed, with only a failure-reason

    def source_ref(self, buf: bytes, p: int, q: int) -> bytes | None:
        """The JSON token of the "source-ref" of line buf[p:q] when its bytes settle what parsing it
        and calling the check would (no error, a label), else None: the caller then parses the line
        (parsed_source_ref), with the same errors and failed-object count as before.

        The bytes settle it when the line is an object starting with a "source-ref" string that
        json.dumps writes as it is, it ends with the "}" closing the object, and (with an attribute)
        `"<attr>-metadata"` and `"<attr>"` are keys. A key is the quoted name followed by ":", its
        opening quote not escaped: inside a JSON string a quote is always escaped, so such bytes are
        a key, not text. Not looked at: the syntax of the rest of the line (Ground Truth validates
        its input manifest), a second "source-ref" key (json.loads would keep the last) and whether
        a label key is nested in another object (GT writes both at the top level).
        """
        m = self._line_start.match(buf, p, q)
        if m is None or buf[q - 1] != 0x7D:
            return None
        if self.attribute is not None and not (
            _has_key(buf, p, q, self._meta_key, True)  # GT appends the metadata last
            and (m.lastindex == 2 or _has_key(buf, p, q, self._label_key, False))
        ):
            return None
        return m.group(1)

    def parsed_source_ref(self, line: bytes, number: int) -> bytes:
        """What source_ref gives, for a line its bytes did not settle: parsed and checked."""
        obj = _parse_line(line, number, self.uri)
        self(obj, number)
        return json.dumps(obj["source-ref"]).encode()


def _has_key(buf: bytes, p: int, q: int, key: bytes, from_end: bool) -> bool:
    i = buf.rfind(key, p, q) if from_end else buf.find(key, p, q)
    if i <= p or buf[i - 1] == 0x5C:
        return False
    i += len(key)
    return (i < q and buf[i] == 0x3A) or _KEY_COLON.match(buf, i, q) is not None


# A sampling record entry of a kept line, as _json_line writes {"line": n, "source-ref": s}.
_RECORD_ENTRY = b'{"line":%d,"source-ref":%b}\n'


# Compact JSON (what json.dumps(separators=(",", ":")) writes, except that non-ASCII text is UTF-8
# rather than \u escapes, which manifests and sequence files are read as), ~10x faster: a frame
# down-sampling writes every sampled sequence file anew.
_encode_json = msgspec.json.Encoder().encode
_decode_json = msgspec.json.Decoder().decode


def _decoded(data: bytes, uri: str) -> Any:
    """decode_json(data), its JSONDecodeError a ManifestError naming `uri`."""
    try:
        return decode_json(data)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{uri}: not valid JSON ({exc})") from None


def decode_json(data: bytes) -> Any:
    """The JSON document `data`, as json.loads gives it. msgspec's decoder first (4.5x json.loads on a
    sequence file, measured); what it refuses goes to json.loads, which accepts a little more (NaN, a
    byte-order mark, UTF-16) and raises its JSONDecodeError, with its message, for the rest."""
    try:
        return _decode_json(data)
    except msgspec.DecodeError:
        return json.loads(data)


def json_line(obj: Any) -> bytes:
    """One manifest line: compact JSON (UTF-8) and a newline."""
    return _encode_json(obj) + b"\n"


def _is_sequence_manifest(storage: Storage, uri: str, media: MediaKind) -> bool:
    if media is MediaKind.VIDEO:
        return True
    if media is MediaKind.IMAGE:
        return False
    # Point clouds: tracking uses sequence files (.json), single-frame tasks point at the cloud
    # itself (.pcd/.bin/.txt). The first line decides for the whole manifest.
    for number, line in enumerate(_content_lines(storage, uri)):
        return _parse_line(line, number, uri)["source-ref"].lower().endswith(".json")
    return False


def build_chained_manifest(
    storage: Storage | Any,
    parent_output_manifest_uri: str,
    out_manifest_uri: str,
    *,
    media: MediaKind | str,
    rate: float | None,
    batch_id: str,
    job_name: str,
    parent_label_attribute: str | None = None,
    sequences_prefix_uri: str | None = None,
    summary_limit: int = SUMMARY_LIMIT,
    strategy: str = RANDOM,
    exploration: float | None = None,
    count_rules: dict[str, list[str]] | None = None,
) -> SamplingSummary:
    """Write a chained job's input manifest from its parent's output manifest.

    `strategy` "random" samples uniformly; "targeted" scores the parent's labels (smgt.qa) and fills
    each budget (per sequence for frames, per manifest for lines) with the highest-risk frames or
    lines first, keeping `exploration` percent of it (default 10) drawn at random from the rest; the
    record then lists every chosen frame's risk, pick and reasons. Targeted needs
    `parent_label_attribute` (the label it scores); `count_rules` (frame attribute -> labels it
    counts) adds the frame-attribute check.

    Lines keep everything the parent's output put on them (label reference, `-metadata`); only
    `source-ref` changes, and only for down-sampled sequences. `rate` None or 100 copies the lines
    unchanged into the new manifest. Sampled sequence files go under `sequences_prefix_uri`
    (default: `sequences/` next to the new manifest); the record of chosen frames/lines goes to
    `record_uri_for(out_manifest_uri)`. `parent_label_attribute`, when given, makes a manifest that
    is not that parent's output fail here instead of in Ground Truth.
    """
    storage = as_storage(storage)
    media = MediaKind(media)
    check_rate(rate)
    if strategy not in STRATEGIES:
        raise ManifestError(f"samplingStrategy: must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    targeting = None
    if strategy == TARGETED and not is_copy_rate(rate):
        if parent_label_attribute is None:
            raise ManifestError("samplingStrategy 'targeted' needs the parent's label attribute to score its labels")
        exploration = DEFAULT_EXPLORATION if exploration is None else exploration
        if isinstance(exploration, bool) or not isinstance(exploration, int | float) or not 0 <= exploration <= 100:
            raise ManifestError(f"explorationPercent: must be a number from 0 to 100, got {exploration!r}")
        targeting = _Targeting(parent_label_attribute, float(exploration), count_rules)
    label_check = _LabelCheck(parent_label_attribute, parent_output_manifest_uri)
    if is_copy_rate(rate):
        summary = _copy_lines(storage, parent_output_manifest_uri, out_manifest_uri, label_check)
    elif _is_sequence_manifest(storage, parent_output_manifest_uri, media):
        summary = _sample_frames(
            storage,
            parent_output_manifest_uri,
            out_manifest_uri,
            sequences_prefix_uri or join_uri(parent_uri(out_manifest_uri), "sequences"),
            rate,
            batch_id,
            job_name,
            label_check,
            summary_limit,
            targeting,
        )
    else:
        summary = _sample_lines(
            storage,
            parent_output_manifest_uri,
            out_manifest_uri,
            rate,
            batch_id,
            job_name,
            label_check,
            summary_limit,
            targeting,
        )
    if targeting is not None:
        summary.strategy, summary.exploration = TARGETED, targeting.exploration
    summary.media = media.value
    summary.rate = rate
    summary.lines_without_label = label_check.missing
    return summary


@dataclass(frozen=True)
class _Targeting:
    label_attribute: str
    exploration: float
    count_rules: dict[str, list[str]] | None

    def score(self, storage: Storage, obj: dict[str, Any], number: int) -> Any:  # -> smgt.qa.ObjectRisk
        from smgt.qa import score_output_line  # smgt.qa reads labels through this module

        return score_output_line(storage, obj, self.label_attribute, line=number, count_rules=self.count_rules)


def _scored_pick(index_name: Any, risk: Any, pick: str) -> dict[str, Any]:
    """A chosen frame (or line) in the sampling record: its risk, why it was picked and the top reasons."""
    entry: dict[str, Any] = {"frame": index_name, "risk": round(risk.risk, 4) if risk else 0.0, "pick": pick}
    if risk is not None and risk.findings:
        entry["reasons"] = risk.reasons[:RECORD_REASONS]
    return entry


def _copy_lines(storage: Storage, src: str, dest: str, label_check: _LabelCheck) -> SamplingSummary:
    """Every line as it is, checked on its bytes (parsed only where they do not settle the checks);
    a run of lines without a blank one is written in one piece."""
    count = 0
    with storage.open_write(dest) as out:
        for buf, start, end in _line_runs(storage, src):
            find, p, blank = buf.find, start, False
            while p < end:
                q = find(b"\n", p, end)
                if buf[p] != 0x7B and not buf[p:q].strip():
                    blank = True  # dropped
                else:
                    if label_check.source_ref(buf, p, q) is None:
                        label_check.parsed_source_ref(buf[p:q], count)
                    count += 1
                p = q + 1
            if blank:
                out.write(b"".join(line + b"\n" for line in buf[start:end].split(b"\n") if line.strip()))
            else:
                out.write(memoryview(buf)[start:end])
    return SamplingSummary(dest, None, "", "copy", None, lines_in=count, lines_out=count)


def _sample_frames(
    storage: Storage,
    src: str,
    dest: str,
    sequences_prefix: str,
    rate: float | None,
    batch_id: str,
    job_name: str,
    label_check: _LabelCheck,
    summary_limit: int,
    targeting: _Targeting | None = None,
) -> SamplingSummary:
    record_uri = record_uri_for(dest)
    summary = SamplingSummary(dest, record_uri, "", "frames", rate)
    frames_in = frames_out = 0
    with storage.open_write(dest) as out, storage.open_write(record_uri) as record:
        for number, line in enumerate(_content_lines(storage, src)):
            obj = _parse_line(line, number, src)
            label_check(obj, number)
            source_ref = obj["source-ref"]
            targeted = None
            try:
                data = storage.read_bytes(source_ref)
                if targeting is None:
                    sampled, n_in, labels = sample_sequence_file(
                        data, rate, frame_seed(batch_id, job_name, source_ref), source_ref)
                else:
                    sequence = _decoded(data, source_ref)
                    if not isinstance(sequence, dict):
                        raise ManifestError("not a JSON object")
                    rng = random.Random(sample_seed(batch_id, job_name, source_ref))
                    kept, targeted = _target_sequence(storage, sequence, obj, number, rate, rng, targeting)
                    sampled, n_in, labels = _encode_json(kept), len(sequence["frames"]), _frame_labels(kept["frames"])
            except ManifestError as exc:
                raise ManifestError(f"{src}: line {number + 1}: sequence file {source_ref}: {exc}") from None
            # The line number keeps names unique when two videos' sequence files share a base name.
            sampled_ref = join_uri(sequences_prefix, f"{number:06d}-{source_ref.rsplit('/', 1)[-1]}")
            # Not atomic: the manifest, renamed into place at the end, is what makes it count.
            storage.write_bytes(sampled_ref, sampled, atomic=False)
            obj["source-ref"] = sampled_ref
            out.write(json_line(obj))

            n_out = len(labels)
            entry = {
                "line": number,
                "source-ref": source_ref,
                "sampled-ref": sampled_ref,
                "framesIn": n_in,
                "framesOut": n_out,
                "frames": labels,
            }
            if targeted is not None:
                entry.update(targeted)
            record.write(json_line(entry))
            summary.lines_in += 1
            summary.lines_out += 1
            frames_in += n_in
            frames_out += n_out
            if len(summary.samples) < summary_limit:
                summary.samples.append(entry)
            else:
                summary.samples_truncated = True
    summary.frames_in, summary.frames_out = frames_in, frames_out
    return summary


def _target_sequence(storage: Storage, sequence: dict[str, Any], obj: dict[str, Any], number: int,
                     rate: float | None, rng: random.Random, targeting: _Targeting) -> tuple[dict[str, Any], dict[str, Any]]:
    """The targeted sample of one sequence and what the record says about it."""
    frames = sequence.get("frames")
    if not isinstance(frames, list):
        raise ManifestError("sequence file has no 'frames' list")
    scored = targeting.score(storage, obj, number)
    by_name = {f.frame: f for f in scored.frames}
    risks = [by_name.get(_frame_label(f)) for f in frames]
    picks = targeted_choice([r.risk if r else 0.0 for r in risks], kept_count(len(frames), rate),
                            targeting.exploration, rng)
    sampled = dict(sequence)
    sampled["frames"] = [frames[i] for i, _ in picks]
    sampled["number-of-frames"] = len(picks)
    by_risk = sum(1 for _, pick in picks if pick != "explore")
    info: dict[str, Any] = {
        "strategy": TARGETED,
        "framesFlagged": sum(1 for r in risks if r and r.findings),
        # Exploration frames were drawn uniformly from this many frames (those not picked for risk):
        # each had explored / pool chance, the weight for an unbiased residual error estimate.
        "explorationPool": len(frames) - by_risk,
        "explored": len(picks) - by_risk,
        "scores": [_scored_pick(_frame_label(frames[i]), risks[i], pick) for i, pick in picks],
    }
    if scored.error:
        info["scoreError"] = scored.error
    return sampled, info


def _sample_lines(
    storage: Storage,
    src: str,
    dest: str,
    rate: float | None,
    batch_id: str,
    job_name: str,
    label_check: _LabelCheck,
    summary_limit: int,
    targeting: _Targeting | None = None,
) -> SamplingSummary:
    """Exactly `kept_count(total, rate)` lines in O(1) memory: a counting pass, then selection
    sampling (Knuth's Algorithm S), which keeps line t with probability needed / remaining.

    Both passes walk the manifest's bytes (_line_runs); a kept line is written as it is and checked
    on its bytes (_LabelCheck.source_ref), parsed only when they do not settle the checks.

    Targeted: the first pass scores every line (8 bytes of risk per line are kept), the picks are
    made from the risks, and the second pass writes the picked lines."""
    if targeting is not None:
        return _target_lines(storage, src, dest, rate, batch_id, job_name, label_check, summary_limit, targeting)
    total = _count_content_lines(storage, src)
    needed = kept_count(total, rate)
    rnd = random.Random(sample_seed(batch_id, job_name)).random
    record_uri = record_uri_for(dest)
    summary = SamplingSummary(dest, record_uri, "", "lines", rate, lines_in=total, lines_out=needed)
    number, source_ref = 0, label_check.source_ref
    with storage.open_write(dest) as out, storage.open_write(record_uri) as record:
        for buf, start, end in _line_runs(storage, src):
            find, p = buf.find, start
            view = memoryview(buf)
            pieces: list[memoryview] = []  # the kept lines, adjacent ones in one piece
            piece_start = piece_end = -1
            entries: list[Any] = []  # number, source-ref token, ... of each kept line
            while p < end:
                q = find(b"\n", p, end)
                if buf[p] != 0x7B and not buf[p:q].strip():
                    p = q + 1  # a blank line: not an object, not counted
                    continue
                # needed == total - number forces the pick, so exactly `needed` lines are kept (and
                # once none is needed, the draws could not pick one: they are skipped).
                if needed and rnd() * (total - number) < needed:
                    needed -= 1
                    token = source_ref(buf, p, q)
                    if token is None:
                        token = label_check.parsed_source_ref(buf[p:q], number)
                    entries += (number, token)
                    if p != piece_end:
                        if piece_end >= 0:
                            pieces.append(view[piece_start:piece_end])
                        piece_start = p
                    piece_end = q + 1
                number += 1
                p = q + 1
            if entries:
                pieces.append(view[piece_start:piece_end])
                out.writelines(pieces)
                kept = len(entries) // 2
                record.write(_RECORD_ENTRY * kept % tuple(entries))
                room = max(0, summary_limit - len(summary.samples))
                for i in range(0, 2 * min(room, kept), 2):
                    summary.samples.append({"line": entries[i], "source-ref": json.loads(entries[i + 1])})
                summary.samples_truncated |= kept > room
        if number != total:  # the object changed between the two passes
            seen = min(number, total + 1)  # counted up to the first line too many
            raise ManifestError(f"{src}: changed while being sampled ({total} lines, then {seen})")
    return summary


def _keep_line(out: Any, record: Any, summary: SamplingSummary, line: bytes, entry: dict[str, Any],
               summary_limit: int) -> None:
    """Write a kept line (its original bytes: the parent's annotations stay untouched) and its
    sampling record entry; the first `summary_limit` entries also go to the summary."""
    out.write(line + b"\n")
    record.write(json_line(entry))
    summary.lines_out += 1
    if len(summary.samples) < summary_limit:
        summary.samples.append(entry)
    else:
        summary.samples_truncated = True


def _target_lines(storage: Storage, src: str, dest: str, rate: float | None, batch_id: str, job_name: str,
                  label_check: _LabelCheck, summary_limit: int, targeting: _Targeting) -> SamplingSummary:
    from array import array

    risks = array("d")  # the only per-line state: 8 bytes a line
    for number, line in enumerate(_content_lines(storage, src)):
        obj = _parse_line(line, number, src)
        label_check(obj, number)
        risks.append(targeting.score(storage, obj, number).risk)
    total = len(risks)
    rng = random.Random(sample_seed(batch_id, job_name))
    picks = dict(targeted_choice(list(risks), kept_count(total, rate), targeting.exploration, rng))
    record_uri = record_uri_for(dest)
    summary = SamplingSummary(dest, record_uri, "", "lines", rate, lines_in=total)
    seen = 0
    with storage.open_write(dest) as out, storage.open_write(record_uri) as record:
        for number, line in enumerate(_content_lines(storage, src)):
            seen += 1
            if number not in picks:
                continue
            obj = _parse_line(line, number, src)
            entry: dict[str, Any] = {"line": number, "source-ref": obj["source-ref"], "risk": round(risks[number], 4),
                                     "pick": picks[number]}
            if risks[number] > 0:  # scored again (image labels are inline: cheap) for the reasons
                reasons = [r for f in targeting.score(storage, obj, number).frames for r in f.reasons]
                entry["reasons"] = reasons[:RECORD_REASONS]
            _keep_line(out, record, summary, line, entry, summary_limit)
        if seen != total:
            raise ManifestError(f"{src}: changed while being sampled ({total} lines, then {seen})")
    return summary


# --------------------------------------------------------------------------------------------------
# Frame inputs for recurring batches
# --------------------------------------------------------------------------------------------------


@dataclass
class FrameInputs:
    manifest_uri: str
    sequences: int
    frames: int  # frames listed in the sequence files (after `step`)
    videos: list[dict[str, Any]]  # {"video", "sequenceUri", "frames"} per sequence

    def to_dict(self) -> dict[str, Any]:
        return {
            "manifestUri": self.manifest_uri,
            "sequences": self.sequences,
            "frames": self.frames,
            "videos": self.videos,
        }


def build_video_inputs_from_prefix(
    storage: Storage | Any,
    frames_prefix_uri: str,
    *,
    step: int = 1,
    out_prefix_uri: str,
    limit: int | None = None,
    manifest_name: str = "input.manifest",
) -> FrameInputs:
    """Sequence files and one input manifest from frame images under `<prefix>/<video>/...`.

    Like the notebook: one sequence per video folder (e.g. `<video>/img1/000001.jpg`), frames
    sorted, every `step`-th kept (`files[:limit:step]`) and numbered 1..k, the sequence file written
    as `<out_prefix>/<video>_seq.json`. Files that are not .jpg/.jpeg/.png are ignored, and so are
    images lying directly under the prefix (they belong to no video).
    """
    storage = as_storage(storage)
    if step < 1:
        raise ManifestError(f"step: must be >= 1, got {step}")
    prefix = frames_prefix_uri.rstrip("/") + "/"

    def frames() -> Iterator[tuple[str, str]]:
        for uri in storage.list_uris(prefix):
            rel = uri[len(prefix) :]
            if "/" in rel and rel.lower().endswith(FRAME_EXTENSIONS):
                yield rel.split("/", 1)[0], uri

    manifest_uri = join_uri(out_prefix_uri, manifest_name)
    videos: list[dict[str, Any]] = []
    with storage.open_write(manifest_uri) as manifest:
        # Listings are in key order, so each video's frames arrive together: one video in memory.
        for seq_no, (video, group) in enumerate(groupby(frames(), key=lambda item: item[0])):
            uris = [uri for _, uri in group]
            folders = sorted({parent_uri(uri) for uri in uris})
            if len(folders) > 1:
                # A sequence has one prefix; frames from two folders cannot share it.
                raise ManifestError(
                    f"video folder {prefix}{video}/ has frames in {len(folders)} folders "
                    f"({', '.join(folders[:3])}...); a sequence needs them in one folder"
                )
            sequence = build_sequence(uris, folders[0] + "/", step=step, seq_no=seq_no, limit=limit)
            sequence_uri = join_uri(out_prefix_uri, f"{video}_seq.json")
            storage.write_json(sequence_uri, sequence)
            manifest.write(manifest_line(sequence_uri).encode() + b"\n")
            videos.append(
                {"video": video, "sequenceUri": sequence_uri, "frames": sequence["number-of-frames"]}
            )
        if not videos:
            raise ManifestError(
                f"no frames found under {prefix}: expected images ({', '.join(FRAME_EXTENSIONS)}) "
                f"in video folders, e.g. {prefix}<video>/img1/000001.jpg"
            )
    return FrameInputs(manifest_uri, len(videos), sum(v["frames"] for v in videos), videos)
