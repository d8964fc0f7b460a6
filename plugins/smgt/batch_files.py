"""Recurring batches from files: `include/batches/*.yaml` with a `schedule` (issue 5, point 7).

A batch file is a batch config template:

    schedule: "@daily"              # absent/null: a template only (no DAG)
    batchIdPrefix: street-daily     # batchId = {prefix}-{YYYYmmddHHMMSS of the run}
    destinationSnsArn: ...          # optional
    labelingJobs:
      - jobName: vehicle            # the job runs as {batchId}-vehicle, unique per run
        jobModality: VideoObjectTracking
        labelCategoryConfigFile: vehicle_label_category.json   # from include/label_configs/
        inputConfig:
          framesS3Prefix: s3://bucket/videos/   # or inputManifestS3Uri / chainFromJobName
          frameStep: 2                          # every k-th frame, like the notebook
        jobLevel: 1
      ...

`read_batch_file` runs at parse time (no network: label-config files must exist and follow GT's
label category config rules, the config it would produce must validate); `materialize_batch` runs
in the DAG's first task: validation against GT and the pre-flight (`smgt.preflight`: fixed input
manifests, frame prefixes, topic, work teams) first, then the uploads and frame inputs.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from smgt.config import JOB_NAME_MAX, BatchConfig, BatchConfigError, validate_batch_config
from smgt.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
BATCHES_DIR = ROOT / "include" / "batches"
LABEL_CONFIGS_DIR = ROOT / "include" / "label_configs"
RUN_STAMP_FORMAT = "%Y%m%d%H%M%S"
FILE_KEYS = {"schedule", "batchIdPrefix", "destinationSnsArn", "labelingJobs", "description"}
JOB_FILE_KEYS = {"labelCategoryConfigFile"}
FRAME_INPUT_KEYS = {"framesS3Prefix", "frameStep"}
# libyaml's loader when present: parsing stays fast with many batch files.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class BatchFileError(ValueError):
    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"{_display(path)}: " + "; ".join(problems))


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def _check_batch_id_length(batch_file: BatchFile, batch_id: str) -> None:
    """One problem naming the batchId when the job names `<batchId>-<job>` of this batch file would
    pass Ground Truth's 63 characters, instead of one per job name. Raises BatchConfigError."""
    suffixes = [j["jobName"] for j in batch_file.spec.get("labelingJobs", [])
                if isinstance(j, dict) and isinstance(j.get("jobName"), str)]
    if not suffixes:
        return
    longest = max(suffixes, key=len)
    limit = JOB_NAME_MAX - 1 - len(longest)
    if len(batch_id) > limit:
        from smgt.batch import record_rejection

        problems = [f"batchId: {batch_id!r} has {len(batch_id)} characters; with {_display(batch_file.path)} at most "
                    f"{limit}, since its job names are <batchId>-<job> (the longest, '<batchId>-{longest}') and "
                    f"Ground Truth allows {JOB_NAME_MAX}"]
        record_rejection(problems)
        raise BatchConfigError(problems)


@dataclass(frozen=True)
class BatchFile:
    path: Path
    spec: dict[str, Any]
    # The config the file produces, checked at parse time with a placeholder batch id.
    config: BatchConfig

    @property
    def dag_id(self) -> str:
        return "smgt_recurring_" + re.sub(r"[^a-zA-Z0-9_]", "_", self.path.stem)

    @property
    def schedule(self) -> str | None:
        return self.spec.get("schedule")

    @property
    def prefix(self) -> str:
        return self.spec["batchIdPrefix"]


def batch_id_for(prefix: str, run_time: datetime) -> str:
    return f"{prefix}-{run_time.strftime(RUN_STAMP_FORMAT)}"


def read_batch_file(path: Path) -> BatchFile:
    """Load and check a batch file; BatchFileError names the file and every problem."""
    try:
        spec = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except (OSError, yaml.YAMLError) as exc:
        raise BatchFileError(path, [f"cannot be read as YAML: {exc}"]) from None
    if not isinstance(spec, dict):
        raise BatchFileError(path, ["must be a YAML mapping"])
    problems = [f"{k!r}: unknown key (allowed: {', '.join(sorted(FILE_KEYS))})" for k in spec if k not in FILE_KEYS]
    if not isinstance(spec.get("batchIdPrefix"), str):
        problems.append("batchIdPrefix: required string")
    if spec.get("schedule") is not None and not isinstance(spec["schedule"], str):
        problems.append("schedule: must be a cron expression or preset string")
    if problems:
        raise BatchFileError(path, problems)
    # A run stamp of full length, so names that would be too long fail now, not at 3 a.m.
    placeholder = batch_id_for(spec["batchIdPrefix"], datetime(2000, 1, 1))
    sources = _Sources()
    try:
        config = validate_batch_config(_expand(spec, placeholder, upload=None, frame_manifest=None, sources=sources))
    except BatchConfigError as exc:
        raise BatchFileError(path, exc.problems) from None
    problems = _label_file_problems(config, sources)
    if problems:
        raise BatchFileError(path, problems)
    return BatchFile(path, spec, config)


@dataclass
class _Sources:
    """What `_expand` read from a batch file besides the conf: by (expanded) job name, the local
    label config file of a job and the framesS3Prefix its manifest is built from."""

    label_files: dict[str, Path] = field(default_factory=dict)
    frame_prefixes: dict[str, str] = field(default_factory=dict)


def _label_file_problems(config: BatchConfig, sources: _Sources) -> list[str]:
    """GT's label category config rules applied to the local files (no network)."""
    from smgt.label_config_rules import check_label_category_config

    problems = []
    for index, job in enumerate(config.labelingJobs):
        path = sources.label_files.get(job.jobName.lower())
        if path is None:
            continue
        where = f"labelingJobs[{index}] {job.jobName!r}: labelCategoryConfigFile: {path.name}"
        try:
            parsed = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            problems.append(f"{where}: not valid JSON ({exc})")
            continue
        problems.extend(f"{where}: {p}" for p in check_label_category_config(parsed, job.modality))
    return problems


def batches_dir() -> Path:
    """include/batches, or SMGT_BATCHES_DIR (a deployment keeps its batch files elsewhere)."""
    return Path(os.environ.get("SMGT_BATCHES_DIR") or BATCHES_DIR)


def scheduled_batch_files(folder: Path | None = None) -> tuple[list[BatchFile], list[BatchFileError]]:
    """Batch files that define a schedule, and the errors of the broken ones (each on its own)."""
    folder = folder or batches_dir()
    good, broken = [], []
    for path in sorted(folder.glob("*.yaml")):
        try:
            batch_file = read_batch_file(path)
        except BatchFileError as exc:
            broken.append(exc)
            continue
        if batch_file.schedule:
            good.append(batch_file)
    return good, broken


@dataclass(frozen=True)
class Template:
    """A batch file offered by the `smgt_batch` trigger form: `name` is the file's stem."""

    name: str
    prefix: str
    description: str
    jobs: int


def batch_templates(folder: Path | None = None) -> list[Template]:
    """Every batch file of `folder` (default `batches_dir()`) that a trigger form can offer.

    Parse-time cheap: reads only the YAML (no label configs, no network); a file that is not a
    mapping with a `batchIdPrefix` string is left out (smgt_recurring reports broken files). The
    whole file is checked when a run uses it (`read_batch_file` in resolve_batch).
    """
    templates = []
    for path in sorted((folder or batches_dir()).glob("*.yaml")):
        try:
            spec = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
        except (OSError, yaml.YAMLError):
            continue
        if not isinstance(spec, dict) or not isinstance(spec.get("batchIdPrefix"), str):
            continue
        jobs = spec.get("labelingJobs")
        description = spec.get("description")
        templates.append(Template(
            name=path.stem,
            prefix=spec["batchIdPrefix"],
            description=description if isinstance(description, str) else "",
            jobs=len(jobs) if isinstance(jobs, list) else 0,
        ))
    return templates


def template_file(name: str, folder: Path | None = None) -> BatchFile:
    """The batch file `<name>.yaml` of `folder`, checked (`read_batch_file`).

    Raises BatchFileError when it does not exist (naming the templates there) or is broken.
    """
    folder = folder or batches_dir()
    path = folder / f"{name}.yaml"
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or not path.is_file():
        known = ", ".join(t.name for t in batch_templates(folder)) or "none"
        raise BatchFileError(path, [f"template: {name!r} is not a batch file in {_display(folder)} (there: {known})"])
    return read_batch_file(path)


def _expand(
    spec: dict[str, Any],
    batch_id: str,
    *,
    upload: Any,
    frame_manifest: Any,
    sources: _Sources | None = None,
) -> dict[str, Any]:
    """The batch conf of one run. `upload(file_path) -> s3 uri` and
    `frame_manifest(job_name, prefix, step) -> manifest uri` do the I/O; None at parse time (and for
    the pre-flight), when `sources` collects the label files and frame prefixes instead."""
    raw_jobs = spec.get("labelingJobs")
    if not isinstance(raw_jobs, list):
        raise BatchConfigError(["labelingJobs: must be a list of jobs"])
    problems: list[str] = []
    jobs = []
    for index, raw in enumerate(raw_jobs):
        if not isinstance(raw, dict):
            problems.append(f"labelingJobs[{index}]: must be a mapping")
            continue
        job = copy.deepcopy(raw)
        job.setdefault("jobType", "BATCH")
        if isinstance(job.get("jobName"), str):
            job["jobName"] = f"{batch_id}-{job['jobName']}"
        config_file = job.pop("labelCategoryConfigFile", None)
        if config_file is not None:
            path = LABEL_CONFIGS_DIR / str(config_file)
            if not path.is_file():
                problems.append(f"labelingJobs[{index}]: labelCategoryConfigFile: {config_file!r} not found in include/label_configs/")
                continue
            job["labelCategoryConfigS3Uri"] = upload(path) if upload else "s3://placeholder-bucket/label.json"
            if sources is not None and isinstance(job.get("jobName"), str):
                sources.label_files[job["jobName"].lower()] = path
        inputs = job.get("inputConfig")
        if isinstance(inputs, dict):
            inputs = job["inputConfig"] = dict(inputs)
            if isinstance(inputs.get("chainFromJobName"), str):
                inputs["chainFromJobName"] = f"{batch_id}-{inputs['chainFromJobName']}"
            if "framesS3Prefix" in inputs:
                prefix, step = inputs.pop("framesS3Prefix"), inputs.pop("frameStep", 1)
                if not isinstance(step, int) or isinstance(step, bool) or step < 1:
                    problems.append(f"labelingJobs[{index}]: inputConfig.frameStep: must be an integer >= 1")
                    continue
                if not isinstance(prefix, str) or not prefix.startswith("s3://"):
                    problems.append(f"labelingJobs[{index}]: inputConfig.framesS3Prefix: must be an s3:// prefix")
                    continue
                inputs["inputManifestS3Uri"] = (
                    frame_manifest(job["jobName"], prefix, step) if frame_manifest else "s3://placeholder-bucket/in.manifest"
                )
                if sources is not None and isinstance(job.get("jobName"), str):
                    sources.frame_prefixes[job["jobName"].lower()] = prefix
        jobs.append(job)
    if problems:
        raise BatchConfigError(problems)
    conf: dict[str, Any] = {"batchId": batch_id, "labelingJobs": jobs}
    if spec.get("destinationSnsArn"):
        conf["destinationSnsArn"] = spec["destinationSnsArn"]
    return conf


def with_input(spec: dict[str, Any], input_uri: str) -> dict[str, Any]:
    """A copy of a batch file's spec whose level-1 jobs read `input_uri`.

    `input_uri` is an input manifest (`s3://bucket/key.manifest`) or, ending in '/', a frames
    prefix (one sequence per video folder; a job's own `frameStep` is kept, else every frame).
    Jobs above level 1 (chained) keep their input. Shapes are not checked here: `_expand` and
    `validate_batch_config` report a bad URI with the field and the job.
    """
    spec = copy.deepcopy(spec)
    for job in spec.get("labelingJobs") or []:
        if not isinstance(job, dict) or job.get("jobLevel", 1) != 1:
            continue
        inputs = job.get("inputConfig") if isinstance(job.get("inputConfig"), dict) else {}
        if "chainFromJobName" in inputs:
            continue
        step = inputs.get("frameStep", 1)
        if input_uri.endswith("/"):
            job["inputConfig"] = {"framesS3Prefix": input_uri, "frameStep": step}
        else:
            job["inputConfig"] = {"inputManifestS3Uri": input_uri}
    return spec


def materialize_batch(
    batch_file: BatchFile,
    run_time: datetime,
    *,
    settings: Settings,
    storage: Any,
    foreign_job_names: Any = None,
    preflight_clients: Any = "connection",
    batch_id: str | None = None,
    input_uri: str | None = None,
    destination_sns_arn: str | None = None,
    batch_exists: Callable[[str], bool] | None = None,
    claim: Callable[[str], None] | None = None,
) -> BatchConfig:
    """Validate and pre-flight the run's batch config, then `claim(batchId)` (smgt.batch.claim_batch_id:
    raises BatchConfigError when another run holds the id), then upload the label configs and build
    frame inputs.

    Nothing is written before the config (with its job names checked by `foreign_job_names`, its
    batch id by `batch_exists`) and the pre-flight passed: the pre-flight reads the local label
    config files and lists the frame prefixes instead of the objects the run would create.
    `preflight_clients` are `smgt.preflight.AwsClients` (default: from the settings' AWS
    connection; None skips it). The batch id is `batch_id`, else `{batchIdPrefix}-{run stamp}`;
    `input_uri` replaces the level-1 jobs' input (see `with_input`) and `destination_sns_arn` the
    file's topic. A rejected config raises BatchConfigError, whose problems a running task also
    leaves in XCom.
    """
    from smgt.batch import batch_prefix, record_rejection
    from smgt.manifests import build_video_inputs_from_prefix

    batch_id = batch_id or batch_id_for(batch_file.prefix, run_time)
    spec = with_input(batch_file.spec, input_uri) if input_uri else batch_file.spec
    if destination_sns_arn:
        spec = {**spec, "destinationSnsArn": destination_sns_arn}
    _check_batch_id_length(batch_file, batch_id)
    base = batch_prefix(settings, batch_id)
    sources = _Sources()
    try:
        planned = _expand(spec, batch_id, upload=None, frame_manifest=None, sources=sources)
    except BatchConfigError as exc:
        record_rejection(exc.problems)
        raise
    preflight = None
    if preflight_clients is not None:
        from smgt.preflight import aws_clients, preflight_batch

        clients = aws_clients(settings) if preflight_clients == "connection" else preflight_clients

        def preflight(config: BatchConfig) -> list[str]:
            local = {name: (path.name, path.read_text(encoding="utf-8")) for name, path in sources.label_files.items()}
            report = preflight_batch(config, clients, settings=settings, local_label_configs=local,
                                     frame_prefixes=sources.frame_prefixes)
            return report.problems

    try:
        validate_batch_config(
            planned,
            region=settings.region,
            max_job_level=settings.max_job_level,
            max_jobs=settings.max_jobs_per_batch,
            batch_exists=batch_exists,
            existing_job_names=foreign_job_names,
            preflight=preflight,
        )
    except BatchConfigError as exc:
        record_rejection(exc.problems)
        raise
    if claim is not None:
        claim(batch_id)

    def upload(path: Path) -> str:
        uri = f"{base}/label_configs/{path.name}"
        storage.write_json(uri, json.loads(path.read_text(encoding="utf-8")))
        return uri

    def frame_manifest(job_name: str, prefix: str, step: int) -> str:
        inputs = build_video_inputs_from_prefix(
            storage, prefix, step=step, out_prefix_uri=f"{base}/inputs/{job_name}/frames"
        )
        return inputs.manifest_uri

    conf = _expand(spec, batch_id, upload=upload, frame_manifest=frame_manifest)
    # The same config with the real URIs; its names and inputs were checked above.
    return validate_batch_config(
        conf,
        region=settings.region,
        max_job_level=settings.max_job_level,
        max_jobs=settings.max_jobs_per_batch,
    )
