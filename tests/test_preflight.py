"""The pre-flight (smgt.preflight) against real S3 (SeaweedFS) and the local Ground Truth's SNS and
SageMaker: every rule with its message, what it leaves alone, its bounds and its errors."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from preflight_cases import (
    DEMO_CONFIG,
    DEMO_MANIFEST,
    chained_job_names,
    defective_batch,
    missing_expectations,
    upload_fixtures,
)
from sample_batches import notebook_batch

from smgt.config import BatchConfigError, validate_batch_config
from smgt.embedded import free_port
from smgt.preflight import (
    PREFLIGHT_BOTOCORE_CONFIG,
    AwsClients,
    PreflightLimits,
    PreflightUnavailableError,
    preflight_batch,
)
from smgt.settings import Settings

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from s3_store import seaweedfs_store

    from smgt.local import LocalGroundTruth

    with seaweedfs_store(tmp_path_factory.mktemp("pf-s3")) as store, LocalGroundTruth(
            port=0, task_seconds=0.0, s3=store, settings=Settings()) as emulator:
        emulator.upload_demo_data()
        emulator.fixtures = upload_fixtures(emulator.client("s3"))
        yield emulator


@pytest.fixture(scope="module")
def clients(emu: Any) -> AwsClients:
    return AwsClients(s3=emu.client("s3", config=PREFLIGHT_BOTOCORE_CONFIG), sns=emu.client("sns"),
                      sagemaker=emu.client("sagemaker"))


def run(conf: dict, clients: AwsClients, **kwargs: Any) -> Any:
    return preflight_batch(validate_batch_config(conf), clients, settings=Settings(), **kwargs)


def test_every_rule_gives_its_message_naming_job_and_field(emu: Any, clients: AwsClients) -> None:
    conf, expected = defective_batch("pf-all", emu.fixtures)
    report = run(conf, clients)
    assert missing_expectations(report.problems, expected) == []
    # The valid job is never named, and nothing is said about a chained job's input (it has none
    # until its parent ran): only its label category config is checked.
    assert not [p for p in report.problems if p.startswith("labelingJobs[0] ")]
    for name in chained_job_names(conf):
        about = [p for p in report.problems if f"{name!r}:" in p]
        assert about and all(f"{name!r}: labelCategoryConfigS3Uri: " in p for p in about), about
    assert report.unchecked == []


def test_the_notebook_batch_passes_with_a_few_calls(emu: Any, clients: AwsClients) -> None:
    report = run(notebook_batch("pf-nb", manifest=DEMO_MANIFEST), clients)
    assert report.problems == [] and report.unchecked == []
    # 4 label configs + 1 manifest (two jobs share it) + 1 sequence file + its first and last frame,
    # the default SNS topic, the two default work teams and the processing bucket.
    assert report.calls == 4 + 1 + 1 + 2 + 1 + 2 + 1
    assert report.bytes_read < 10_000


def test_objects_named_by_several_jobs_are_read_once(emu: Any, clients: AwsClients) -> None:
    one = notebook_batch("pf-one", manifest=DEMO_MANIFEST)
    one["labelingJobs"] = one["labelingJobs"][:1]
    many = notebook_batch("pf-many", manifest=DEMO_MANIFEST)
    many["labelingJobs"] = [dict(one["labelingJobs"][0], jobName=f"pf-many-{i}", labelAttributeName=f"v{i}-ref")
                            for i in range(20)]
    assert run(many, clients).calls == run(one, clients).calls


def test_problems_join_the_config_models_job_name_check(emu: Any, clients: AwsClients) -> None:
    conf = notebook_batch("pf-join", manifest=DEMO_MANIFEST + ".gone")
    with pytest.raises(BatchConfigError) as raised:
        validate_batch_config(
            conf, existing_job_names=lambda names: [n for n in names if n.endswith("-lane")],
            preflight=lambda config: preflight_batch(config, clients).problems)
    problems = raised.value.problems
    assert any("'pf-join-lane': jobName: a Ground Truth labeling job with this name already exists" in p for p in problems)
    assert any(p.startswith("labelingJobs[0] 'pf-join-vehicle': inputConfig.inputManifestS3Uri: ") and
               p.endswith(".gone does not exist") for p in problems)
    # A batch id already used: 409 territory, the pre-flight does not run.
    with pytest.raises(BatchConfigError) as raised:
        validate_batch_config(conf, batch_exists=lambda _: True,
                              preflight=lambda config: pytest.fail("pre-flight ran for a duplicate batch"))
    assert raised.value.problems == ["batchId: 'pf-join' is already used by an existing batch"]


def test_deployment_defaults_are_checked_and_named(emu: Any, clients: AwsClients) -> None:
    settings = Settings(processing_bucket="smgt-no-such-processing-bucket",
                        default_sns_topic_arn="arn:aws:sns:us-east-1:123456789012:gone-topic",
                        second_level_workteam_arn="arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/gone")
    report = preflight_batch(validate_batch_config(notebook_batch("pf-dep", manifest=DEMO_MANIFEST)), clients,
                             settings=settings)
    text = "\n".join(report.problems)
    assert "SMGT_PROCESSING_BUCKET (chained inputs and Ground Truth's output go there): bucket " \
           "'smgt-no-such-processing-bucket' does not exist" in text
    assert "SMGT_DEFAULT_SNS_TOPIC_ARN (the batch has no destinationSnsArn): SNS topic " \
           "arn:aws:sns:us-east-1:123456789012:gone-topic does not exist" in text
    assert "SMGT_SECOND_LEVEL_WORKTEAM_ARN (the work team of pf-dep-vehicle-audit, pf-dep-lane-audit): work team" in text
    assert len(report.problems) == 3


def test_wrong_credentials_are_a_problem_not_a_crash(emu: Any) -> None:
    s3 = boto3.session.Session().client(
        "s3", endpoint_url=emu.s3_endpoint_url, aws_access_key_id=emu.access_key,
        aws_secret_access_key="not-the-secret", region_name="us-east-1", config=PREFLIGHT_BOTOCORE_CONFIG)
    conf = notebook_batch("pf-creds", manifest=DEMO_MANIFEST)
    conf["labelingJobs"] = conf["labelingJobs"][:1]
    problems = preflight_batch(validate_batch_config(conf), AwsClients(s3=s3)).problems
    assert f"labelingJobs[0] 'pf-creds-vehicle': labelCategoryConfigS3Uri: {DEMO_CONFIG} cannot be read with " \
           "the deployment's credentials (SignatureDoesNotMatch)" in problems


def test_unreachable_s3_is_unavailable_within_the_timeouts() -> None:
    port = free_port()  # nothing listens there
    s3 = boto3.session.Session().client(
        "s3", endpoint_url=f"http://127.0.0.1:{port}", aws_access_key_id="x", aws_secret_access_key="y",
        region_name="us-east-1", config=PREFLIGHT_BOTOCORE_CONFIG)
    started = time.monotonic()
    with pytest.raises(PreflightUnavailableError, match="could not be reached"):
        preflight_batch(validate_batch_config(notebook_batch("pf-down", manifest=DEMO_MANIFEST)), AwsClients(s3=s3))
    assert time.monotonic() - started < 30


def test_the_time_budget_leaves_checks_unchecked_never_false_problems(emu: Any, clients: AwsClients) -> None:
    conf, _ = defective_batch("pf-late", emu.fixtures)
    report = run(conf, clients, limits=PreflightLimits(time_budget=0.0))
    assert report.problems == [] and report.calls == 0
    assert report.unchecked and all("not checked within 0 s" in u for u in report.unchecked)


def test_frame_prefix_of_a_recurring_batch(emu: Any, clients: AwsClients) -> None:
    conf = notebook_batch("pf-frames", manifest=DEMO_MANIFEST)
    conf["labelingJobs"] = conf["labelingJobs"][:2]
    config = validate_batch_config(conf)
    frames = {"pf-frames-vehicle": "s3://smgt-workflows-123456789012-us-east-1-batch-input/MOT17/train/",
              "pf-frames-lane": "s3://smgt-workflows-123456789012-us-east-1-batch-input/nothing-here/"}
    problems = preflight_batch(config, clients, frame_prefixes=frames).problems
    assert problems == [
        "labelingJobs[1] 'pf-frames-lane': inputConfig.framesS3Prefix: s3://smgt-workflows-123456789012-us-east-1-"
        "batch-input/nothing-here/ holds no frame images (.jpg, .jpeg, .png) in video folders, e.g. "
        "s3://smgt-workflows-123456789012-us-east-1-batch-input/nothing-here/<video>/img1/000001.jpg"]
    local = {"pf-frames-vehicle": ("vehicle.json", '{"document-version": "2020-08-15", "labels": []}')}
    problems = preflight_batch(config, clients, local_label_configs=local).problems
    assert problems == ["labelingJobs[0] 'pf-frames-vehicle': labelCategoryConfigFile: vehicle.json: "
                        "labels: at least one label is required"]


def test_image_jobs_get_gts_eight_hour_task_limit() -> None:
    job = {"jobName": "boxes", "jobType": "BATCH", "jobModality": "BoundingBox", "jobLevel": 1,
           "labelCategoryConfigS3Uri": "s3://bucket-a/c.json", "inputConfig": {"inputManifestS3Uri": "s3://bucket-a/m"}}
    config = validate_batch_config({"batchId": "b", "labelingJobs": [job]})
    assert config.labelingJobs[0].taskTimeLimitInSeconds == 28_800  # not the 7-day video default
    with pytest.raises(BatchConfigError, match="taskTimeLimitInSeconds: 28801 is more than Ground Truth's 28800 s"):
        validate_batch_config({"batchId": "b", "labelingJobs": [dict(job, taskTimeLimitInSeconds=28_801)]})


def test_clients_keep_short_timeouts() -> None:
    assert PREFLIGHT_BOTOCORE_CONFIG.connect_timeout == 3 and PREFLIGHT_BOTOCORE_CONFIG.read_timeout == 10
    assert PREFLIGHT_BOTOCORE_CONFIG.retries == {"mode": "standard", "total_max_attempts": 2}
    merged = Config(retries={"mode": "legacy"}).merge(PREFLIGHT_BOTOCORE_CONFIG)
    assert merged.read_timeout == 10
