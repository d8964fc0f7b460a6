"""Pre-flight of a batch: what Ground Truth would reject, found before anything is created.

Runs after the config model (`smgt.config.validate_batch_config`) and before any DAG run, GT job or
S3 object exists, with the deployment's own credentials (the Airflow AWS connection): in
batch/create (a 400 with every problem), in the batch DAG's `resolve_batch` (the run fails there
with the same messages) and for recurring batch files (before their label configs are uploaded).
It only reads: GET / HEAD / LIST on S3, GetTopicAttributes on SNS, DescribeWorkteam on SageMaker.

What is checked, per job (chained jobs have no input until their parent ran: only their label
category config is checked, and nothing is said about their input):

- the label category config exists, is readable, parses as JSON and follows GT's documented rules
  for the job's task type (`smgt.label_config_rules`);
- the input manifest exists and is readable; its first lines are JSON objects with an s3://
  `source-ref` (GT's image, video frame and 3D point cloud manifests all use `source-ref`:
  https://docs.aws.amazon.com/sagemaker/latest/dg/sms-data-input.html); a video manifest has at
  most 10 lines (GT: "10 video frame sequences per manifest file",
  https://docs.aws.amazon.com/sagemaker/latest/dg/input-data-limits.html);
- for video and point-cloud tracking jobs, the sequence files of those lines exist and are
  consistent (`seq-no`, `prefix` ending in `/`, `number-of-frames` equal to the length of
  `frames`, each frame's `frame`, plus `frame-no` for video and `unix-timestamp` for point clouds:
  https://docs.aws.amazon.com/sagemaker/latest/dg/sms-video-manual-data-setup.html and
  https://docs.aws.amazon.com/sagemaker/latest/dg/sms-point-cloud-multi-frame-input-data.html),
  within GT's frame limits per sequence (2,000 video frames, 500 point-cloud frames:
  input-data-limits.html), and the first and last frame of each exist;
- for image and single-frame point-cloud jobs, the objects of the first lines exist;
- a job's own `workteamArn` exists (DescribeWorkteam);

and per batch: the SNS topic results go to (`destinationSnsArn`, else the deployment's default)
exists, and so do the deployment's default work teams the jobs use and its processing bucket
(where chained inputs, UI templates and GT's output go; the UI templates themselves ship with
this package, so no template object is named by a batch).

Bound, whatever the manifests' size (`PreflightLimits`): per input manifest one ranged GET of its
first `manifest_bytes` (1 MiB; never the whole object) of which at most `manifest_lines` (100) lines
are parsed, at most `sequence_files` (10) sequence files read (each at most `sequence_bytes`,
16 MiB, by ranged GET) and `frames_per_sequence` (2) frames HEADed per sequence, or
`objects_per_manifest` (3) objects HEADed for images and single point clouds; one ranged GET (at
most `config_bytes`, 1 MiB) per distinct label config. So at most 1 + 10 + 20 = 31 S3 calls per
distinct manifest, one per distinct label config, plus one call per distinct work team, topic and
the processing bucket. Time: no call starts after `time_budget` (30 s); calls have 3 s connect
and 10 s read timeouts and at most 2 attempts, so a pre-flight ends within about 60 s even when
S3 hangs. What the budget left unchecked is reported in `PreflightReport.unchecked`, not as a
problem. Measured (tests/test_preflight_bound.py): a 10-million-line manifest is pre-flighted in
well under a second with 2 S3 calls and 1 MiB read.

Errors: a missing or unreadable object, bad JSON or a broken rule is a *problem* (the batch is
refused); S3/SNS/SageMaker being unreachable or failing with 5xx after botocore's retries raises
`PreflightUnavailableError` (the API answers 502, the DAG task fails and may be retried).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from smgt.config import BatchConfig, LabelingJobConfig, parse_s3_uri
from smgt.label_config_rules import check_label_category_config
from smgt.registry import MediaKind, Modality
from smgt.settings import Settings

# GT's limits on sequences (input-data-limits.html, "3D Point Cloud and Video Frame Labeling Job
# Quotas"): "2,000 video frames (images) per sequence", "10 video frame sequences per manifest file",
# "500 point cloud frames in each sequence file".
MAX_VIDEO_FRAMES_PER_SEQUENCE = 2000
MAX_VIDEO_SEQUENCES_PER_MANIFEST = 10
MAX_POINT_CLOUD_FRAMES_PER_SEQUENCE = 500
FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png")
# Problems reported per manifest / sequence file before "and more" (a broken file is usually broken
# the same way on every line; one message per line would bury the other jobs' problems).
MAX_LINE_PROBLEMS = 3

# Client settings of the pre-flight's own clients: a hanging endpoint costs at most
# 2 attempts x (3 s connect + 10 s read) per call, not botocore's 60 s defaults x 10 attempts.
PREFLIGHT_BOTOCORE_CONFIG = Config(
    connect_timeout=3, read_timeout=10, retries={"mode": "standard", "total_max_attempts": 2}
)


@dataclass(frozen=True)
class PreflightLimits:
    """How much a pre-flight may read; see the module docstring for the resulting bound."""

    manifest_bytes: int = 1 << 20  # ranged GET of each input manifest's first bytes
    manifest_lines: int = 100  # lines of that sample parsed and checked
    sequence_files: int = MAX_VIDEO_SEQUENCES_PER_MANIFEST  # sequence files read per manifest
    sequence_bytes: int = 16 << 20  # a sequence file larger than this is not read (reported unchecked)
    frames_per_sequence: int = 2  # frames HEADed per sequence: its first and last
    objects_per_manifest: int = 3  # images / single point clouds HEADed per manifest
    config_bytes: int = 1 << 20  # a label category config is read up to this size
    time_budget: float = 30.0  # seconds after which no S3 / AWS call starts
    workers: int = 8  # concurrent calls


DEFAULT_LIMITS = PreflightLimits()


class PreflightUnavailableError(RuntimeError):
    """S3, SNS or SageMaker could not answer (network, 5xx, throttling after retries): try again later."""


@dataclass
class AwsClients:
    """boto3 clients the pre-flight reads with; SNS and SageMaker are optional (skipped when None)."""

    s3: Any
    sns: Any = None
    sagemaker: Any = None


@dataclass
class PreflightReport:
    """Outcome of one pre-flight: `problems` refuse the batch, `unchecked` are only reported."""

    problems: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    calls: int = 0  # AWS calls made (S3, SNS, SageMaker)
    bytes_read: int = 0  # S3 bytes received
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary for the batch/create answer and task logs."""
        return {"calls": self.calls, "bytesRead": self.bytes_read, "seconds": round(self.seconds, 3),
                "unchecked": list(self.unchecked)}


def aws_clients(settings: Settings) -> AwsClients:
    """Pre-flight clients from the Airflow AWS connection (`settings.aws_conn_id`): its credentials,
    region and endpoints, with PREFLIGHT_BOTOCORE_CONFIG's timeouts and retries."""
    from smgt.gt.hooks import AwsHook

    def make(service: str) -> Any:
        hook = AwsHook(aws_conn_id=settings.aws_conn_id, client_type=service, region_name=settings.region)
        return hook.get_client_type(config=hook.config.merge(PREFLIGHT_BOTOCORE_CONFIG))

    return AwsClients(s3=make("s3"), sns=make("sns"), sagemaker=make("sagemaker"))


# --------------------------------------------------------------------------------------------------
# Reading, counted and bounded
# --------------------------------------------------------------------------------------------------


class _OutOfTime(Exception):
    pass


class _Unreadable(Exception):
    """A definitive answer: the object is missing, forbidden or unusable (the message says which)."""


def _error_code(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    return str(error.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


class _Reader:
    """S3 reads that count calls and bytes, respect the time budget and classify errors."""

    def __init__(self, clients: AwsClients, limits: PreflightLimits) -> None:
        self.clients = clients
        self.limits = limits
        self.deadline = time.monotonic() + limits.time_budget
        self.calls = 0
        self.bytes_read = 0
        self._lock = threading.Lock()

    def _start(self, what: str) -> None:
        if time.monotonic() > self.deadline:
            raise _OutOfTime(what)
        with self._lock:
            self.calls += 1

    def _client_error(self, exc: ClientError, uri: str) -> Exception:
        code, status = _error_code(exc), _status(exc)
        if status >= 500 or code in ("SlowDown", "Throttling", "ThrottlingException", "RequestTimeout"):
            return PreflightUnavailableError(f"{uri}: S3 answered {code} ({status}) after retries; try again")
        if code in ("NoSuchKey", "404", "NotFound"):
            return _Unreadable(f"{uri} does not exist")
        if code == "NoSuchBucket":
            return _Unreadable(f"{uri}: bucket {parse_s3_uri(uri)[0]!r} does not exist")
        if status == 403 or code in ("AccessDenied", "403", "Forbidden", "AllAccessDisabled"):
            return _Unreadable(f"{uri} cannot be read with the deployment's credentials ({code})")
        message = exc.response.get("Error", {}).get("Message") or ""
        return _Unreadable(f"{uri} cannot be read ({code}{': ' + message if message else ''})")

    def get_range(self, uri: str, nbytes: int) -> tuple[bytes, int]:
        """The first `nbytes` of an object (one ranged GET) and the object's full size."""
        bucket, key = parse_s3_uri(uri)
        self._start(f"reading {uri}")
        try:
            response = self.clients.s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{nbytes - 1}")
            body = response["Body"]
            try:
                data = body.read(nbytes)
            finally:
                body.close()  # never drain the rest of a large object
        except ClientError as exc:
            if _error_code(exc) == "InvalidRange":  # a range on an empty object
                return b"", 0
            raise self._client_error(exc, uri) from None
        except BotoCoreError as exc:
            raise PreflightUnavailableError(f"{uri}: S3 could not be reached ({exc})") from None
        with self._lock:
            self.bytes_read += len(data)
        content_range = response.get("ContentRange") or ""
        total = int(content_range.rsplit("/", 1)[1]) if "/" in content_range else len(data)
        return data, total

    def exists(self, uri: str) -> None:
        """HEAD the object; _Unreadable when it is missing or forbidden."""
        bucket, key = parse_s3_uri(uri)
        self._start(f"checking {uri}")
        try:
            self.clients.s3.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            raise self._client_error(exc, uri) from None
        except BotoCoreError as exc:
            raise PreflightUnavailableError(f"{uri}: S3 could not be reached ({exc})") from None

    def list_first_page(self, prefix_uri: str) -> tuple[list[str], bool]:
        """Keys of the first listing page (at most 1000) under a prefix, and whether there are more."""
        bucket, key = parse_s3_uri(prefix_uri)
        self._start(f"listing {prefix_uri}")
        try:
            page = self.clients.s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1000)
        except ClientError as exc:
            raise self._client_error(exc, prefix_uri) from None
        except BotoCoreError as exc:
            raise PreflightUnavailableError(f"{prefix_uri}: S3 could not be reached ({exc})") from None
        return [obj["Key"] for obj in page.get("Contents", ())], bool(page.get("IsTruncated"))

    def head_bucket(self, bucket: str) -> None:
        self._start(f"checking bucket {bucket}")
        try:
            self.clients.s3.head_bucket(Bucket=bucket)
        except ClientError as exc:
            code, status = _error_code(exc), _status(exc)
            if status >= 500:
                raise PreflightUnavailableError(f"bucket {bucket}: S3 answered {code} ({status})") from None
            if code in ("404", "NoSuchBucket", "NotFound"):
                raise _Unreadable(f"bucket {bucket!r} does not exist") from None
            raise _Unreadable(f"bucket {bucket!r} is not accessible with the deployment's credentials ({code})") from None
        except BotoCoreError as exc:
            raise PreflightUnavailableError(f"bucket {bucket}: S3 could not be reached ({exc})") from None

    def aws_call(self, what: str, call: Callable[[], Any], missing: Iterable[str]) -> None:
        """A non-S3 describe call; codes in `missing` (and 4xx generally) are definitive answers."""
        self._start(what)
        try:
            call()
        except ClientError as exc:
            code, status = _error_code(exc), _status(exc)
            message = exc.response.get("Error", {}).get("Message") or code
            if status >= 500 or "Throttl" in code:
                raise PreflightUnavailableError(f"{what}: {code} ({status}) after retries; try again") from None
            if code in missing:
                raise _Unreadable(f"does not exist ({code}: {message})") from None
            raise _Unreadable(f"cannot be read with the deployment's credentials ({code}: {message})") from None
        except BotoCoreError as exc:
            raise PreflightUnavailableError(f"{what}: could not be reached ({exc})") from None


# --------------------------------------------------------------------------------------------------
# Checks of single objects (each returns problems without the job prefix)
# --------------------------------------------------------------------------------------------------


@dataclass
class _Outcome:
    problems: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)


def _sequence_kind(modality: Modality) -> str:
    """How a manifest line of this task type is read: its source-ref is a sequence file or an object."""
    if modality.media is MediaKind.VIDEO:
        return "video"
    if modality.media is MediaKind.POINT_CLOUD:
        # Only 3D point cloud object tracking takes sequence files; detection and semantic
        # segmentation take one point cloud per line (sms-point-cloud-single-frame-input-data.html).
        return "point_cloud_sequence" if modality.base == "PointCloudObjectTracking" else "object"
    return "object"


def _parse_json(data: bytes) -> Any:
    return json.loads(data.decode("utf-8"))


def _check_label_config(reader: _Reader, uri: str) -> tuple[Any, str | None, _Outcome]:
    """(parsed config or None, reason it is unusable, outcome) of a label category config on S3."""
    outcome = _Outcome()
    try:
        data, total = reader.get_range(uri, reader.limits.config_bytes)
    except _Unreadable as exc:
        return None, str(exc), outcome
    if total > len(data):
        return None, f"{uri} is larger than {reader.limits.config_bytes} bytes; not a label category config", outcome
    try:
        return _parse_json(data), None, outcome
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"{uri} is not valid JSON ({exc})", outcome


def _line_source(obj: Any, number: int) -> tuple[str | None, str | None]:
    """(source-ref, problem) of one parsed manifest line."""
    if not isinstance(obj, dict):
        return None, f"line {number} is not a JSON object"
    ref = obj.get("source-ref")
    if ref is None:
        if "source" in obj:
            return None, (f"line {number} has \"source\" (inline text) but no \"source-ref\"; image, video and "
                          "point-cloud tasks read their data object from the S3 URI in source-ref")
        return None, f"line {number} has no \"source-ref\""
    try:
        parse_s3_uri(ref)
    except ValueError:
        return None, f"line {number}: source-ref {ref!r} is not an s3://bucket/key URI"
    return ref, None


def _check_manifest(reader: _Reader, uri: str, kind: str) -> _Outcome:
    limits = reader.limits
    outcome = _Outcome()
    try:
        data, total = reader.get_range(uri, limits.manifest_bytes)
    except _Unreadable as exc:
        outcome.problems.append(str(exc))
        return outcome
    complete = total <= len(data)
    pieces = data.split(b"\n")
    if not complete:
        pieces = pieces[:-1]  # the last piece is cut by the range: not a whole line
    refs: list[tuple[int, str]] = []
    content_lines = 0
    bad = 0
    for number, raw in enumerate(pieces, 1):
        if not raw.strip():
            continue  # GT tolerates blank lines (e.g. a trailing newline)
        content_lines += 1
        if content_lines > limits.manifest_lines:
            break
        try:
            obj = _parse_json(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            problem: str | None = f"line {number} is not valid JSON ({exc})"
            ref = None
        else:
            ref, problem = _line_source(obj, number)
        if problem is not None:
            bad += 1
            if bad <= MAX_LINE_PROBLEMS:
                outcome.problems.append(f"{uri}: {problem}")
            continue
        assert ref is not None
        refs.append((number, ref))
    if bad > MAX_LINE_PROBLEMS:
        outcome.problems.append(f"{uri}: {bad - MAX_LINE_PROBLEMS} more of the first lines are broken the same way")
    if content_lines == 0:
        if complete:
            outcome.problems.append(f"{uri} is empty: a manifest needs one JSON line per data object")
        else:
            outcome.unchecked.append(f"{uri}: its first line is longer than {limits.manifest_bytes} bytes; not sampled")
        return outcome
    if kind == "video" and content_lines > MAX_VIDEO_SEQUENCES_PER_MANIFEST:
        # Counted in the sample only: a longer manifest has at least that many lines.
        counted = str(content_lines) if complete and content_lines <= limits.manifest_lines else f"at least {content_lines}"
        outcome.problems.append(
            f"{uri} has {counted} lines; Ground Truth takes at most {MAX_VIDEO_SEQUENCES_PER_MANIFEST} video frame "
            "sequences per manifest file"
        )
    try:
        if kind == "object":
            for number, ref in refs[: limits.objects_per_manifest]:
                try:
                    reader.exists(ref)
                except _Unreadable as exc:
                    outcome.problems.append(f"{uri}: line {number}: source-ref {exc}")
        else:
            for number, ref in refs[: limits.sequence_files]:
                sub = _check_sequence(reader, ref, kind)
                outcome.problems.extend(f"{uri}: line {number}: sequence file {p}" for p in sub.problems)
                outcome.unchecked.extend(f"{uri}: line {number}: sequence file {u}" for u in sub.unchecked)
    except _OutOfTime as exc:
        # Keep what was found; say what was not looked at.
        outcome.unchecked.append(f"{uri}: stopped at the time budget ({exc})")
    return outcome


def _check_sequence(reader: _Reader, uri: str, kind: str) -> _Outcome:
    limits = reader.limits
    outcome = _Outcome()
    try:
        data, total = reader.get_range(uri, limits.sequence_bytes)
    except _Unreadable as exc:
        outcome.problems.append(str(exc))
        return outcome
    if total > len(data):
        outcome.unchecked.append(f"{uri} is larger than {limits.sequence_bytes} bytes; not read")
        return outcome
    try:
        sequence = _parse_json(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        outcome.problems.append(f"{uri} is not valid JSON ({exc})")
        return outcome
    if not isinstance(sequence, dict):
        outcome.problems.append(f"{uri} must be a JSON object with seq-no, prefix, number-of-frames and frames")
        return outcome
    problems = outcome.problems
    seq_no = sequence.get("seq-no")
    if isinstance(seq_no, bool) or not isinstance(seq_no, int):
        problems.append(f"{uri}: seq-no: {'required' if seq_no is None else repr(seq_no)}; must be an integer")
    prefix = sequence.get("prefix")
    prefix_ok = False
    if not isinstance(prefix, str):
        problems.append(f"{uri}: prefix: required, the s3://bucket/folder/ the frames are in")
    elif not prefix.endswith("/"):
        problems.append(f"{uri}: prefix: {prefix!r} must end with '/' (Ground Truth appends each frame's name to it)")
    else:
        try:
            parse_s3_uri(prefix + "x")
            prefix_ok = True
        except ValueError:
            problems.append(f"{uri}: prefix: {prefix!r} is not an s3://bucket/folder/ URI")
    frames = sequence.get("frames")
    if not isinstance(frames, list):
        problems.append(f"{uri}: frames: required, a list of frame objects")
        return outcome
    count = sequence.get("number-of-frames")
    if isinstance(count, bool) or not isinstance(count, int):
        problems.append(f"{uri}: number-of-frames: {'required' if count is None else repr(count)}; must be an integer")
    elif count != len(frames):
        problems.append(f"{uri}: number-of-frames is {count} but frames lists {len(frames)} (they must be equal)")
    if not frames:
        problems.append(f"{uri}: frames is empty; a sequence needs at least one frame")
        return outcome
    limit = MAX_VIDEO_FRAMES_PER_SEQUENCE if kind == "video" else MAX_POINT_CLOUD_FRAMES_PER_SEQUENCE
    if len(frames) > limit:
        what = "video frames" if kind == "video" else "point cloud frames"
        problems.append(f"{uri}: {len(frames)} frames; Ground Truth allows at most {limit} {what} per sequence")
    required = ("frame", "frame-no") if kind == "video" else ("frame", "unix-timestamp")
    bad = 0
    for i, frame in enumerate(frames):
        missing = [k for k in required if not isinstance(frame, dict) or frame.get(k) in (None, "")]
        wrong_type = isinstance(frame, dict) and "frame" not in missing and not isinstance(frame["frame"], str)
        if missing or wrong_type:
            bad += 1
            if bad <= MAX_LINE_PROBLEMS:
                what = f"needs {', '.join(missing)}" if missing else "frame must be a file name string"
                problems.append(f"{uri}: frames[{i}] {what}")
    if bad > MAX_LINE_PROBLEMS:
        problems.append(f"{uri}: {bad - MAX_LINE_PROBLEMS} more frames lack the same fields")
    if prefix_ok and limits.frames_per_sequence > 0:
        sampled = [frames[0], frames[-1]] if len(frames) > 1 else [frames[0]]
        for frame in sampled[: limits.frames_per_sequence]:
            if isinstance(frame, dict) and isinstance(frame.get("frame"), str) and frame["frame"]:
                try:
                    reader.exists(str(prefix) + frame["frame"])
                except _Unreadable as exc:
                    problems.append(f"{uri}: frame {frame['frame']!r}: {exc}")
    return outcome


def _check_frame_prefix(reader: _Reader, prefix_uri: str) -> _Outcome:
    """A recurring batch's framesS3Prefix holds frame images in video folders (first listing page)."""
    outcome = _Outcome()
    prefix_uri = prefix_uri.rstrip("/") + "/"
    try:
        keys, more = reader.list_first_page(prefix_uri)
    except _Unreadable as exc:
        outcome.problems.append(str(exc))
        return outcome
    _, base = parse_s3_uri(prefix_uri)
    frames = [k for k in keys if "/" in k[len(base):] and k.lower().endswith(FRAME_EXTENSIONS)]
    if not frames:
        if more:
            outcome.unchecked.append(f"{prefix_uri}: no frame image among its first 1000 objects; not searched further")
        else:
            outcome.problems.append(
                f"{prefix_uri} holds no frame images ({', '.join(FRAME_EXTENSIONS)}) in video folders, "
                f"e.g. {prefix_uri}<video>/img1/000001.jpg"
            )
    return outcome


# --------------------------------------------------------------------------------------------------
# The batch
# --------------------------------------------------------------------------------------------------


def _job_label(index: int, job: LabelingJobConfig) -> str:
    return f"labelingJobs[{index}] {job.jobName!r}"


class _Once:
    """Run each distinct check once (by key) on the pool; many jobs may name the same object."""

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self.pool = pool
        self.futures: dict[Any, Any] = {}

    def submit(self, key: Any, fn: Callable[..., Any], *args: Any) -> Any:
        if key not in self.futures:
            self.futures[key] = self.pool.submit(fn, *args)
        return self.futures[key]


def preflight_batch(
    config: BatchConfig,
    clients: AwsClients,
    *,
    settings: Settings | None = None,
    limits: PreflightLimits = DEFAULT_LIMITS,
    local_label_configs: Mapping[str, tuple[str, str]] | None = None,
    frame_prefixes: Mapping[str, str] | None = None,
) -> PreflightReport:
    """Check everything `config` names (see the module docstring); never writes anything.

    `settings` gives the deployment's defaults (SNS topic, work teams, processing bucket); without
    it only what the batch itself names is checked. For recurring batch files,
    `local_label_configs` maps a job name to (file name, file text) of a label config that is not on
    S3 yet, and `frame_prefixes` maps a job name to the framesS3Prefix its manifest will be built
    from. Raises PreflightUnavailableError when AWS cannot answer.
    """
    started = time.monotonic()
    reader = _Reader(clients, limits)
    local = {k.lower(): v for k, v in (local_label_configs or {}).items()}
    frames = {k.lower(): v for k, v in (frame_prefixes or {}).items()}
    report = PreflightReport()
    with ThreadPoolExecutor(max_workers=max(1, limits.workers), thread_name_prefix="preflight") as pool:
        once = _Once(pool)
        pending: list[tuple[str, str, Any, Callable[[Any], _Outcome]]] = []

        def add(label: str, what: str, future: Any, interpret: Callable[[Any], _Outcome]) -> None:
            pending.append((label, what, future, interpret))

        for index, job in enumerate(config.labelingJobs):
            label = _job_label(index, job)
            key = job.jobName.lower()
            modality = job.modality
            if key in local:
                name, text = local[key]
                add(label, f"labelCategoryConfigFile: {name}", None,
                    lambda _, text=text, modality=modality: _local_config_outcome(text, modality))
            elif job.labelCategoryConfigS3Uri:
                uri = job.labelCategoryConfigS3Uri
                future = once.submit(("config", uri), _check_label_config, reader, uri)
                add(label, "labelCategoryConfigS3Uri", future,
                    lambda result, uri=uri, modality=modality: _config_outcome(result, uri, modality))
            if key in frames:
                future = once.submit(("frames", frames[key]), _check_frame_prefix, reader, frames[key])
                add(label, "inputConfig.framesS3Prefix", future, lambda outcome: outcome)
            elif job.inputConfig.inputManifestS3Uri:
                uri, kind = job.inputConfig.inputManifestS3Uri, _sequence_kind(modality)
                future = once.submit(("manifest", uri, kind), _check_manifest, reader, uri, kind)
                add(label, "inputConfig.inputManifestS3Uri", future, lambda outcome: outcome)
            if job.workteamArn and clients.sagemaker is not None:
                future = once.submit(("team", job.workteamArn), _check_workteam, reader, job.workteamArn)
                add(label, "workteamArn", future, lambda outcome: outcome)

        if settings is not None:
            _deployment_checks(config, settings, reader, once, add)

        for label, what, future, interpret in pending:
            try:
                outcome = interpret(future.result() if future is not None else None)
            except _OutOfTime as exc:
                report.unchecked.append(f"{label}: {what}: not checked within {limits.time_budget:g} s ({exc})")
                continue
            prefix = f"{label}: {what}: " if label else f"{what}: "
            report.problems.extend(prefix + p for p in outcome.problems)
            report.unchecked.extend(prefix + u for u in outcome.unchecked)
    report.calls, report.bytes_read = reader.calls, reader.bytes_read
    report.seconds = time.monotonic() - started
    return report


def _local_config_outcome(text: str, modality: Modality) -> _Outcome:
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        return _Outcome(problems=[f"not valid JSON ({exc})"])
    return _Outcome(problems=check_label_category_config(parsed, modality))


def _config_outcome(result: tuple[Any, str | None, _Outcome], uri: str, modality: Modality) -> _Outcome:
    parsed, unusable, outcome = result
    if unusable is not None:
        return _Outcome(problems=[unusable])
    return _Outcome(problems=[f"{uri}: {p}" for p in check_label_category_config(parsed, modality)],
                    unchecked=list(outcome.unchecked))


def _workteam_name(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def _check_workteam(reader: _Reader, arn: str) -> _Outcome:
    try:
        reader.aws_call(
            f"DescribeWorkteam {arn}",
            lambda: reader.clients.sagemaker.describe_workteam(WorkteamName=_workteam_name(arn)),
            # GT answers an unknown team with a ValidationException ("... does not exist").
            missing=("ResourceNotFound", "ValidationException"),
        )
    except _Unreadable as exc:
        return _Outcome(problems=[f"work team {arn} {exc}"])
    return _Outcome()


def _check_topic(reader: _Reader, arn: str) -> _Outcome:
    try:
        reader.aws_call(
            f"GetTopicAttributes {arn}",
            lambda: reader.clients.sns.get_topic_attributes(TopicArn=arn),
            missing=("NotFound", "NotFoundException", "InvalidParameter"),
        )
    except _Unreadable as exc:
        return _Outcome(problems=[f"SNS topic {arn} {exc}"])
    return _Outcome()


def _check_bucket(reader: _Reader, bucket: str) -> _Outcome:
    try:
        reader.head_bucket(bucket)
    except _Unreadable as exc:
        return _Outcome(problems=[str(exc)])
    return _Outcome()


def _deployment_checks(config: BatchConfig, settings: Settings, reader: _Reader, once: _Once, add: Any) -> None:
    """The SNS topic, default work teams and processing bucket this batch will use."""
    clients = reader.clients
    if clients.sns is not None:
        if config.destinationSnsArn:
            what, topic = "destinationSnsArn", config.destinationSnsArn
        else:
            what, topic = "SMGT_DEFAULT_SNS_TOPIC_ARN (the batch has no destinationSnsArn)", settings.default_sns_topic_arn
        add("", what, once.submit(("topic", topic), _check_topic, reader, topic), lambda outcome: outcome)
    if clients.sagemaker is not None:
        defaults = {}
        for job in config.labelingJobs:
            if job.workteamArn:
                continue
            if job.jobLevel == 1:
                defaults.setdefault(("SMGT_FIRST_LEVEL_WORKTEAM_ARN", settings.first_level_workteam_arn), []).append(job)
            else:
                defaults.setdefault(("SMGT_SECOND_LEVEL_WORKTEAM_ARN", settings.second_level_workteam_arn), []).append(job)
        for (setting, arn), jobs in defaults.items():
            names = ", ".join(j.jobName for j in jobs)
            add("", f"{setting} (the work team of {names})",
                once.submit(("team", arn), _check_workteam, reader, arn), lambda outcome: outcome)
    add("", "SMGT_PROCESSING_BUCKET (chained inputs and Ground Truth's output go there)",
        once.submit(("bucket", settings.processing_bucket), _check_bucket, reader, settings.processing_bucket),
        lambda outcome: outcome)


def connection_preflight(settings: Settings, **kwargs: Any) -> Callable[[BatchConfig], list[str]]:
    """`validate_batch_config(preflight=...)` for a task: pre-flight through the Airflow AWS
    connection, logging the bound it kept and what it left unchecked; returns the problems."""
    import logging

    log = logging.getLogger(__name__)

    def run(config: BatchConfig) -> list[str]:
        report = preflight_batch(config, aws_clients(settings), settings=settings, **kwargs)
        log.info("Pre-flight of batch %s: %d problem(s), %s", config.batchId, len(report.problems), report.summary())
        for item in report.unchecked:
            log.warning("Pre-flight did not check: %s", item)
        return report.problems

    return run
