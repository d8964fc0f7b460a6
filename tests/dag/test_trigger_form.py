"""The smgt_batch trigger form: its fields, and resolve_batch turning the form's values into the batch
config (template expansion, generated batchId, input override, custom labelingJobs, the duplicate
batchId refusal), run with dag.test() on the resolve task against the local Ground Truth emulator.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from dag_helpers import load_dag_module, snapshot_of
from sample_batches import notebook_batch

from smgt import batch_status
from smgt.batch import CLAIM_NAME, REJECTION_XCOM_KEY, batch_prefix
from smgt.config import parse_s3_uri
from smgt.dag_factory import RESOLVE_TASK_ID, batch_params
from smgt.settings import get_settings
from smgt.trigger_form import CUSTOM, demo_manifest_uri

pytestmark = pytest.mark.timeout(600)

NOTEBOOK_JOBS = ["vehicle", "lane", "vehicle-audit", "lane-audit"]


def unique(prefix: str) -> str:
    return f"{prefix}-{time.time_ns() % 10**10}"


@pytest.fixture
def resolve_only(emulator: Any) -> Any:
    """smgt_batch cut down to its resolve_batch task (same id, params and task): what the form's
    values resolve to, without running the jobs."""
    from airflow.sdk import DAG

    module = load_dag_module("smgt_batch")
    with DAG("smgt_batch", schedule=None, params=batch_params(3)) as dag:
        module.resolve_batch()
    return dag


def form_conf(**values: Any) -> dict[str, Any]:
    """The conf the UI form sends: every field, the defaults where the user changed nothing."""
    conf = {name: param.value for name, param in batch_params(3).items()}
    conf.update(values)
    return conf


def resolved(run: Any) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        row = session.scalars(select(XComModel).where(
            XComModel.dag_id == run.dag_id, XComModel.run_id == run.run_id,
            XComModel.task_id == RESOLVE_TASK_ID, XComModel.key == "return_value")).first()
        return XComModel.deserialize_value(row) if row is not None else None


def problems_of(run: Any) -> list[str]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        row = session.scalars(select(XComModel).where(
            XComModel.dag_id == run.dag_id, XComModel.run_id == run.run_id,
            XComModel.task_id == RESOLVE_TASK_ID, XComModel.key == REJECTION_XCOM_KEY)).first()
        return XComModel.deserialize_value(row) if row is not None else []


def s3_keys(emulator: Any, uri_prefix: str) -> list[str]:
    bucket, prefix = parse_s3_uri(uri_prefix.rstrip("/") + "/")
    pages = emulator.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


# ---------------------------------------------------------------- the form's fields (parse time)

def test_form_offers_the_batch_templates_with_a_working_default_and_describes_every_field() -> None:
    params = batch_params(3)
    assert list(params) == ["template", "batchId", "input", "destinationSnsArn", "labelingJobs"]
    template = params["template"]
    assert template.schema["enum"] == ["notebook_tracking", "street_daily", CUSTOM]
    assert template.value == "notebook_tracking"
    assert set(template.schema["values_display"]) == set(template.schema["enum"])
    assert params["input"].value == demo_manifest_uri(get_settings())
    assert params["batchId"].value is None  # generated from the template when left empty
    for name, param in params.items():
        assert len(param.description or "") > 40, f"{name} has no description"
        assert param.schema.get("title"), name
    # Only types: a bad value reaches resolve_batch and gets batch/create's words, not Airflow's.
    assert "pattern" not in str(params)


def test_form_params_survive_serialization_as_the_ui_reads_them() -> None:
    from airflow.serialization.serialized_objects import DagSerialization

    dag = load_dag_module("smgt_batch").dag
    serialized = DagSerialization.to_dict(dag)
    params = dict(DagSerialization.deserialize_dag(serialized["dag"]).params.items())
    template = params["template"].dump()
    assert template["value"] == "notebook_tracking"
    assert template["schema"]["values_display"][CUSTOM].startswith("custom: write labelingJobs yourself")
    assert params["labelingJobs"].dump()["schema"]["section"] == "Custom batch"


# ---------------------------------------------------------------- resolve_batch from the form

def test_form_unchanged_resolves_the_notebook_template_with_a_generated_batch_id(emulator, resolve_only):
    settings = get_settings()
    run = resolve_only.test(run_conf=form_conf())

    assert run.state == "success", problems_of(run)
    config = resolved(run)
    batch_id = config["batchId"]
    assert re.fullmatch(r"nb-track-\d{14}", batch_id), batch_id
    assert [j["jobName"] for j in config["labelingJobs"]] == [f"{batch_id}-{n}" for n in NOTEBOOK_JOBS]
    level_1 = [j for j in config["labelingJobs"] if j["jobLevel"] == 1]
    assert {j["inputConfig"]["inputManifestS3Uri"] for j in level_1} == {demo_manifest_uri(settings)}
    chained = {j["jobName"]: j["inputConfig"]["chainFromJobName"] for j in config["labelingJobs"] if j["jobLevel"] == 2}
    assert chained == {f"{batch_id}-vehicle-audit": f"{batch_id}-vehicle", f"{batch_id}-lane-audit": f"{batch_id}-lane"}
    # The label configs were uploaded under the batch's prefix, and the config points at them.
    base = batch_prefix(settings, batch_id)
    uploaded = s3_keys(emulator, f"{base}/label_configs/")
    assert [k.rsplit("/", 1)[-1] for k in uploaded] == sorted(
        ["lane_label_category.json", "lane_label_category_audit.json", "vehicle_label_category.json",
         "vehicle_label_category_audit.json"])
    assert all(j["labelCategoryConfigS3Uri"].startswith(f"{base}/label_configs/") for j in config["labelingJobs"])
    # batch/show finds the run by the generated id (not in the conf: in resolve_batch's XCom).
    snapshot = snapshot_of(batch_id)
    assert snapshot is not None and snapshot.run_id == run.run_id
    shown = batch_status.describe_batch(snapshot)
    assert [j["jobName"] for j in shown["inputLabelingJobs"]] == [j["jobName"] for j in config["labelingJobs"]]
    from airflow.utils.session import create_session

    with create_session() as session:
        assert batch_status.batch_id_in_use(session, batch_id)
        assert not batch_status.batch_id_in_use(session, batch_id, exclude=(run.dag_id, run.run_id))


def test_batch_id_and_frames_prefix_from_the_form(emulator, resolve_only):
    settings = get_settings()
    batch_id = unique("form-frames")
    frames = f"s3://{settings.input_bucket}/MOT17/train/"
    run = resolve_only.test(run_conf=form_conf(batchId=batch_id, input=frames))

    assert run.state == "success", problems_of(run)
    config = resolved(run)
    assert config["batchId"] == batch_id
    base = batch_prefix(settings, batch_id)
    for job in config["labelingJobs"]:
        if job["jobLevel"] == 1:
            # Built from the frames under the prefix, like the notebook: a manifest of the batch's own.
            manifest = job["inputConfig"]["inputManifestS3Uri"]
            assert manifest.startswith(f"{base}/inputs/{job['jobName']}/frames"), manifest
            assert parse_s3_uri(manifest)[1] in s3_keys(emulator, f"{base}/inputs/{job['jobName']}/")
        else:
            assert job["inputConfig"]["chainFromJobName"].startswith(batch_id)


def test_custom_labeling_jobs_are_used_as_given(emulator, resolve_only):
    batch_id = unique("form-custom")
    conf = notebook_batch(batch_id)
    for job in conf["labelingJobs"]:
        if "inputManifestS3Uri" in job["inputConfig"]:
            job["inputConfig"]["inputManifestS3Uri"] = emulator.demo["manifest_uri"]
        name = job["labelCategoryConfigS3Uri"].rsplit("/", 1)[-1].removesuffix(".json")
        job["labelCategoryConfigS3Uri"] = emulator.demo["label_configs"][name]
    run = resolve_only.test(run_conf=form_conf(template=CUSTOM, **conf))

    assert run.state == "success", problems_of(run)
    config = resolved(run)
    assert [j["jobName"] for j in config["labelingJobs"]] == [j["jobName"] for j in conf["labelingJobs"]]
    assert [j["labelCategoryConfigS3Uri"] for j in config["labelingJobs"]] == [
        j["labelCategoryConfigS3Uri"] for j in conf["labelingJobs"]]
    # Nothing uploaded: only the claim that this run holds the batchId (smgt.batch.claim_batch_id).
    prefix = f"{batch_prefix(get_settings(), batch_id)}/"
    assert s3_keys(emulator, prefix) == [parse_s3_uri(prefix + CLAIM_NAME)[1]]


def test_bad_form_values_fail_resolve_batch_with_the_api_messages_and_create_nothing(emulator, resolve_only):
    settings = get_settings()
    batch_id = unique("form-bad")
    missing = f"s3://{settings.input_bucket}/tracking_manifests/no-such.manifest"
    run = resolve_only.test(run_conf=form_conf(batchId=batch_id, input=missing))

    assert run.state == "failed"
    problems = problems_of(run)
    assert problems and all("no-such.manifest" in p for p in problems), problems
    assert any(p.startswith(f"labelingJobs[0] '{batch_id}-vehicle': inputConfig.inputManifestS3Uri") for p in problems)
    snapshot = snapshot_of(batch_id)
    assert batch_status.batch_status(snapshot) == "VALIDATION_FAIL"
    assert problems[0] in batch_status.describe_batch(snapshot)["message"]
    assert s3_keys(emulator, f"{batch_prefix(settings, batch_id)}/") == []  # no label config uploaded

    bad_id = resolve_only.test(run_conf=form_conf(batchId="bad_id"))
    assert bad_id.state == "failed"
    # The batchId's own message first, then each job name the template would make from it.
    assert problems_of(bad_id)[0] == "batchId: 'bad_id' must match ^[a-zA-Z0-9-]{1,63}$"
    assert "labelingJobs[0] 'bad_id-vehicle': jobName: 'bad_id-vehicle' must match" in problems_of(bad_id)[1]

    # Too long for the template's job names: one problem naming the batchId, not one per job.
    too_long = "a" * 50
    long_id = resolve_only.test(run_conf=form_conf(batchId=too_long))
    assert long_id.state == "failed"
    (problem,) = problems_of(long_id)
    assert problem.startswith(f"batchId: '{too_long}' has 50 characters; with include/batches/") and "at most 49" in problem
    assert "'<batchId>-vehicle-audit'" in problem

    custom = resolve_only.test(run_conf=form_conf(template=CUSTOM, batchId=unique("form-nojobs")))
    assert custom.state == "failed"
    assert [p.split(" ", 1)[0] for p in problems_of(custom)] == ["labelingJobs:"]


def test_a_batch_id_used_by_another_run_is_refused(emulator, resolve_only):
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunType

    batch_id = unique("form-dup")
    # A batch made by batch/create: run id = batchId.
    with create_session() as session:
        session.add(DagRun(dag_id="smgt_batch", run_id=batch_id, run_type=DagRunType.MANUAL,
                           state=DagRunState.SUCCESS, conf=notebook_batch(batch_id)))
    run = resolve_only.test(run_conf=form_conf(batchId=batch_id))

    assert run.state == "failed"
    assert problems_of(run) == [f"batchId: '{batch_id}' is already used by an existing batch"]
    assert s3_keys(emulator, f"{batch_prefix(get_settings(), batch_id)}/") == []
    # The shared look-up (batch/create's 409, the trigger guard) also sees a form run's conf batchId.
    with create_session() as session:
        assert batch_status.batch_id_in_use(session, batch_id)
        assert batch_status.batch_id_in_use(session, batch_id, exclude=("smgt_batch", run.run_id))
        # The refused run carries it in its conf too, but created nothing: it does not hold the id.
        assert not batch_status.batch_id_in_use(session, batch_id, exclude=("smgt_batch", batch_id))
        # It is listed under its run id, since the id is the other batch's.
        listed = batch_status.list_batches(session, limit=1000)
        assert run.run_id in listed["VALIDATION_FAIL"] and batch_id not in listed["VALIDATION_FAIL"]
        assert not batch_status.batch_id_in_use(session, unique("form-free"))
