"""Every CreateLabelingJob rule fails with the error code Ground Truth returns, and creates nothing."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from smgt.registry import get_modality

from .local_gt_helpers import SETTINGS, job_request, unique, wait_terminal

Request = dict[str, Any]


def _set(path: str, value: Any) -> Callable[[Request, dict], None]:
    def apply(req: Request, _ctx: dict) -> None:
        *parents, last = path.split(".")
        cur = req
        for key in parents:
            cur = cur[key]
        if value is _DELETE:
            del cur[last]
        else:
            cur[last] = value
    return apply


_DELETE = object()
det = get_modality("VideoObjectDetection")
box = get_modality("BoundingBox")

# (case id, change to a valid VideoObjectTracking request)
CASES: list[tuple[str, Callable[[Request, dict], None]]] = [
    ("underscore-in-name", lambda r, c: r.update(LabelingJobName=r["LabelingJobName"].replace("-", "_"))),
    ("name-too-long", lambda r, c: r.update(LabelingJobName="a" * 64)),
    ("name-leading-hyphen", lambda r, c: r.update(LabelingJobName="-" + r["LabelingJobName"])),
    ("attribute-without-ref", _set("LabelAttributeName", "vehicle")),
    ("attribute-ending-metadata", _set("LabelAttributeName", "vehicle-metadata")),
    ("attribute-underscore", _set("LabelAttributeName", "vehicle_x-ref")),
    ("ui-of-other-task", _set("HumanTaskConfig.UiConfig.HumanTaskUiArn", det.human_task_ui_arn("us-east-1"))),
    ("ui-of-other-region", _set("HumanTaskConfig.UiConfig.HumanTaskUiArn",
                                "arn:aws:sagemaker:us-west-2:394669845002:human-task-ui/VideoObjectTracking")),
    ("template-instead-of-ui", _set("HumanTaskConfig.UiConfig", {"UiTemplateS3Uri": "s3://b/t.html"})),
    ("pre-lambda-other-region", _set("HumanTaskConfig.PreHumanTaskLambdaArn",
                                     "arn:aws:lambda:us-west-2:081040173940:function:PRE-VideoObjectTracking")),
    ("pre-lambda-wrong-account", _set("HumanTaskConfig.PreHumanTaskLambdaArn",
                                      "arn:aws:lambda:us-east-1:123456789012:function:PRE-VideoObjectTracking")),
    ("lambdas-of-different-tasks", _set("HumanTaskConfig.AnnotationConsolidationConfig.AnnotationConsolidationLambdaArn",
                                        det.consolidation_lambda_arn("us-east-1"))),
    ("task-type-not-emulated", lambda r, c: (
        _set("HumanTaskConfig.PreHumanTaskLambdaArn",
             "arn:aws:lambda:us-east-1:432418664414:function:PRE-ImageMultiClass")(r, c),
        _set("HumanTaskConfig.AnnotationConsolidationConfig.AnnotationConsolidationLambdaArn",
             "arn:aws:lambda:us-east-1:432418664414:function:ACS-ImageMultiClass")(r, c))),
    ("missing-pre-lambda", _set("HumanTaskConfig.PreHumanTaskLambdaArn", _DELETE)),
    ("video-with-3-workers", _set("HumanTaskConfig.NumberOfHumanWorkersPerDataObject", 3)),
    # Field constraints of the API reference (API_CreateLabelingJob.html and the pages of its types)
    ("task-time-limit-over-30-days", _set("HumanTaskConfig.TaskTimeLimitInSeconds", 2_592_001)),
    ("availability-over-30-days", _set("HumanTaskConfig.TaskAvailabilityLifetimeInSeconds", 2_592_001)),
    ("workers-over-9", _set("HumanTaskConfig.NumberOfHumanWorkersPerDataObject", 10)),
    ("max-concurrent-over-5000", _set("HumanTaskConfig.MaxConcurrentTaskCount", 5001)),
    ("task-title-too-long", _set("HumanTaskConfig.TaskTitle", "t" * 129)),
    ("task-title-control-character", _set("HumanTaskConfig.TaskTitle", "a\x00b")),
    ("task-description-too-long", _set("HumanTaskConfig.TaskDescription", "d" * 256)),
    ("too-many-task-keywords", _set("HumanTaskConfig.TaskKeywords", ["a", "b", "c", "d", "e", "f"])),
    ("task-keyword-too-long", _set("HumanTaskConfig.TaskKeywords", ["k" * 31])),
    ("task-keyword-double-space", _set("HumanTaskConfig.TaskKeywords", ["two  spaces"])),
    ("price-dollars-over-2", _set("HumanTaskConfig.PublicWorkforceTaskPrice", {"AmountInUsd": {"Dollars": 3}})),
    ("price-cents-over-99", _set("HumanTaskConfig.PublicWorkforceTaskPrice", {"AmountInUsd": {"Cents": 100}})),
    ("price-tenths-over-9", _set("HumanTaskConfig.PublicWorkforceTaskPrice",
                                 {"AmountInUsd": {"TenthFractionsOfACent": 10}})),
    ("stopping-percentage-over-100", _set("StoppingConditions", {"MaxPercentageOfInputDatasetLabeled": 101})),
    ("too-many-tags", _set("Tags", [{"Key": f"k{i}", "Value": "v"} for i in range(51)])),
    ("tag-key-too-long", _set("Tags", [{"Key": "k" * 129, "Value": "v"}])),
    ("tag-value-too-long", _set("Tags", [{"Key": "k", "Value": "v" * 257}])),
    ("tag-value-bad-character", _set("Tags", [{"Key": "k", "Value": "a#b"}])),
    ("duplicate-tag-keys", _set("Tags", [{"Key": "team", "Value": "a"}, {"Key": "team", "Value": "b"}])),
    ("output-kms-key-bad-character", _set("OutputConfig.KmsKeyId", "alias/my key")),
    ("output-kms-key-too-long", _set("OutputConfig.KmsKeyId", "k" * 2049)),
    ("volume-kms-key-bad-character", _set("LabelingJobAlgorithmsConfig", {
        "LabelingJobAlgorithmSpecificationArn": "arn:aws:sagemaker:us-east-1:027400017018:"
                                                "labeling-job-algorithm-specification/object-detection",
        "LabelingJobResourceConfig": {"VolumeKmsKeyId": "key!"}})),
    ("output-sns-topic-not-an-arn", _set("OutputConfig.SnsTopicArn", "arn:aws:sns:us-east-1:123:topic")),
    ("content-classifier-unknown", _set("InputConfig.DataAttributes.ContentClassifiers", ["FreeOfCats"])),
    ("manifest-uri-too-long", lambda r, c: _set("InputConfig.DataSource.S3DataSource.ManifestS3Uri",
                                                c["base"] + "/" + "m" * 1024)(r, c)),
    ("streaming-data-source-not-emulated", _set("InputConfig.DataSource", {"SnsDataSource": {
        "SnsTopicArn": "arn:aws:sns:us-east-1:123456789012:new-objects"}})),
    ("workteam-arn-not-a-workteam", _set("HumanTaskConfig.WorkteamArn", "arn:aws:sagemaker:us-east-1:123456789012:team/x")),
    ("label-attribute-too-long", _set("LabelAttributeName", "a" * 124 + "-ref")),
    ("unknown-workteam", _set("HumanTaskConfig.WorkteamArn",
                              "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/nobody")),
    ("bad-role", _set("RoleArn", "arn:aws:iam::1234:role/not-twelve-digits")),
    ("missing-manifest", lambda r, c: _set("InputConfig.DataSource.S3DataSource.ManifestS3Uri",
                                           c["base"] + "/nothing-here.manifest")(r, c)),
    ("manifest-not-json", lambda r, c: _set("InputConfig.DataSource.S3DataSource.ManifestS3Uri",
                                            c["bad_manifest"])(r, c)),
    ("manifest-line-without-source", lambda r, c: _set("InputConfig.DataSource.S3DataSource.ManifestS3Uri",
                                                       c["sourceless_manifest"])(r, c)),
    ("manifest-not-s3", _set("InputConfig.DataSource.S3DataSource.ManifestS3Uri", "/tmp/x.manifest")),
    ("missing-category-config", lambda r, c: _set("LabelCategoryConfigS3Uri", c["base"] + "/nothing.json")(r, c)),
    ("category-config-not-json", lambda r, c: _set("LabelCategoryConfigS3Uri", c["bad_config"])(r, c)),
    ("category-config-without-labels", lambda r, c: _set("LabelCategoryConfigS3Uri", c["no_labels"])(r, c)),
    ("no-category-config", _set("LabelCategoryConfigS3Uri", _DELETE)),
    ("output-bucket-missing", _set("OutputConfig.S3OutputPath", "s3://no-such-bucket-anywhere/out")),
]


@pytest.fixture(scope="module")
def ctx(emu, demo) -> dict[str, str]:
    base = f"s3://{SETTINGS.input_bucket}/validation"
    emu.s3.put_bytes(f"{base}/bad.manifest", b'{"source-ref": "s3://x/y"}\nnot json\n')
    emu.s3.put_lines(f"{base}/sourceless.manifest", [{"image": "s3://x/y.jpg"}])
    emu.s3.put_bytes(f"{base}/bad.json", b"{labels: [")
    emu.s3.put_json(f"{base}/nolabels.json", {"document-version": "2020-08-15", "labels": []})
    return {"base": base, "bad_manifest": f"{base}/bad.manifest", "sourceless_manifest": f"{base}/sourceless.manifest",
            "bad_config": f"{base}/bad.json", "no_labels": f"{base}/nolabels.json"}


def _valid(demo, name: str) -> Request:
    return job_request(name, "VideoObjectTracking", demo["manifest_uri"],
                       demo["label_configs"]["vehicle_label_category"], label_attribute="vehicle-ref")


def _code(call: Callable[[], Any]) -> str:
    with pytest.raises(ClientError) as err:
        call()
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return err.value.response["Error"]["Code"]


@pytest.mark.parametrize(("case", "change"), CASES, ids=[c[0] for c in CASES])
def test_invalid_request_is_validation_exception_and_creates_nothing(sm, demo, ctx, case, change):
    name = unique("val")
    request = _valid(demo, name)
    bad = copy.deepcopy(request)
    change(bad, ctx)
    assert _code(lambda: sm.create_labeling_job(**bad)) == "ValidationException"
    # Nothing was created: the name is still free and the valid request succeeds.
    assert _code(lambda: sm.describe_labeling_job(LabelingJobName=name)) == "ResourceNotFound"
    sm.create_labeling_job(**request)
    assert wait_terminal(sm, name)["LabelingJobStatus"] == "Completed"


def test_ref_suffix_forbidden_for_bounding_box(sm, demo, inputs):
    req = job_request(unique("bbox"), "BoundingBox", inputs["images"], inputs["car"], template=inputs["template"],
                      label_attribute="cars-ref")
    assert _code(lambda: sm.create_labeling_job(**req)) == "ValidationException"
    req["LabelAttributeName"] = "cars"
    sm.create_labeling_job(**req)


def test_bounding_box_needs_existing_template(sm, inputs):
    req = job_request(unique("bbox"), "BoundingBox", inputs["images"], inputs["car"],
                      template=inputs["template"].replace("template", "missing"))
    assert _code(lambda: sm.create_labeling_job(**req)) == "ValidationException"


def test_unsupported_region_is_validation_error(emu, demo):
    sm_eu = emu.client("sagemaker", region_name="eu-north-1")
    req = _valid(demo, unique("region"))
    assert _code(lambda: sm_eu.create_labeling_job(**req)) == "ValidationException"


def test_audit_needs_audit_attribute_in_config_and_on_manifest_lines(emu, sm, demo):
    parent = unique("parent")
    sm.create_labeling_job(**_valid(demo, parent))
    out = wait_terminal(sm, parent)["LabelingJobOutput"]["OutputDatasetS3Uri"]
    audit_source = demo["label_configs"]["vehicle_label_category_audit"]
    base = audit_source.rsplit("/", 1)[0]
    no_attr = f"{base}/audit-no-attr.json"
    emu.s3.put_json(no_attr, emu.s3.get_json(audit_source))
    wrong_attr = f"{base}/audit-wrong-attr.json"
    emu.s3.put_json(wrong_attr, {**emu.s3.get_json(audit_source), "auditLabelAttributeName": "lane-ref"})
    right = f"{base}/audit-right-attr.json"
    emu.s3.put_json(right, {**emu.s3.get_json(audit_source), "auditLabelAttributeName": "vehicle-ref"})

    def audit(config: str, name: str) -> Request:
        return job_request(name, "VideoObjectTrackingAudit", out, config, label_attribute="vehicle-audit-ref")

    assert _code(lambda: sm.create_labeling_job(**audit(no_attr, unique("audit")))) == "ValidationException"
    err_name = unique("audit")
    with pytest.raises(ClientError) as err:
        sm.create_labeling_job(**audit(wrong_attr, err_name))
    assert "lane-ref" in err.value.response["Error"]["Message"]
    ok = unique("audit")
    sm.create_labeling_job(**audit(right, ok))
    assert wait_terminal(sm, ok)["LabelingJobStatus"] == "Completed"


def test_missing_sequence_file_fails_the_job_not_the_call(emu, sm, demo):
    """GT reads sequence files while the job runs: a missing one fails the job with a ClientError."""
    manifest = f"s3://{SETTINGS.input_bucket}/validation/missing-seq.manifest"
    emu.s3.put_lines(manifest, [{"source-ref": f"s3://{SETTINGS.input_bucket}/validation/no-such-seq.json"}])
    name = unique("noseq")
    sm.create_labeling_job(**job_request(name, "VideoObjectTracking", manifest,
                                         demo["label_configs"]["vehicle_label_category"]))
    desc = wait_terminal(sm, name)
    assert desc["LabelingJobStatus"] == "Failed"
    assert desc["FailureReason"].startswith("ClientError")
    assert desc["LabelCounters"]["FailedNonRetryableError"] == 1
    assert "LabelingJobOutput" not in desc


# ---------------------------------------------------------------------------------------------------------
# The shape of GT's messages, constraints a boto3 client checks before sending (min, required) checked
# again by the service, and limits that depend on the task type or the workforce.


@pytest.fixture(scope="module")
def raw_sm(emu):
    """A client that sends what it is given: botocore's own check of required members and minimums is off."""
    return emu.client("sagemaker", config=Config(parameter_validation=False, retries={"mode": "standard"}))


def _error(call: Callable[[], Any]) -> tuple[str, str]:
    with pytest.raises(ClientError) as err:
        call()
    return err.value.response["Error"]["Code"], err.value.response["Error"]["Message"]


def test_every_violated_constraint_in_one_message(sm, demo):
    request = _valid(demo, unique("val"))
    request["LabelingJobName"] = "bad_name"
    request["HumanTaskConfig"]["TaskTitle"] = "t" * 129
    request["Tags"] = [{"Key": "ok", "Value": "v"}, {"Key": "k" * 129, "Value": "v"}]
    code, message = _error(lambda: sm.create_labeling_job(**request))
    assert (code, message) == ("ValidationException", (
        "3 validation errors detected: "
        "Value 'bad_name' at 'labelingJobName' failed to satisfy constraint: Member must satisfy regular expression "
        "pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}; "
        f"Value '{'t' * 129}' at 'humanTaskConfig.taskTitle' failed to satisfy constraint: Member must have length "
        "less than or equal to 128; "
        f"Value '{'k' * 129}' at 'tags.2.member.key' failed to satisfy constraint: Member must have length less "
        "than or equal to 128"))


def test_list_member_constraints_are_reported_on_the_list(sm, demo):
    request = _valid(demo, unique("val"))
    request["HumanTaskConfig"]["TaskKeywords"] = ["fine", "k" * 31]
    code, message = _error(lambda: sm.create_labeling_job(**request))
    assert (code, message) == ("ValidationException", (
        f"1 validation error detected: Value '[fine, {'k' * 31}]' at 'humanTaskConfig.taskKeywords' failed to "
        "satisfy constraint: Member must satisfy constraint: [Member must have length less than or equal to 30]"))


@pytest.mark.parametrize(("change", "expected"), [
    (_set("RoleArn", _DELETE), "Value null at 'roleArn' failed to satisfy constraint: Member must not be null"),
    (_set("HumanTaskConfig.TaskTitle", _DELETE),
     "Value null at 'humanTaskConfig.taskTitle' failed to satisfy constraint: Member must not be null"),
    (_set("HumanTaskConfig.TaskTimeLimitInSeconds", 29), "Value '29' at 'humanTaskConfig.taskTimeLimitInSeconds' "
     "failed to satisfy constraint: Member must have value greater than or equal to 30"),
    (_set("HumanTaskConfig.TaskAvailabilityLifetimeInSeconds", 59), "Value '59' at "
     "'humanTaskConfig.taskAvailabilityLifetimeInSeconds' failed to satisfy constraint: Member must have value "
     "greater than or equal to 60"),
    (_set("HumanTaskConfig.TaskKeywords", []), "Value '[]' at 'humanTaskConfig.taskKeywords' failed to satisfy "
     "constraint: Member must have length greater than or equal to 1"),
    (_set("HumanTaskConfig.MaxConcurrentTaskCount", 0), "Value '0' at 'humanTaskConfig.maxConcurrentTaskCount' "
     "failed to satisfy constraint: Member must have value greater than or equal to 1"),
    (_set("StoppingConditions", {"MaxHumanLabeledObjectCount": 0}), "Value '0' at "
     "'stoppingConditions.maxHumanLabeledObjectCount' failed to satisfy constraint: Member must have value greater "
     "than or equal to 1"),
    (_set("Tags", [{"Key": "", "Value": "v"}]), "Value '' at 'tags.1.member.key' failed to satisfy constraint: "
     "Member must have length greater than or equal to 1"),
    (_set("Tags", [{"Key": "k"}]), "Value null at 'tags.1.member.value' failed to satisfy constraint: Member must "
     "not be null"),
    (_set("HumanTaskConfig.TaskTitle", ""), "Value '' at 'humanTaskConfig.taskTitle' failed to satisfy "
     "constraint: Member must have length greater than or equal to 1"),
])
def test_constraints_a_client_checks_are_checked_again_by_the_service(raw_sm, demo, change, expected):
    name = unique("val")
    request = _valid(demo, name)
    change(request, {})
    code, message = _error(lambda: raw_sm.create_labeling_job(**request))
    assert code == "ValidationException"
    assert message.endswith(expected) and message.startswith("1 validation error detected: ")
    assert _code(lambda: raw_sm.describe_labeling_job(LabelingJobName=name)) == "ResourceNotFound"


def test_a_member_of_the_wrong_type_is_a_serialization_error(raw_sm, demo):
    request = _valid(demo, unique("val"))
    request["HumanTaskConfig"]["TaskTimeLimitInSeconds"] = "3600"
    code, message = _error(lambda: raw_sm.create_labeling_job(**request))
    assert code == "SerializationException" and "humanTaskConfig.taskTimeLimitInSeconds" in message


def test_task_time_limit_maximum_depends_on_the_task_type(sm, demo, inputs):
    """API_HumanTaskConfig.html: 8 hours for image tasks, 30 days for video frame and 3D point cloud tasks."""
    video = _valid(demo, unique("ttl"))
    video["HumanTaskConfig"]["TaskTimeLimitInSeconds"] = 2_592_000
    sm.create_labeling_job(**video)
    assert wait_terminal(sm, video["LabelingJobName"])["LabelingJobStatus"] == "Completed"
    image = job_request(unique("ttl"), "BoundingBox", inputs["images"], inputs["car"], template=inputs["template"])
    image["HumanTaskConfig"]["TaskTimeLimitInSeconds"] = 28_801
    assert _error(lambda: sm.create_labeling_job(**image)) == ("ValidationException", (
        "1 validation error detected: Value '28801' at 'humanTaskConfig.taskTimeLimitInSeconds' failed to satisfy "
        "constraint: Member must have value less than or equal to 28800"))
    image["HumanTaskConfig"]["TaskTimeLimitInSeconds"] = 28_800
    sm.create_labeling_job(**image)
    assert wait_terminal(sm, image["LabelingJobName"])["LabelingJobStatus"] == "Completed"


def test_availability_maximum_depends_on_the_workforce(sm, demo):
    """API_HumanTaskConfig.html: 12 hours for Amazon Mechanical Turk (the public work team), 30 days otherwise."""
    private = _valid(demo, unique("avail"))
    private["HumanTaskConfig"]["TaskAvailabilityLifetimeInSeconds"] = 2_592_000
    sm.create_labeling_job(**private)
    assert wait_terminal(sm, private["LabelingJobName"])["LabelingJobStatus"] == "Completed"
    public = _valid(demo, unique("avail"))
    public["HumanTaskConfig"]["WorkteamArn"] = "arn:aws:sagemaker:us-east-1:394669845002:workteam/public-crowd/default"
    public["HumanTaskConfig"]["TaskAvailabilityLifetimeInSeconds"] = 43_201
    assert _error(lambda: sm.create_labeling_job(**public)) == ("ValidationException", (
        "1 validation error detected: Value '43201' at 'humanTaskConfig.taskAvailabilityLifetimeInSeconds' failed "
        "to satisfy constraint: Member must have value less than or equal to 43200"))


def test_adjustment_needs_its_own_label_attribute(emu, sm, demo):
    """API_CreateLabelingJob.html, LabelAttributeName: an adjustment job must use a different LabelAttributeName
    than the labeling job whose labels it adjusts."""
    parent = unique("parent")
    sm.create_labeling_job(**_valid(demo, parent))
    out = wait_terminal(sm, parent)["LabelingJobOutput"]["OutputDatasetS3Uri"]
    source = demo["label_configs"]["vehicle_label_category_audit"]
    config = source.replace(".json", "-same-attr.json")
    emu.s3.put_json(config, {**emu.s3.get_json(source), "auditLabelAttributeName": "vehicle-ref"})
    same = job_request(unique("audit"), "VideoObjectTrackingAudit", out, config, label_attribute="vehicle-ref")
    code, message = _error(lambda: sm.create_labeling_job(**same))
    assert code == "ValidationException" and "must use a different LabelAttributeName" in message
    other = {**same, "LabelAttributeName": "vehicle-audit-ref"}
    sm.create_labeling_job(**other)
    assert wait_terminal(sm, other["LabelingJobName"])["LabelingJobStatus"] == "Completed"


def test_create_workteam_follows_the_api_definition(sm, raw_sm):
    team = sm.describe_workteam(WorkteamName=SETTINGS.first_level_workteam_arn.rsplit("/", 1)[1])["Workteam"]
    members = team["MemberDefinitions"]
    cases = [
        ({"WorkteamName": "bad_team", "Description": "d", "MemberDefinitions": members},
         "Value 'bad_team' at 'workteamName' failed to satisfy constraint: Member must satisfy regular expression "
         "pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"),
        ({"WorkteamName": unique("team"), "Description": "d" * 201, "MemberDefinitions": members},
         f"Value '{'d' * 201}' at 'description' failed to satisfy constraint: Member must have length less than or "
         "equal to 200"),
        ({"WorkteamName": unique("team"), "Description": "d", "MemberDefinitions": members * 11},
         "at 'memberDefinitions' failed to satisfy constraint: Member must have length less than or equal to 10"),
        ({"WorkteamName": unique("team"), "Description": "d", "MemberDefinitions": []},
         "Value '[]' at 'memberDefinitions' failed to satisfy constraint: Member must have length greater than or "
         "equal to 1"),
        ({"WorkteamName": unique("team"), "Description": "d", "MemberDefinitions": members,
          "NotificationConfiguration": {"NotificationTopicArn": "topic"}},
         "Value 'topic' at 'notificationConfiguration.notificationTopicArn' failed to satisfy constraint: Member must "
         "satisfy regular expression pattern: ^arn:aws[a-z\\-]*:sns:[a-z0-9\\-]*:[0-9]{12}:[a-zA-Z0-9_.-]*$"),
    ]
    for request, expected in cases:
        code, message = _error(lambda request=request: raw_sm.create_workteam(**request))
        assert code == "ValidationException" and message.startswith("1 validation error detected: ")
        assert message.endswith(expected), message
        if request["WorkteamName"] != "bad_team":  # nothing was created
            assert not sm.list_workteams(NameContains=request["WorkteamName"])["Workteams"]
