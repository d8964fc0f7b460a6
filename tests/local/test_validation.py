"""Every CreateLabelingJob rule fails with the error code Ground Truth returns, and creates nothing."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
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
    ("task-time-limit-too-long", _set("HumanTaskConfig.TaskTimeLimitInSeconds", 700_000)),
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
