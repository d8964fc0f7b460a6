"""The `smgt_batch` trigger form: its fields, and how a run's conf becomes its batch config.

The form (Airflow's trigger dialog, built from the DAG's Params) offers:

    template            a batch file of include/batches/ (default: the notebook's batch), or "custom"
    batchId             optional: empty -> {the template's batchIdPrefix}-{YYYYmmddHHMMSS of the run}
    input               an input manifest s3://bucket/key, or a frames prefix ending in '/', for the
                        template's level-1 jobs (default: the demo video's manifest)
    destinationSnsArn   optional SNS topic for the result message
    labelingJobs        advanced: the jobs as JSON (SPEC section 2); when given, template and input
                        are not used (the conf is a batch config, as batch/create takes it)

So triggering the form unchanged starts the notebook's batch on the demo data. A conf with
`labelingJobs` (the batch API, the CLI, a pasted examples/notebook_batch.json) is validated as it is
today. A template run is expanded by `smgt.batch_files.materialize_batch`: validated and
pre-flighted first, label configs uploaded only after that, so a rejected form creates nothing and
leaves the same messages as batch/create in resolve_batch's XCom (`problems`) for batch/show.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from smgt.config import BatchConfig, BatchConfigError
from smgt.settings import Settings

CUSTOM = "custom"
DEFAULT_TEMPLATE = "notebook_tracking"
DEMO_MANIFEST_KEY = "tracking_manifests/MOT17-13-SDP.manifest"
# Fields of the form that are not batch config fields.
FORM_ONLY_KEYS = ("template", "input")
FORM_KEYS = ("template", "batchId", "input", "destinationSnsArn", "labelingJobs")


def demo_manifest_uri(settings: Settings) -> str:
    """The demo video's input manifest (uploaded by the emulator's `upload_demo_data`)."""
    return f"s3://{settings.input_bucket}/{DEMO_MANIFEST_KEY}"


def default_template(names: Iterable[str]) -> str:
    names = list(names)
    return DEFAULT_TEMPLATE if DEFAULT_TEMPLATE in names else (names[0] if names else CUSTOM)


def form_values(conf: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """The form's fields of a run: the conf's, else the Params' defaults (a conf that names no
    template, e.g. `{}` from the CLI, gets the default template). Empty strings count as empty."""
    values = {}
    for key in FORM_KEYS:
        value = conf[key] if key in conf else params.get(key)
        values[key] = None if isinstance(value, str) and not value.strip() else value
    return values


def uses_template(conf: Mapping[str, Any], params: Mapping[str, Any]) -> bool:
    """True when the run's batch comes from a template: no `labelingJobs` given."""
    return not form_values(conf, params)["labelingJobs"]


def resolve_run(
    conf: Mapping[str, Any],
    params: Mapping[str, Any],
    *,
    run_id: str,
    run_time: datetime,
    settings: Settings,
    storage_factory: Callable[[], Any],
    foreign_job_names: Callable[[str], Callable[[list[str]], list[str]]] | None = None,
    batch_exists: Callable[[str], bool] | None = None,
    preflight: Any = "connection",
    claim: Callable[[str], None] | None = None,
) -> BatchConfig:
    """The run's batch config, validated and pre-flighted, its template's files uploaded.

    `conf` is the run's conf, `params` its Params (defaults merged). With `labelingJobs` the conf
    minus the form-only fields (`template`, `input`) is the batch config (`smgt.batch.load_batch`);
    else the `template` batch file is expanded (`smgt.batch_files.materialize_batch`) with the
    batchId (generated when empty), input and topic of the form. `foreign_job_names(batchId)`
    returns the check of GT job names for that batch; `batch_exists(batchId)` whether another batch
    uses the id; `preflight` "connection" (default), or None to skip it (tests of the expansion);
    `claim(batchId)` holds the id for this run once the config passed (smgt.batch.claim_batch_id).

    Raises BatchConfigError with every problem (also left in the task's XCom `problems`), or
    ValueError when the run id is neither the batchId nor generated.
    """
    from smgt.batch import check_run_id, load_batch, record_rejection
    from smgt.batch_files import BatchFileError, batch_id_for, materialize_batch, template_file

    values = form_values(conf, params)
    if values["labelingJobs"]:
        batch_conf = {k: v for k, v in conf.items() if k not in FORM_ONLY_KEYS}
        batch_id = batch_conf.get("batchId")
        return load_batch(
            batch_conf,
            run_id=run_id,
            settings=settings,
            foreign_job_names=foreign_job_names(str(batch_id)) if foreign_job_names else None,
            preflight=preflight,
            batch_exists=batch_exists,
            claim=claim,
        )
    problems = [
        f"{key}: unknown field (allowed: {', '.join(sorted(FORM_KEYS))})" for key in conf if key not in FORM_KEYS
    ]
    template = values["template"]
    if template in (None, CUSTOM):
        problems.append(f"labelingJobs: required with template {CUSTOM!r} (the jobs as JSON, SPEC section 2), "
                        "or pick a batch template")
    if not problems:
        try:
            batch_file = template_file(str(template))
        except BatchFileError as exc:
            problems.extend(exc.problems)
    if not problems:
        for key in ("batchId", "input", "destinationSnsArn"):
            if values[key] is not None and not isinstance(values[key], str):
                problems.append(f"{key}: must be a string, got {type(values[key]).__name__}")
    if problems:
        record_rejection(problems)
        raise BatchConfigError(problems)
    batch_id = values["batchId"] or batch_id_for(batch_file.prefix, run_time)
    if values["batchId"]:
        check_run_id(batch_id, run_id)
    return materialize_batch(
        batch_file,
        run_time,
        settings=settings,
        storage=storage_factory(),
        foreign_job_names=foreign_job_names(batch_id) if foreign_job_names else None,
        preflight_clients=preflight,
        batch_id=batch_id,
        input_uri=values["input"],
        destination_sns_arn=values["destinationSnsArn"],
        batch_exists=batch_exists,
        claim=claim,
    )
