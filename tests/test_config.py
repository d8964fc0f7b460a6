"""The batch config model: SPEC section 2, every rule, all problems reported at once."""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest
from sample_batches import INPUT, notebook_batch

from smgt.config import BatchConfigError, batch_config_json_schema, validate_batch_config

MANIFEST = f"{INPUT}/m.manifest"
CATEGORY = f"{INPUT}/cat.json"


def job(name: str, modality: str = "VideoObjectTracking", level: int = 1, **fields) -> dict:
    data = {"jobName": name, "jobType": "BATCH", "jobModality": modality, "jobLevel": level}
    if "inputConfig" not in fields:
        data["inputConfig"] = {"inputManifestS3Uri": MANIFEST}
    if "labelCategoryConfigS3Uri" not in fields:
        data["labelCategoryConfigS3Uri"] = CATEGORY
    data.update(fields)
    return {k: v for k, v in data.items() if v is not _DROP}


_DROP = object()


def batch(*jobs: dict, **fields) -> dict:
    data = {"batchId": "b-1", "labelingJobs": list(jobs)}
    data.update(fields)
    return {k: v for k, v in data.items() if v is not _DROP}


def test_notebook_batch_validates_with_defaults(nb_batch):
    config = validate_batch_config(nb_batch, region="us-east-1")
    assert [j.jobLevel for j in config.labelingJobs] == [1, 1, 2, 2]
    vehicle = config.job("nb-track-1a2b3c4d-vehicle")
    assert vehicle.maxConcurrentTaskCount == 100
    assert vehicle.taskAvailabilityLifetimeInSeconds == 864000
    assert vehicle.taskTimeLimitInSeconds == 604800
    audit = config.job("NB-TRACK-1A2B3C4D-VEHICLE-AUDIT")  # GT names are case-insensitive
    assert config.parent(audit) is vehicle
    assert audit.modality.is_audit and audit.modality.task_type == "AdjustmentVideoObjectTracking"
    assert config.levels == [1, 2]
    conf = config.to_conf()
    assert json.loads(json.dumps(conf)) == conf
    assert validate_batch_config(conf).to_conf() == conf  # normalized conf round-trips


def test_three_level_batch_fills_defaults():
    data = batch(
        job("cars", "VideoObjectDetection", labelAttributeName=_DROP),
        job("cars-audit", "VideoObjectDetectionAudit", 2, labelAttributeName=_DROP,
            labelCategoryConfigS3Uri=_DROP, inputConfig={"chainFromJobName": "cars", "downSamplingRate": 50}),
        job("cars-audit2", "VideoObjectDetectionAudit", 3, labelAttributeName=_DROP,
            labelCategoryConfigS3Uri=_DROP, inputConfig={"chainFromJobName": "cars-audit"}),
        job("boxes", "BoundingBox", 1, labelAttributeName=_DROP),
        job("pcd", "PointCloudObjectDetection", 2, labelAttributeName=_DROP),
        job("pct", "PointCloudObjectTracking", 3, labelAttributeName=_DROP),
        job("pcs", "PointCloudSemanticSegmentation", 1, labelAttributeName=_DROP),
    )
    config = validate_batch_config(data)
    attrs = {j.jobName: j.labelAttributeName for j in config.labelingJobs}
    assert attrs == {
        "cars": "cars-ref", "cars-audit": "cars-audit-ref", "cars-audit2": "cars-audit2-ref",
        "boxes": "boxes", "pcd": "pcd", "pct": "pct-ref", "pcs": "pcs-ref",
    }
    # A chained job inherits its parent's category config, transitively.
    assert config.job("cars-audit2").labelCategoryConfigS3Uri == CATEGORY
    assert config.levels == [1, 2, 3]
    assert [j.jobName for j in config.jobs_at_level(3)] == ["cars-audit2", "pct"]


def test_levels_beyond_three_by_configuration():
    data = batch(job("a"), job("b", "VideoObjectTrackingAudit", 4, labelAttributeName="b-ref",
                               inputConfig={"chainFromJobName": "a"}))
    with pytest.raises(BatchConfigError, match="from 1 to 3"):
        validate_batch_config(data)
    assert validate_batch_config(data, max_job_level=4).levels == [1, 4]


def _nb(mutate) -> dict:
    data = notebook_batch("b-1")
    mutate(data)
    return data


def _set(path: str, value):
    def mutate(data):
        target = data
        keys = path.split(".")
        for key in keys[:-1]:
            target = target[int(key)] if key.isdigit() else target[key]
        last = int(keys[-1]) if keys[-1].isdigit() else keys[-1]
        if value is _DROP:
            del target[last]
        else:
            target[last] = value
    return mutate


J = "labelingJobs"
BAD_CONFIGS = [
    # (id, config, expected message fragments)
    ("not-an-object", [], ["must be a JSON object"]),
    ("batch-id-missing", _nb(_set("batchId", _DROP)), ["batchId: required"]),
    ("batch-id-underscore", _nb(_set("batchId", "bad_id")), ["batchId: 'bad_id' must match"]),
    ("batch-id-too-long", _nb(_set("batchId", "a" * 64)), ["batchId:", "must match"]),
    ("batch-id-empty", _nb(_set("batchId", "")), ["batchId: '' must match"]),
    ("batch-id-number", _nb(_set("batchId", 12)), ["batchId: must be a string, got 12"]),
    ("batch-id-newline", _nb(_set("batchId", "abc\n")), ["batchId:"]),
    ("unknown-top-key", _nb(_set("labellingJobs", [])), ["'labellingJobs': unknown field"]),
    ("sns-not-arn", _nb(_set("destinationSnsArn", "topic")), ["destinationSnsArn: 'topic' is not an SNS"]),
    ("jobs-missing", _nb(_set(J, _DROP)), ["labelingJobs: required"]),
    ("jobs-empty", _nb(_set(J, [])), ["labelingJobs: must hold at least one job"]),
    ("jobs-not-list", _nb(_set(J, {"a": 1})), ["labelingJobs: must be a list, got dict"]),
    ("jobs-huge", _nb(_set(J, [job(f"j{i}") for i in range(5000)])), ["at most 100 jobs per batch, got 5000"]),
    ("job-not-object", _nb(_set(J + ".1", "lane")), ["labelingJobs[1]: must be a JSON object"]),
    ("job-name-missing", _nb(_set(J + ".0.jobName", _DROP)), ["labelingJobs[0]: jobName: Field required"]),
    ("job-name-underscore", _nb(_set(J + ".0.jobName", "b_1_vehicle")),
     ["labelingJobs[0] 'b_1_vehicle': jobName:", "underscores"]),
    ("job-name-empty", _nb(_set(J + ".0.jobName", "")), ["labelingJobs[0] '': jobName:"]),
    ("job-name-unicode", _nb(_set(J + ".0.jobName", "véhicule")), ["jobName: 'véhicule' must match"]),
    ("job-name-trailing-hyphen", _nb(_set(J + ".0.jobName", "vehicle-")), ["jobName: 'vehicle-' must match"]),
    ("job-name-too-long", _nb(_set(J + ".0.jobName", "a" * 64)), ["jobName: String should have at most 63"]),
    ("job-name-duplicate-case", _nb(_set(J + ".1.jobName", "B-1-VEHICLE")),
     ["labelingJobs[1] 'B-1-VEHICLE': jobName: duplicates 'b-1-vehicle'"]),
    ("job-type-streaming", _nb(_set(J + ".0.jobType", "STREAMING")),
     ["jobType: 'STREAMING' is not supported; jobType must be 'BATCH'"]),
    ("job-type-lower", _nb(_set(J + ".0.jobType", "batch")), ["jobType: 'batch' is not supported"]),
    ("modality-unknown", _nb(_set(J + ".0.jobModality", "KeyPoint")), ["jobModality: 'KeyPoint' is not supported"]),
    ("audit-without-chain", _nb(_set(J + ".2.inputConfig", {"inputManifestS3Uri": MANIFEST})),
     ["labelingJobs[2] 'b-1-vehicle-audit': inputConfig: chainFromJobName is required"]),
    ("level-zero", _nb(_set(J + ".0.jobLevel", 0)), ["jobLevel: must be an integer from 1 to 3, got 0"]),
    ("level-four", _nb(_set(J + ".2.jobLevel", 4)), ["jobLevel: must be an integer from 1 to 3, got 4"]),
    ("level-string", _nb(_set(J + ".0.jobLevel", "1")), ["jobLevel: Input should be a valid integer"]),
    ("level-float", _nb(_set(J + ".0.jobLevel", 1.5)), ["jobLevel: Input should be a valid integer"]),
    ("level-bool", _nb(_set(J + ".0.jobLevel", True)), ["jobLevel: Input should be a valid integer"]),
    ("input-both", _nb(_set(J + ".2.inputConfig", {"inputManifestS3Uri": MANIFEST, "chainFromJobName": "b-1-vehicle"})),
     ["inputConfig: needs exactly one of inputManifestS3Uri or chainFromJobName"]),
    ("input-neither", _nb(_set(J + ".0.inputConfig", {})), ["inputConfig: needs exactly one of"]),
    ("input-unknown-key", _nb(_set(J + ".0.inputConfig.inputManifestS3URI", MANIFEST)),
     ["inputConfig.inputManifestS3URI: unknown field"]),
    ("manifest-not-s3", _nb(_set(J + ".0.inputConfig.inputManifestS3Uri", "https://x/y")),
     ["inputConfig.inputManifestS3Uri: must be a well-formed s3://bucket/key URI"]),
    ("manifest-no-key", _nb(_set(J + ".0.inputConfig.inputManifestS3Uri", "s3://bucket-a/")),
     ["inputManifestS3Uri: must be a well-formed"]),
    ("manifest-bad-bucket", _nb(_set(J + ".0.inputConfig.inputManifestS3Uri", "s3://Bad_Bucket/k")),
     ["inputManifestS3Uri: must be a well-formed"]),
    ("category-bad-uri", _nb(_set(J + ".0.labelCategoryConfigS3Uri", "s3:/x")),
     ["labelCategoryConfigS3Uri: must be a well-formed"]),
    ("category-missing", _nb(_set(J + ".0.labelCategoryConfigS3Uri", _DROP)),
     ["labelingJobs[0] 'b-1-vehicle': labelCategoryConfigS3Uri: required for a job that does not chain"]),
    ("chain-unknown", _nb(_set(J + ".2.inputConfig.chainFromJobName", "nobody")),
     ["inputConfig.chainFromJobName: no job named 'nobody' in this batch"]),
    ("chain-self", _nb(_set(J + ".2.inputConfig.chainFromJobName", "b-1-vehicle-audit")),
     ["chainFromJobName: a job cannot chain from itself"]),
    ("chain-same-level", _nb(_set(J + ".2.jobLevel", 1)), ["parent 'b-1-vehicle' is at level 1; it must be at a lower level than 1"]),
    ("chain-bad-name", _nb(_set(J + ".2.inputConfig.chainFromJobName", "a_b")),
     ["inputConfig.chainFromJobName: 'a_b' is not a valid Ground Truth job name"]),
    ("chain-wrong-base", _nb(_set(J + ".2.jobModality", "VideoObjectDetectionAudit")),
     ["VideoObjectDetectionAudit can only adjust labels of a VideoObjectDetection job"]),
    ("attr-missing-ref", _nb(_set(J + ".0.labelAttributeName", "vehicle")),
     ["labelAttributeName: 'vehicle' must end with '-ref' for VideoObjectTracking"]),
    ("attr-metadata", _nb(_set(J + ".0.labelAttributeName", "vehicle-metadata")), ["must not end with '-metadata'"]),
    ("attr-same-as-parent", _nb(_set(J + ".2.labelAttributeName", "vehicle-ref")),
     ["labelAttributeName: 'vehicle-ref' must differ from the chained parent's ('b-1-vehicle')"]),
    ("attr-underscore", _nb(_set(J + ".0.labelAttributeName", "veh_ref")), ["labelAttributeName: 'veh_ref' must match"]),
    ("rate-zero", _nb(_set(J + ".2.inputConfig.downSamplingRate", 0)), ["downSamplingRate: must be a number with 0 < rate <= 100"]),
    ("rate-over", _nb(_set(J + ".2.inputConfig.downSamplingRate", 100.5)), ["0 < rate <= 100, got 100.5"]),
    ("rate-string", _nb(_set(J + ".2.inputConfig.downSamplingRate", "50")), ["downSamplingRate: must be a number, got '50'"]),
    ("rate-bool", _nb(_set(J + ".2.inputConfig.downSamplingRate", True)), ["downSamplingRate: must be a number, got True"]),
    ("rate-without-chain", _nb(_set(J + ".0.inputConfig.downSamplingRate", 50)),
     ["downSamplingRate only applies to a job with chainFromJobName"]),
    ("unknown-job-key", _nb(_set(J + ".0.labelAtributeName", "x-ref")), ["labelingJobs[0] 'b-1-vehicle': labelAtributeName: unknown field"]),
    ("workteam-bad", _nb(_set(J + ".0.workteamArn", "team")), ["workteamArn: 'team' is not a SageMaker work team ARN"]),
    ("max-tasks-zero", _nb(_set(J + ".0.maxConcurrentTaskCount", 0)), ["maxConcurrentTaskCount: Input should be greater than or equal to 1"]),
    ("lifetime-huge", _nb(_set(J + ".0.taskAvailabilityLifetimeInSeconds", 10**12)),
     ["taskAvailabilityLifetimeInSeconds: Input should be less than or equal to 864000"]),
    ("time-limit-short", _nb(_set(J + ".0.taskTimeLimitInSeconds", 5)), ["taskTimeLimitInSeconds: Input should be greater than or equal to 30"]),
    ("huge-string", _nb(_set(J + ".0.inputConfig.inputManifestS3Uri", "s3://bucket-a/" + "k" * 10**6)),
     ["inputManifestS3Uri: String should have at most 1024 characters"]),
    ("bool-job-type", _nb(_set(J + ".0.jobType", True)), ["jobType: True is not supported"]),
    ("null-input", _nb(_set(J + ".0.inputConfig", None)), ["inputConfig: Input should be a valid dictionary"]),
]


@pytest.mark.parametrize(("data", "field", "expected"), [
    (_nb(_set(J + ".0.jobModality", "VideoTracking")), "jobModality",
     "labelingJobs[0] 'b-1-vehicle': jobModality: 'VideoTracking' is not supported; choose one of "),
    ({**notebook_batch(), "batchId": 123}, "batchId", "batchId: must be a string, got 123"),
    (_nb(_set(J + ".2.inputConfig.downSamplingRate", 0)), "downSamplingRate",
     "inputConfig.downSamplingRate: must be a number with 0 < rate <= 100, got 0"),
    (_nb(_set(J + ".0.jobLevel", 0)), "jobLevel", "jobLevel: must be an integer from 1 to 3, got 0"),
    ({**notebook_batch(), "explorationPercent": 150}, "explorationPercent", "got 150"),
])
def test_messages_name_the_field_once_and_echo_the_value_as_given(data, field, expected):
    with pytest.raises(BatchConfigError) as info:
        validate_batch_config(data, batch_exists=lambda b: False, existing_job_names=lambda names: [])
    (problem,) = [p for p in info.value.problems if f"{field}:" in p]
    assert expected in problem and problem.count(f"{field}:") == 1, problem


@pytest.mark.parametrize("data,fragments", [pytest.param(c, f, id=i) for i, c, f in BAD_CONFIGS])
def test_bad_config_rejected_with_named_field(data, fragments):
    calls = []
    with pytest.raises(BatchConfigError) as info:
        validate_batch_config(
            data,
            batch_exists=lambda b: calls.append(("batch", b)) or False,
            existing_job_names=lambda names: calls.append(("jobs", names)) or [],
        )
    text = str(info.value)
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in {text!r}"
    assert calls == []  # a bad config triggers no look-up of outside state


def test_at_least_thirty_distinct_bad_configs():
    assert len({i for i, _, _ in BAD_CONFIGS}) >= 30


def test_cycle_is_named():
    data = batch(
        job("a", "VideoObjectTrackingAudit", 2, labelAttributeName="a-ref", labelCategoryConfigS3Uri=CATEGORY,
            inputConfig={"chainFromJobName": "b"}),
        job("b", "VideoObjectTrackingAudit", 2, labelAttributeName="b-ref", labelCategoryConfigS3Uri=CATEGORY,
            inputConfig={"chainFromJobName": "a"}),
    )
    with pytest.raises(BatchConfigError) as info:
        validate_batch_config(data)
    assert "chain cycle a -> b -> a" in str(info.value)


def test_all_problems_reported_together(nb_batch):
    nb_batch["batchId"] = "bad id"
    nb_batch["labelingJobs"][0]["jobType"] = "STREAMING"
    nb_batch["labelingJobs"][1]["labelAttributeName"] = "lane"
    nb_batch["labelingJobs"][3]["inputConfig"]["downSamplingRate"] = 0
    with pytest.raises(BatchConfigError) as info:
        validate_batch_config(nb_batch)
    problems = info.value.problems
    assert len(problems) == 4, problems
    assert any(p.startswith("labelingJobs[1] 'nb-track-1a2b3c4d-lane': labelAttributeName") for p in problems)


def test_existing_batch_and_gt_job_names_rejected(nb_batch):
    seen: list = []

    def existing(names):
        seen.extend(names)
        return ["nb-track-1a2b3c4d-lane"]

    with pytest.raises(BatchConfigError) as info:
        validate_batch_config(nb_batch, batch_exists=lambda b: b == "nb-track-1a2b3c4d", existing_job_names=existing)
    text = str(info.value)
    assert "batchId: 'nb-track-1a2b3c4d' is already used by an existing batch" in text
    assert "labelingJobs[1] 'nb-track-1a2b3c4d-lane': jobName: a Ground Truth labeling job with this name already exists" in text
    assert len(seen) == 4


def test_unsupported_region_is_a_validation_error(nb_batch):
    with pytest.raises(BatchConfigError, match="region: Ground Truth built-in task types are not available in 'mars-1'"):
        validate_batch_config(nb_batch, region="mars-1")


def test_json_schema_for_trigger_form_rejects_bad_conf(nb_batch):
    schema = batch_config_json_schema()
    assert "$ref" not in json.dumps(schema)
    jsonschema.validate(nb_batch, schema)
    for bad in (
        _set("batchId", "bad_id"),
        _set(J + ".0.jobType", "STREAMING"),
        _set(J + ".0.jobName", "a_b"),
        _set(J + ".0.jobLevel", 9),
        _set(J + ".0.typo", 1),
        _set(J + ".0.jobModality", "KeyPoint"),
    ):
        data = copy.deepcopy(nb_batch)
        bad(data)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(data, schema)
