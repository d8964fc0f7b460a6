"""Deployment settings: the one place every process (DAG, hook, API, emulator bootstrap) reads.

Values come from environment variables (SMGT_*), so the same code runs under `airflow standalone`,
docker compose (.env) and Celery workers without extra wiring. AWS credentials and the endpoint
are not here: they belong to the Airflow connection named by SMGT_AWS_CONN_ID (default
`aws_default`), exactly as for the amazon provider.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

LOCAL_ACCOUNT_ID = "123456789012"  # moto's default account: what the local emulator uses


@dataclass(frozen=True)
class Settings:
    aws_conn_id: str = "aws_default"
    region: str = "us-east-1"
    # Role Ground Truth assumes to read inputs and write outputs.
    role_arn: str = f"arn:aws:iam::{LOCAL_ACCOUNT_ID}:role/smgt-gt-execution"
    # Where chained inputs, down-sampled sequences and GT outputs go.
    processing_bucket: str = f"smgt-workflows-{LOCAL_ACCOUNT_ID}-us-east-1-batch-processing"
    processing_prefix: str = "batches"
    # The notebook uploads its data here.
    input_bucket: str = f"smgt-workflows-{LOCAL_ACCOUNT_ID}-us-east-1-batch-input"
    first_level_workteam_arn: str = (
        f"arn:aws:sagemaker:us-east-1:{LOCAL_ACCOUNT_ID}:workteam/private-crowd/smgt-workflows-first-level"
    )
    second_level_workteam_arn: str = (
        f"arn:aws:sagemaker:us-east-1:{LOCAL_ACCOUNT_ID}:workteam/private-crowd/smgt-workflows-second-level"
    )
    default_sns_topic_arn: str = f"arn:aws:sns:us-east-1:{LOCAL_ACCOUNT_ID}:smgt-workflows-batch-status"
    max_job_level: int = 3
    max_jobs_per_batch: int = 100
    # Seconds between DescribeLabelingJob polls of a deferred sensor.
    poke_interval: int = 30
    # Retries of each batch task (creates adopt their own job, so retrying is safe).
    task_retries: int = 2
    # SQS queue that an EventBridge rule fills with Ground Truth's "SageMaker Ground Truth Labeling Job
    # State Change" events (smgt.gt.events). Set: a waiting trigger wakes on its job's event and only
    # polls DescribeLabelingJob slowly as a fallback. Empty: triggers poll every `poke_interval`.
    events_queue_url: str = ""
    # With events: seconds between fallback polls of a waiting job (also capped at 10 poke intervals),
    # so a lost event only delays the hand-off.
    events_fallback_poll: int = 300

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(f"SMGT_{f.name.upper()}")
            if raw is None or raw == "":
                continue
            values[f.name] = int(raw) if f.type in ("int", int) else raw
        return cls(**values)


def get_settings() -> Settings:
    """Read settings now (cheap; not cached so tests and long-lived processes see env changes)."""
    return Settings.from_env()


def setting_names() -> list[str]:
    """Environment variable names, for the README and error messages."""
    return [f"SMGT_{f.name.upper()}" for f in fields(Settings)]
