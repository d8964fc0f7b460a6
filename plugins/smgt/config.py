"""Batch config model (SPEC section 2): the conf JSON of a batch run and the body of batch/create.

`validate_batch_config` is the only entry point that turns untrusted input into a `BatchConfig`.
It runs before any AWS call and collects *every* problem into one `BatchConfigError`, each message
naming the job and the field, so a user fixes a config in one round trip. Defaults that later code
relies on (label attribute per modality, task counts and lifetimes, a chained job's category
config) are filled here so nothing downstream guesses.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from smgt.registry import (
    MODALITIES,
    MediaKind,
    UnknownModalityError,
    UnsupportedRegionError,
    check_region,
    get_modality,
)

# fullmatch() is used with every pattern: `$` would accept a trailing newline.
BATCH_ID_RE = re.compile(r"[a-zA-Z0-9-]{1,63}")
JOB_NAME_MAX = 63  # characters of a labeling job name (CreateLabelingJob's LabelingJobName)
JOB_NAME_RE = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
LABEL_ATTRIBUTE_RE = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,126}")
# Bucket names per S3's rules (3-63 chars, lower-case, digits, dots, hyphens); a non-empty key.
S3_URI_RE = re.compile(r"s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(\S.{0,1020})", re.DOTALL)
SNS_ARN_RE = re.compile(r"arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[a-zA-Z0-9_.-]{1,256}")
WORKTEAM_ARN_RE = re.compile(r"arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:[0-9]{12}:workteam/[a-zA-Z0-9_/.-]{1,200}")

DEFAULT_MAX_CONCURRENT_TASKS = 100
DEFAULT_TASK_AVAILABILITY_LIFETIME = 864_000  # 10 days, GT's maximum for private workforces
DEFAULT_TASK_TIME_LIMIT = 604_800  # 7 days, GT's maximum for video and point-cloud tasks
# CreateLabelingJob's HumanTaskConfig.TaskTimeLimitInSeconds: "For image and text labeling jobs, the
# maximum is 8 hours (28,800 seconds)" (API reference, also in botocore's service model): the
# default and the limit for image jobs, which GT would otherwise refuse at create.
IMAGE_TASK_TIME_LIMIT = 28_800


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split a well-formed s3://bucket/key into (bucket, key); ValueError otherwise."""
    match = S3_URI_RE.fullmatch(uri) if isinstance(uri, str) else None
    if not match or "\n" in uri or "\r" in uri:
        raise ValueError(f"must be a well-formed s3://bucket/key URI, got {_short(uri)}")
    return match.group(1), match.group(2)


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_s3_uri(value: str | None) -> str | None:
    if value is not None:
        parse_s3_uri(value)
    return value


def _number(value: Any) -> Any:
    # JSON numbers only: "50" and true are typos, not rates.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"must be a number, got {_short(value)}")
    return value


S3Uri = Annotated[StrictStr, Field(max_length=1024)]
Number = Annotated[float, BeforeValidator(_number)]


def _as_typed(value: float) -> str:
    """A Number as the person typed it: pydantic has made 0 into 0.0 by the time a check reads it
    (a value checked before pydantic, e.g. the batch's explorationPercent, may still be an int)."""
    return repr(int(value)) if float(value).is_integer() else repr(value)

# Down-sampling strategies (smgt.manifests): "random" (seeded uniform sample) or "targeted" (the
# parent's highest-risk frames first, scored by smgt.qa, plus an exploration share drawn at random).
SamplingStrategy = Literal["random", "targeted"]
# Modalities (by base) whose labels smgt.qa scores, hence that targeted sampling can rank.
TARGETED_BASES = ("VideoObjectTracking", "VideoObjectDetection", "BoundingBox")


# QA gates (QaGate): a frame is "high risk" from this risk on (one clear finding, e.g. a box that
# jumped, scores 0.5 to 1), and a job runs at most this many re-work rounds.
DEFAULT_GATE_MIN_RISK = 0.5
MAX_REWORK_ROUNDS = 3


def _exploration(value: float | None) -> float | None:
    if value is not None and not (0 <= value <= 100):
        raise ValueError(f"must be a percentage of the frame budget with 0 <= share <= 100, got {_as_typed(value)}")
    return value


class InputConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    inputManifestS3Uri: S3Uri | None = None
    chainFromJobName: StrictStr | None = Field(default=None, max_length=63)
    # Percentage of frames (video) or lines (images) of the parent's output sent to this job.
    downSamplingRate: Number | None = None
    # How the rate's budget is filled: "random" (default) or "targeted" (highest QA risk first).
    samplingStrategy: SamplingStrategy | None = None
    # Targeted only: percent of each budget drawn at random from the frames not picked for risk
    # (default 10), so the residual error rate can be estimated without bias.
    explorationPercent: Number | None = None

    @field_validator("inputManifestS3Uri")
    @classmethod
    def _manifest_uri(cls, value: str | None) -> str | None:
        return _check_s3_uri(value)

    @field_validator("chainFromJobName")
    @classmethod
    def _chain_name(cls, value: str | None) -> str | None:
        if value is not None and not JOB_NAME_RE.fullmatch(value):
            raise ValueError(f"{_short(value)} is not a valid Ground Truth job name")
        return value

    @field_validator("downSamplingRate")
    @classmethod
    def _rate(cls, value: float | None) -> float | None:
        if value is not None and not (0 < value <= 100):
            raise ValueError(f"must be a number with 0 < rate <= 100, got {_as_typed(value)}")
        return value

    @field_validator("explorationPercent")
    @classmethod
    def _exploration_share(cls, value: float | None) -> float | None:
        return _exploration(value)

    @model_validator(mode="after")
    def _exactly_one_source(self) -> InputConfig:
        if (self.inputManifestS3Uri is None) == (self.chainFromJobName is None):
            raise ValueError("needs exactly one of inputManifestS3Uri or chainFromJobName")
        if self.downSamplingRate is not None and self.chainFromJobName is None:
            raise ValueError("downSamplingRate only applies to a job with chainFromJobName")
        for name in ("samplingStrategy", "explorationPercent"):
            if getattr(self, name) is not None and self.chainFromJobName is None:
                raise ValueError(f"{name} only applies to a job with chainFromJobName")
        if self.explorationPercent is not None and self.samplingStrategy == "random":
            raise ValueError("explorationPercent only applies with samplingStrategy 'targeted'")
        return self


class QaGate(BaseModel):
    """A QA gate on a job's labels (smgt.qa scores them when the job completes).

    A sequence (video) or image fails the gate when more than `maxFlaggedPercent` percent of its
    frames have a risk of at least `minRisk` (a frame's risk is the sum of its findings' scores, each
    in [0, 1]: roughly how many mistakes it holds). The frames at or above `minRisk` of every failed
    sequence go back to the job's own work team as an adjustment job (a re-work round); its labels
    replace theirs in the output later levels chain from. Up to `maxRounds` rounds run, each on the
    output the previous one corrected.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    minRisk: Number = Field(default=DEFAULT_GATE_MIN_RISK, ge=0, le=100)
    maxFlaggedPercent: Number = Field(default=0, ge=0, lt=100)
    maxRounds: StrictInt = Field(default=1, ge=1, le=MAX_REWORK_ROUNDS)


def rework_job_name(job_name: str, round_number: int) -> str:
    """The Ground Truth name of a job's re-work round (an adjustment job): `<jobName>-rework<round>`."""
    return f"{job_name}-rework{round_number}"


def rework_label_attribute(label_attribute: str, round_number: int) -> str:
    """The label attribute of a re-work round: `<attribute>-rework<round>`, keeping a `-ref` suffix
    last (GT requires it of video and point-cloud label attributes)."""
    base = label_attribute.removesuffix("-ref")
    suffix = "-ref" if label_attribute.endswith("-ref") else ""
    return f"{base}-rework{round_number}{suffix}"


class QaConfig(BaseModel):
    """How smgt.qa checks this job's labels beyond the built-in signals, and its QA gate."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Frame attribute -> the labels it counts (empty list: every label). A frame whose attribute
    # differs from its number of such objects is flagged (e.g. {"Number_Of_Vehicles": ["Vehicle"]}).
    frameAttributeCounts: dict[Annotated[StrictStr, Field(min_length=1, max_length=128)],
                               list[Annotated[StrictStr, Field(min_length=1, max_length=127)]]] = Field(
        default_factory=dict, max_length=50)
    # Re-work rounds for the sequences that fail it (a batch's qaGates give a level-wide default).
    gate: QaGate | None = None


class LabelingJobConfig(BaseModel):
    # Field order matters: validators of later fields read earlier ones from `info.data`, so one
    # pass reports as many independent problems as possible.
    model_config = ConfigDict(extra="forbid", frozen=True)

    jobName: StrictStr = Field(max_length=63)
    jobType: Literal["BATCH"]
    jobModality: StrictStr = Field(json_schema_extra={"enum": sorted(MODALITIES)})
    jobLevel: StrictInt = Field(json_schema_extra={"minimum": 1})  # range checked by _level
    labelAttributeName: StrictStr | None = Field(default=None, max_length=127)
    labelCategoryConfigS3Uri: S3Uri | None = None
    inputConfig: InputConfig
    workteamArn: StrictStr | None = Field(default=None, max_length=256)
    maxConcurrentTaskCount: StrictInt = Field(default=DEFAULT_MAX_CONCURRENT_TASKS, ge=1, le=5000)
    taskAvailabilityLifetimeInSeconds: StrictInt = Field(
        default=DEFAULT_TASK_AVAILABILITY_LIFETIME, ge=60, le=864_000
    )
    taskTimeLimitInSeconds: StrictInt = Field(default=DEFAULT_TASK_TIME_LIMIT, ge=30, le=604_800)
    qa: QaConfig | None = None

    @field_validator("jobName")
    @classmethod
    def _job_name(cls, value: str) -> str:
        if not JOB_NAME_RE.fullmatch(value):
            raise ValueError(
                f"{_short(value)} must match ^[a-zA-Z0-9](-*[a-zA-Z0-9]){{0,62}}$ "
                "(letters, digits and inner hyphens; Ground Truth rejects underscores)"
            )
        return value

    @field_validator("jobModality")
    @classmethod
    def _modality(cls, value: str) -> str:
        try:
            get_modality(value)
        except UnknownModalityError as exc:  # its text names the field, which the problem list adds
            raise ValueError(str(exc).removeprefix("jobModality: ")) from None
        return value

    @field_validator("jobLevel")
    @classmethod
    def _level(cls, value: int, info: ValidationInfo) -> int:
        max_level = (info.context or {}).get("max_job_level", 3)
        if not 1 <= value <= max_level:
            raise ValueError(f"must be an integer from 1 to {max_level}, got {value}")
        return value

    @field_validator("labelAttributeName")
    @classmethod
    def _label_attribute(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if not LABEL_ATTRIBUTE_RE.fullmatch(value):
            raise ValueError(f"{_short(value)} must match ^[a-zA-Z0-9](-*[a-zA-Z0-9]){{0,126}}$")
        if value.endswith("-metadata"):
            raise ValueError(f"{value!r} must not end with '-metadata'")
        modality = MODALITIES.get(info.data.get("jobModality", ""))
        if modality is not None:
            if modality.requires_ref_suffix and not value.endswith("-ref"):
                raise ValueError(f"{value!r} must end with '-ref' for {modality.name}")
            if not modality.requires_ref_suffix and value.endswith("-ref"):
                raise ValueError(f"{value!r} must not end with '-ref' for {modality.name}")
        return value

    @field_validator("labelCategoryConfigS3Uri")
    @classmethod
    def _category_uri(cls, value: str | None) -> str | None:
        return _check_s3_uri(value)

    @field_validator("inputConfig")
    @classmethod
    def _audit_chains(cls, value: InputConfig, info: ValidationInfo) -> InputConfig:
        modality = MODALITIES.get(info.data.get("jobModality", ""))
        if modality is not None and modality.is_audit and value.chainFromJobName is None:
            raise ValueError(f"chainFromJobName is required: {modality.name} adjusts a parent job's labels")
        if modality is not None and value.samplingStrategy == "targeted" and modality.base not in TARGETED_BASES:
            raise ValueError(
                f"samplingStrategy 'targeted' ranks frames by the QA risk of video frame labels and image "
                f"boxes ({', '.join(TARGETED_BASES)} and their audits); {modality.name} labels are not scored"
            )
        return value

    @field_validator("taskTimeLimitInSeconds")
    @classmethod
    def _task_time_limit(cls, value: int, info: ValidationInfo) -> int:
        modality = MODALITIES.get(info.data.get("jobModality", ""))
        if modality is not None and modality.media is MediaKind.IMAGE and value > IMAGE_TASK_TIME_LIMIT:
            raise ValueError(
                f"{value} is more than Ground Truth's {IMAGE_TASK_TIME_LIMIT} s (8 hours) for image tasks "
                f"such as {modality.name}"
            )
        return value

    @field_validator("qa")
    @classmethod
    def _gate_scored(cls, value: QaConfig | None, info: ValidationInfo) -> QaConfig | None:
        modality = MODALITIES.get(info.data.get("jobModality", ""))
        if value is not None and value.gate is not None and modality is not None and modality.base not in TARGETED_BASES:
            raise ValueError(
                f"gate: a QA gate needs labels smgt.qa scores (video frame labels and image boxes: "
                f"{', '.join(TARGETED_BASES)} and their audits); {modality.name} labels are not scored"
            )
        return value

    @field_validator("workteamArn")
    @classmethod
    def _workteam(cls, value: str | None) -> str | None:
        if value is not None and not WORKTEAM_ARN_RE.fullmatch(value):
            raise ValueError(f"{_short(value)} is not a SageMaker work team ARN")
        return value

    @property
    def modality(self):  # -> registry.Modality
        return get_modality(self.jobModality)

    @property
    def label_attribute(self) -> str:
        """The label attribute GT will write (filled by validation, so never None after it)."""
        assert self.labelAttributeName is not None
        return self.labelAttributeName


class BatchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    batchId: StrictStr = Field(max_length=63)
    destinationSnsArn: StrictStr | None = Field(default=None, max_length=1024)
    labelingJobs: list[LabelingJobConfig] = Field(min_length=1)
    # Defaults for chained jobs that do not say (inputConfig.samplingStrategy / explorationPercent);
    # a "targeted" default applies to the jobs whose labels smgt.qa scores (TARGETED_BASES) only.
    samplingStrategy: SamplingStrategy | None = None
    explorationPercent: Number | None = None
    # Level ("1", "2", ...) -> the QA gate of its jobs whose labels smgt.qa scores and that declare
    # none themselves (qa.gate).
    qaGates: dict[str, QaGate] | None = None

    def job(self, name: str) -> LabelingJobConfig:
        key = name.lower()
        for job in self.labelingJobs:
            if job.jobName.lower() == key:
                return job
        raise KeyError(name)

    def parent(self, job: LabelingJobConfig) -> LabelingJobConfig | None:
        chain = job.inputConfig.chainFromJobName
        return self.job(chain) if chain else None

    def jobs_at_level(self, level: int) -> list[LabelingJobConfig]:
        return [j for j in self.labelingJobs if j.jobLevel == level]

    @property
    def levels(self) -> list[int]:
        return sorted({j.jobLevel for j in self.labelingJobs})

    def to_conf(self) -> dict[str, Any]:
        """JSON-ready dict with the defaults filled in (what the DAG run stores)."""
        return self.model_dump(mode="json", exclude_none=True)


class BatchConfigError(ValueError):
    """Every problem found in a batch config; nothing was created."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid batch config:\n  - " + "\n  - ".join(problems))


def validate_batch_config(
    data: Any,
    *,
    region: str | None = None,
    max_job_level: int = 3,
    max_jobs: int = 100,
    batch_exists: Callable[[str], bool] | None = None,
    existing_job_names: Callable[[Iterable[str]], Iterable[str]] | None = None,
    preflight: Callable[[BatchConfig], Iterable[str]] | None = None,
) -> BatchConfig:
    """Validate untrusted config data; return a BatchConfig with defaults filled in.

    `batch_exists` and `existing_job_names` look up state outside the config (Airflow runs, GT jobs)
    and are only called when the config is otherwise valid, so a bad config triggers no look-up.
    `preflight` (e.g. `smgt.preflight.preflight_batch`) checks what the valid config names on AWS
    and returns its problems; it runs last, unless the batch id is already used, and its problems
    are reported together with the job-name ones.
    """
    problems: list[str] = []
    if region is not None:
        try:
            check_region(region)
        except UnsupportedRegionError as exc:
            problems.append(str(exc))
    if not isinstance(data, dict):
        raise BatchConfigError(problems + [f"batch config must be a JSON object, got {type(data).__name__}"])

    allowed = set(BatchConfig.model_fields)
    for key in data:
        if key not in allowed:
            problems.append(f"{_short(key)}: unknown field (allowed: {', '.join(sorted(allowed))})")

    batch_id = data.get("batchId")
    if batch_id is None:
        problems.append("batchId: required")
    elif not isinstance(batch_id, str):
        problems.append(f"batchId: must be a string, got {_short(batch_id)}")
    elif not BATCH_ID_RE.fullmatch(batch_id):
        problems.append(f"batchId: {_short(batch_id)} must match ^[a-zA-Z0-9-]{{1,63}}$")
    sns = data.get("destinationSnsArn")
    if sns is not None and (not isinstance(sns, str) or not SNS_ARN_RE.fullmatch(sns)):
        problems.append(f"destinationSnsArn: {_short(sns)} is not an SNS topic ARN")
    defaults = _sampling_defaults(data, problems)
    defaults.update(_qa_gate_defaults(data, max_job_level, problems))

    raw_jobs = data.get("labelingJobs")
    jobs: list[LabelingJobConfig] = []
    if raw_jobs is None:
        problems.append("labelingJobs: required")
    elif not isinstance(raw_jobs, list):
        problems.append(f"labelingJobs: must be a list, got {type(raw_jobs).__name__}")
    elif not raw_jobs:
        problems.append("labelingJobs: must hold at least one job")
    elif len(raw_jobs) > max_jobs:
        problems.append(f"labelingJobs: at most {max_jobs} jobs per batch, got {len(raw_jobs)}")
    else:
        jobs = _validate_jobs(raw_jobs, max_job_level, problems)
        if len(jobs) == len(raw_jobs):
            jobs = _check_across_jobs(jobs, problems, defaults)

    if problems:
        raise BatchConfigError(problems)
    duplicate = batch_exists is not None and batch_exists(batch_id)
    if duplicate:
        problems.append(f"batchId: {batch_id!r} is already used by an existing batch")
    if existing_job_names is not None:
        # A QA gate's re-work jobs are created later under names fixed now: they must be free too.
        owners = {j.jobName: j.jobName for j in jobs}
        for job in jobs:
            for round_number in range(1, (job.qa.gate.maxRounds if job.qa and job.qa.gate else 0) + 1):
                owners[rework_job_name(job.jobName, round_number)] = job.jobName
        owners_lower = {name.lower(): owner for name, owner in owners.items()}
        for name in existing_job_names(list(owners)):
            owner = owners_lower[name.lower()]
            what = "jobName" if owner.lower() == name.lower() else f"qa.gate: its re-work job {name!r}"
            problems.append(
                f"labelingJobs[{_index_of(jobs, owner)}] {owner!r}: {what}: a Ground Truth labeling job "
                "with this name already exists (GT keeps names unique per account and region forever)"
            )
    config = BatchConfig(batchId=batch_id, destinationSnsArn=sns, labelingJobs=jobs, **defaults)
    if preflight is not None and not duplicate:
        problems.extend(preflight(config))
    if problems:
        raise BatchConfigError(problems)
    return config


def _sampling_defaults(data: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    """The batch-level samplingStrategy / explorationPercent, checked like the job-level fields."""
    out: dict[str, Any] = {}
    strategy = data.get("samplingStrategy")
    if strategy is not None:
        if strategy not in ("random", "targeted"):
            problems.append(f"samplingStrategy: {_short(strategy)} must be 'random' or 'targeted'")
        else:
            out["samplingStrategy"] = strategy
    share = data.get("explorationPercent")
    if share is not None:
        try:
            out["explorationPercent"] = _exploration(_number(share))
        except ValueError as exc:
            problems.append(f"explorationPercent: {exc}")
    return out


def _qa_gate_defaults(data: dict[str, Any], max_job_level: int, problems: list[str]) -> dict[str, Any]:
    """The batch-level qaGates (level -> QaGate), checked like a job's qa.gate."""
    gates = data.get("qaGates")
    if gates is None:
        return {}
    if not isinstance(gates, dict):
        problems.append(f"qaGates: must be an object of level -> QA gate, got {type(gates).__name__}")
        return {}
    out: dict[str, QaGate] = {}
    for level, raw in gates.items():
        if not (isinstance(level, str) and level.isdigit() and 1 <= int(level) <= max_job_level):
            problems.append(f"qaGates: {_short(level)}: must be a job level from 1 to {max_job_level}")
            continue
        try:
            out[str(int(level))] = QaGate.model_validate(raw)
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                field = ".".join(str(p) for p in err["loc"])
                message = "unknown field" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
                problems.append(f"qaGates.{level}{'.' + field if field else ''}: {message}")
    return {"qaGates": out}


def _gate_updates(job: LabelingJobConfig, gates: dict[str, QaGate] | None) -> dict[str, Any]:
    """The level's QA gate (batch qaGates) for a scored job that declares none itself."""
    gate = (gates or {}).get(str(job.jobLevel))
    if gate is None or (job.qa and job.qa.gate) or job.modality.base not in TARGETED_BASES:
        return {}
    return {"qa": (job.qa or QaConfig()).model_copy(update={"gate": gate})}


def _check_rework_names(jobs: list[LabelingJobConfig], problems: list[str]) -> None:
    """Every re-work round a gate may run must get a valid, unused GT job name and label attribute."""
    names = {j.jobName.lower() for j in jobs}
    for index, job in enumerate(jobs):
        gate = job.qa.gate if job.qa else None
        if gate is None:
            continue
        last = rework_job_name(job.jobName, gate.maxRounds)
        label = f"labelingJobs[{index}] {job.jobName!r}"
        if len(last) > 63:
            problems.append(f"{label}: jobName: at most {63 - len(last) + len(job.jobName)} characters with a "
                            f"QA gate of {gate.maxRounds} round(s): its re-work job {last!r} needs the rest of GT's 63")
        if len(rework_label_attribute(job.label_attribute, gate.maxRounds)) > 127:
            problems.append(f"{label}: labelAttributeName: too long for a QA gate's re-work label attribute "
                            f"({rework_label_attribute(job.label_attribute, gate.maxRounds)!r} is over 127)")
        for round_number in range(1, gate.maxRounds + 1):
            taken = rework_job_name(job.jobName, round_number)
            if taken.lower() in names:
                problems.append(f"{label}: qa.gate: its re-work job {taken!r} has the name of another job of the batch")


def _index_of(jobs: list[LabelingJobConfig], name: str) -> int:
    return next(i for i, j in enumerate(jobs) if j.jobName.lower() == name.lower())


def _job_label(index: int, raw: Any) -> str:
    name = raw.get("jobName") if isinstance(raw, dict) else None
    return f"labelingJobs[{index}] {_short(name, 70)}" if isinstance(name, str) else f"labelingJobs[{index}]"


def _validate_jobs(raw_jobs: list[Any], max_job_level: int, problems: list[str]) -> list[LabelingJobConfig]:
    jobs = []
    for index, raw in enumerate(raw_jobs):
        label = _job_label(index, raw)
        if not isinstance(raw, dict):
            problems.append(f"{label}: must be a JSON object, got {type(raw).__name__}")
            continue
        try:
            jobs.append(LabelingJobConfig.model_validate(raw, context={"max_job_level": max_job_level}))
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                field = ".".join(str(p) for p in err["loc"]) or "job"
                message = err["msg"].removeprefix("Value error, ")
                if err["type"] == "extra_forbidden":
                    message = "unknown field"
                elif err["type"] == "literal_error" and err["loc"] == ("jobType",):
                    message = f"{_short(err.get('input'))} is not supported; jobType must be 'BATCH'"
                problems.append(f"{label}: {field}: {message}")
    return jobs


def _check_across_jobs(jobs: list[LabelingJobConfig], problems: list[str],
                       defaults: dict[str, Any] | None = None) -> list[LabelingJobConfig]:
    """Rules between jobs; returns the jobs with inherited/default fields filled in (`defaults`: the
    batch-level samplingStrategy / explorationPercent for chained jobs that give none)."""
    by_name: dict[str, LabelingJobConfig] = {}
    for index, job in enumerate(jobs):
        key = job.jobName.lower()  # GT job names are case-insensitive
        if key in by_name:
            problems.append(
                f"labelingJobs[{index}] {job.jobName!r}: jobName: duplicates {by_name[key].jobName!r} "
                "(job names must be unique in a batch; GT ignores case)"
            )
        else:
            by_name[key] = job

    for index, job in enumerate(jobs):
        label = f"labelingJobs[{index}] {job.jobName!r}"
        chain = job.inputConfig.chainFromJobName
        if chain is None:
            if job.labelCategoryConfigS3Uri is None:
                problems.append(f"{label}: labelCategoryConfigS3Uri: required for a job that does not chain")
            continue
        parent = by_name.get(chain.lower())
        if chain.lower() == job.jobName.lower():
            problems.append(f"{label}: inputConfig.chainFromJobName: a job cannot chain from itself")
        elif parent is None:
            problems.append(f"{label}: inputConfig.chainFromJobName: no job named {chain!r} in this batch")
        elif parent.jobLevel >= job.jobLevel:
            problems.append(
                f"{label}: inputConfig.chainFromJobName: parent {parent.jobName!r} is at level "
                f"{parent.jobLevel}; it must be at a lower level than {job.jobLevel}"
            )
        else:
            _check_chain_compatible(label, job, parent, problems)
    _check_cycles(jobs, by_name, problems)
    if problems:
        return jobs

    filled: dict[str, LabelingJobConfig] = {}
    for job in sorted(jobs, key=lambda j: j.jobLevel):  # parents are filled before children
        updates: dict[str, Any] = {}
        if job.labelAttributeName is None:
            updates["labelAttributeName"] = job.modality.default_label_attribute(job.jobName)
        if "taskTimeLimitInSeconds" not in job.model_fields_set and job.modality.media is MediaKind.IMAGE:
            updates["taskTimeLimitInSeconds"] = IMAGE_TASK_TIME_LIMIT
        if job.labelCategoryConfigS3Uri is None:
            parent = filled[job.inputConfig.chainFromJobName.lower()]
            updates["labelCategoryConfigS3Uri"] = parent.labelCategoryConfigS3Uri
        sampling = _sampling_updates(job, defaults or {})
        if sampling:
            updates["inputConfig"] = job.inputConfig.model_copy(update=sampling)
        updates.update(_gate_updates(job, (defaults or {}).get("qaGates")))
        filled[job.jobName.lower()] = job.model_copy(update=updates)

    result = [filled[j.jobName.lower()] for j in jobs]
    _check_rework_names(result, problems)
    for index, job in enumerate(result):
        if job.inputConfig.explorationPercent is not None and job.inputConfig.samplingStrategy != "targeted":
            problems.append(
                f"labelingJobs[{index}] {job.jobName!r}: inputConfig.explorationPercent: only applies with "
                "samplingStrategy 'targeted' (set it on the job or as the batch's samplingStrategy)"
            )
        parent_name = job.inputConfig.chainFromJobName
        if parent_name and filled[parent_name.lower()].labelAttributeName == job.labelAttributeName:
            problems.append(
                f"labelingJobs[{index}] {job.jobName!r}: labelAttributeName: {job.labelAttributeName!r} "
                f"must differ from the chained parent's ({parent_name!r}); GT would overwrite its labels"
            )
    return result


def _sampling_updates(job: LabelingJobConfig, defaults: dict[str, Any]) -> dict[str, Any]:
    """The batch's sampling defaults a chained job takes (only what it does not say itself)."""
    config = job.inputConfig
    if config.chainFromJobName is None:
        return {}
    updates: dict[str, Any] = {}
    strategy = config.samplingStrategy
    default = defaults.get("samplingStrategy")
    if strategy is None and default is not None and (default == "random" or job.modality.base in TARGETED_BASES):
        strategy = updates["samplingStrategy"] = default
    if strategy == "targeted" and config.explorationPercent is None and defaults.get("explorationPercent") is not None:
        updates["explorationPercent"] = defaults["explorationPercent"]
    return updates


def _check_chain_compatible(
    label: str, job: LabelingJobConfig, parent: LabelingJobConfig, problems: list[str]
) -> None:
    mine, theirs = job.modality, parent.modality
    if mine.is_audit and mine.base != theirs.base:
        problems.append(
            f"{label}: jobModality: {mine.name} can only adjust labels of a {mine.base} job, "
            f"but parent {parent.jobName!r} is {theirs.name}"
        )
    elif mine.media != theirs.media:
        problems.append(
            f"{label}: jobModality: {mine.name} works on {mine.media.value} data, but parent "
            f"{parent.jobName!r} ({theirs.name}) outputs {theirs.media.value} data"
        )


def _check_cycles(jobs: list[LabelingJobConfig], by_name: dict[str, LabelingJobConfig], problems: list[str]) -> None:
    # Level ordering already forbids cycles; this names the loop when levels were also wrong.
    reported: set[frozenset[str]] = set()
    for job in jobs:
        seen: list[str] = []
        current: LabelingJobConfig | None = job
        while current is not None and current.jobName.lower() not in seen:
            seen.append(current.jobName.lower())
            chain = current.inputConfig.chainFromJobName
            current = by_name.get(chain.lower()) if chain else None
        if current is not None and len(seen) > 1:
            loop = seen[seen.index(current.jobName.lower()) :]
            if frozenset(loop) not in reported:
                reported.add(frozenset(loop))
                problems.append(
                    "inputConfig.chainFromJobName: chain cycle " + " -> ".join(loop + [loop[0]])
                )


def batch_config_json_schema(max_job_level: int = 3) -> dict[str, Any]:
    """Self-contained JSON schema of the batch config (refs inlined) for Airflow Params."""
    schema = BatchConfig.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(defs[node["$ref"].rsplit("/", 1)[-1]])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    schema = inline(schema)
    props = schema["properties"]
    props["batchId"]["pattern"] = "^[a-zA-Z0-9-]{1,63}$"
    job_props = props["labelingJobs"]["items"]["properties"]
    job_props["jobName"]["pattern"] = "^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"
    job_props["jobLevel"]["maximum"] = max_job_level
    return schema
