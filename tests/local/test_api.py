"""boto3 (and aiobotocore) against a running emulator: labeling jobs and work teams."""

from __future__ import annotations

import asyncio
import json

import pytest
from botocore.exceptions import ClientError
from status_queue import batch_messages

from .local_gt_helpers import SETTINGS, job_request, unique, wait_terminal

# (jobModality, input key, category key) per modality family; "demo:" keys come from the demo data.
FAMILIES = [
    ("VideoObjectTracking", "demo:manifest_uri", "demo:vehicle_label_category"),
    ("VideoObjectTracking", "demo:manifest_uri", "demo:lane_label_category"),
    ("VideoObjectDetection", "demo:manifest_uri", "demo:vehicle_label_category"),
    ("BoundingBox", "images", "car"),
    ("SemanticSegmentation", "images", "road"),
    ("PointCloudObjectDetection", "cloud", "cuboids"),
    ("PointCloudObjectTracking", "cloud_seq", "cuboids"),
    ("PointCloudSemanticSegmentation", "cloud", "cuboids"),
]


def resolve(demo, inputs, key: str) -> str:
    if key.startswith("demo:"):
        name = key[5:]
        return demo[name] if name in demo else demo["label_configs"][name]
    return inputs[key]


@pytest.mark.parametrize(("modality", "manifest", "category"), FAMILIES)
def test_create_describe_list_each_family(sm, demo, inputs, modality, manifest, category):
    name = unique(modality[:14].lower())
    req = job_request(name, modality, resolve(demo, inputs, manifest), resolve(demo, inputs, category),
                      template=inputs["template"])
    arn = sm.create_labeling_job(**req)["LabelingJobArn"]
    assert arn == f"arn:aws:sagemaker:us-east-1:123456789012:labeling-job/{name}"

    first = sm.describe_labeling_job(LabelingJobName=name)
    assert first["LabelingJobStatus"] in {"Initializing", "InProgress", "Completed"}
    desc = wait_terminal(sm, name)
    assert desc["LabelingJobStatus"] == "Completed", desc.get("FailureReason")
    assert desc["LabelAttributeName"] == req["LabelAttributeName"]
    assert desc["HumanTaskConfig"]["PreHumanTaskLambdaArn"] == req["HumanTaskConfig"]["PreHumanTaskLambdaArn"]
    counters = desc["LabelCounters"]
    assert counters["TotalLabeled"] == counters["HumanLabeled"] >= 1
    assert counters["Unlabeled"] == 0 and counters["FailedNonRetryableError"] == 0
    # S3OutputPath ends with "/": GT does not double the slash.
    assert desc["LabelingJobOutput"]["OutputDatasetS3Uri"] == (
        f"s3://{SETTINGS.processing_bucket}/gt-output/{name}/manifests/output/output.manifest")

    listed = sm.list_labeling_jobs(NameContains=name)["LabelingJobSummaryList"]
    assert [j["LabelingJobName"] for j in listed] == [name]
    assert listed[0]["LabelingJobStatus"] == "Completed"
    assert listed[0]["WorkteamArn"] == SETTINGS.first_level_workteam_arn


def test_output_path_without_trailing_slash(sm, demo):
    name = unique("noslash")
    req = job_request(name, "VideoObjectTracking", demo["manifest_uri"],
                      demo["label_configs"]["vehicle_label_category"])
    req["OutputConfig"]["S3OutputPath"] = f"s3://{SETTINGS.processing_bucket}/flat"
    sm.create_labeling_job(**req)
    desc = wait_terminal(sm, name)
    assert desc["LabelingJobOutput"]["OutputDatasetS3Uri"] == (
        f"s3://{SETTINGS.processing_bucket}/flat/{name}/manifests/output/output.manifest")


def test_describe_is_case_insensitive_and_name_reuse_rejected_forever(sm, demo):
    name = unique("Reuse")
    req = job_request(name, "VideoObjectTracking", demo["manifest_uri"],
                      demo["label_configs"]["vehicle_label_category"])
    sm.create_labeling_job(**req)
    assert wait_terminal(sm, name)["LabelingJobStatus"] == "Completed"
    described = sm.describe_labeling_job(LabelingJobName=name.upper())
    assert described["LabelingJobName"] == name
    # The emulator says who labeled the job in a tag (the request had no tags).
    assert described["Tags"] == [{"Key": "smgt-local:workforce", "Value": "simulated"}]
    for again in (name, name.lower(), name.upper()):
        with pytest.raises(ClientError) as err:
            sm.create_labeling_job(**{**req, "LabelingJobName": again})
        assert err.value.response["Error"]["Code"] == "ResourceInUse"
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_stop_job(emu, sm, demo):
    emu.set_faults(delay_jobs=[{"pattern": "stopme-*", "seconds": 60}])
    try:
        name = unique("stopme")
        sm.create_labeling_job(**job_request(name, "VideoObjectTracking", demo["manifest_uri"],
                                             demo["label_configs"]["lane_label_category"]))
        assert sm.describe_labeling_job(LabelingJobName=name)["LabelingJobStatus"] in {"Initializing", "InProgress"}
        sm.stop_labeling_job(LabelingJobName=name)
        assert sm.describe_labeling_job(LabelingJobName=name)["LabelingJobStatus"] in {"Stopping", "Stopped"}
        desc = wait_terminal(sm, name, timeout=10)
        assert desc["LabelingJobStatus"] == "Stopped"
        assert "LabelingJobOutput" not in desc
        with pytest.raises(ClientError) as err:
            sm.stop_labeling_job(LabelingJobName=name)
        assert err.value.response["Error"]["Code"] == "ValidationException"
    finally:
        emu.set_faults({})


def test_unknown_job_is_resource_not_found(sm):
    for call in (sm.describe_labeling_job, sm.stop_labeling_job):
        with pytest.raises(ClientError) as err:
            call(LabelingJobName="no-such-job-anywhere")
        assert err.value.response["Error"]["Code"] == "ResourceNotFound"


def test_list_filters_sorting_and_pagination(sm, demo):
    tag = unique("page")
    names = [f"{tag}-{i}" for i in range(3)]
    for name in names:
        sm.create_labeling_job(**job_request(name, "VideoObjectDetection", demo["manifest_uri"],
                                             demo["label_configs"]["vehicle_label_category"]))
    for name in names:
        wait_terminal(sm, name)
    seen, token = [], None
    while True:
        kwargs = {"NameContains": tag, "MaxResults": 2, "SortBy": "Name", "SortOrder": "Descending"}
        page = sm.list_labeling_jobs(**kwargs, **({"NextToken": token} if token else {}))
        seen += [j["LabelingJobName"] for j in page["LabelingJobSummaryList"]]
        token = page.get("NextToken")
        if not token:
            break
    assert seen == sorted(names, reverse=True)
    assert sm.list_labeling_jobs(NameContains=tag, StatusEquals="Failed")["LabelingJobSummaryList"] == []
    paginated = [j["LabelingJobName"] for p in sm.get_paginator("list_labeling_jobs").paginate(NameContains=tag)
                 for j in p["LabelingJobSummaryList"]]
    assert sorted(paginated) == sorted(names)


def test_list_labeling_jobs_for_workteam(sm, demo):
    name = unique("teamlist")
    sm.create_labeling_job(**job_request(name, "VideoObjectTracking", demo["manifest_uri"],
                                         demo["label_configs"]["vehicle_label_category"]))
    wait_terminal(sm, name)
    jobs = sm.list_labeling_jobs_for_workteam(WorkteamArn=SETTINGS.first_level_workteam_arn,
                                              MaxResults=100)["LabelingJobSummaryList"]
    mine = [j for j in jobs if j["LabelingJobName"] == name]
    assert len(mine) == 1 and mine[0]["WorkRequesterAccountId"] == "123456789012"
    assert mine[0]["LabelCounters"] == {"HumanLabeled": 1, "PendingHuman": 0, "Total": 1}
    second = sm.list_labeling_jobs_for_workteam(WorkteamArn=SETTINGS.second_level_workteam_arn,
                                                MaxResults=100)["LabelingJobSummaryList"]
    assert name not in {j["LabelingJobName"] for j in second}


def test_bootstrapped_workteams_match_settings(emu, sm):
    teams = {t["WorkteamName"]: t for t in sm.list_workteams()["Workteams"]}
    assert teams["smgt-workflows-first-level"]["WorkteamArn"] == SETTINGS.first_level_workteam_arn
    assert teams["smgt-workflows-second-level"]["WorkteamArn"] == SETTINGS.second_level_workteam_arn
    team = sm.describe_workteam(WorkteamName="smgt-workflows-second-level")["Workteam"]
    assert team["SubDomain"].endswith(".labeling.us-east-1.sagemaker.aws")
    member = team["MemberDefinitions"][0]["CognitoMemberDefinition"]
    idp = emu.client("cognito-idp")
    users = idp.list_users_in_group(UserPoolId=member["UserPool"], GroupName=member["UserGroup"])["Users"]
    assert len(users) >= 2
    assert idp.describe_user_pool_client(UserPoolId=member["UserPool"], ClientId=member["ClientId"])
    with pytest.raises(ClientError) as err:
        sm.describe_workteam(WorkteamName="no-such-team")
    assert err.value.response["Error"]["Code"] == "ValidationException"


def test_create_workteam_checks_cognito_and_uniqueness(emu, sm):
    team = sm.describe_workteam(WorkteamName="smgt-workflows-first-level")["Workteam"]
    member = team["MemberDefinitions"][0]
    name = unique("extra-team")
    arn = sm.create_workteam(WorkteamName=name, Description="extra", MemberDefinitions=[member])["WorkteamArn"]
    assert arn.endswith(f":workteam/private-crowd/{name}")
    with pytest.raises(ClientError) as err:
        sm.create_workteam(WorkteamName=name, Description="extra", MemberDefinitions=[member])
    assert err.value.response["Error"]["Code"] == "ResourceInUse"
    bad = {"CognitoMemberDefinition": {**member["CognitoMemberDefinition"], "UserGroup": "no-such-group"}}
    with pytest.raises(ClientError) as err:
        sm.create_workteam(WorkteamName=unique("bad-team"), Description="x", MemberDefinitions=[bad])
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert "no-such-group" in err.value.response["Error"]["Message"]


def test_sns_topic_delivers_to_status_queue(emu):
    sns = emu.client("sns")
    sent = json.dumps({"batchId": unique("sns-b"), "status": "SUCCESS"})
    sns.publish(TopicArn=SETTINGS.default_sns_topic_arn, Message=sent)
    # Raw delivery: the queue holds the published text itself, as the notebook reads it.
    assert batch_messages(emu, json.loads(sent)["batchId"], wait=10, bodies=True) == [sent]


def test_env_points_airflow_connection_at_endpoint(emu, s3_store, monkeypatch):
    import json

    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    env = emu.env()
    conn = json.loads(env["AIRFLOW_CONN_AWS_DEFAULT"])
    assert conn["conn_type"] == "aws"
    assert conn["extra"] == {"endpoint_url": emu.endpoint_url, "region_name": "us-east-1",
                             "config_kwargs": {"retries": {"mode": "standard", "max_attempts": 10}},
                             "service_config": {"s3": {"endpoint_url": s3_store.endpoint_url}}}
    assert env["AWS_DEFAULT_REGION"] == "us-east-1" and env["AWS_ACCESS_KEY_ID"] == s3_store.access_key
    assert env["AWS_ENDPOINT_URL_S3"] == s3_store.endpoint_url and env["AWS_ENDPOINT_URL"] == emu.endpoint_url
    # The amazon provider sends S3 to the store and everything else to the emulator.
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    s3 = AwsBaseHook(aws_conn_id="aws_default", client_type="s3").get_conn()
    sagemaker = AwsBaseHook(aws_conn_id="aws_default", client_type="sagemaker").get_conn()
    assert s3.meta.endpoint_url == s3_store.endpoint_url
    assert sagemaker.meta.endpoint_url == emu.endpoint_url
    assert sagemaker.meta.config.retries == {"mode": "standard", "total_max_attempts": 11}  # botocore: 1 + 10 retries
    assert SETTINGS.input_bucket in {b["Name"] for b in s3.list_buckets()["Buckets"]}


def test_aiobotocore_client_works(emu, sm, demo):
    from aiobotocore.session import get_session

    name = unique("async")
    sm.create_labeling_job(**job_request(name, "VideoObjectTracking", demo["manifest_uri"],
                                         demo["label_configs"]["vehicle_label_category"]))

    async def describe() -> str:
        session = get_session()
        async with session.create_client("sagemaker", region_name="us-east-1", endpoint_url=emu.endpoint_url,
                                         aws_access_key_id="testing", aws_secret_access_key="testing") as client:
            for _ in range(200):
                desc = await client.describe_labeling_job(LabelingJobName=name)
                if desc["LabelingJobStatus"] == "Completed":
                    return desc["LabelingJobOutput"]["OutputDatasetS3Uri"]
                await asyncio.sleep(0.05)
        return "timeout"

    assert asyncio.run(describe()).endswith(f"/{name}/manifests/output/output.manifest")


def test_moto_services_pass_through(emu):
    s3 = emu.client("s3")
    buckets = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert {SETTINGS.input_bucket, SETTINGS.processing_bucket} <= buckets  # on the S3 store
    # A SageMaker action we do not serve still reaches moto (not our 'unknown operation').
    assert "NotebookInstances" in emu.client("sagemaker").list_notebook_instances()
