"""A batch with targeted down-sampling, end to end with dag.test() on the emulator: level 1 labels
with injected errors, the level-2 audit gets the injected frames, batch/show records why."""

from __future__ import annotations

import pytest
from dag_helpers import run_batch_with_faults, snapshot_of
from sample_batches import targeted_demo_batch

from smgt import batch_status
from smgt.local.injection import read_injected_errors
from smgt.manifests import Storage

pytestmark = pytest.mark.timeout(600)


def test_targeted_audit_gets_the_injected_frames_and_batch_show_says_why(emulator):
    # Fixed: the injected errors and the simulated labels are seeded with the job names.
    batch_id = "qa-targeted-1"
    conf = targeted_demo_batch(batch_id, emulator.demo, exploration=0)
    run = run_batch_with_faults(emulator, conf, {"label_errors": [
        {"pattern": f"{batch_id}-vehicle", "frames": [4, 10], "kinds": ["jitter", "miss"], "seed": 3}]})
    assert run.state == "success"
    detail = batch_status.describe_batch(snapshot_of(batch_id))
    assert detail["status"] == "COMPLETE"
    level_one = {j["labelingJobName"]: j for j in detail["firstLevel"]["jobLevels"]}
    injected = read_injected_errors(Storage(emulator.client("s3")), level_one[f"{batch_id}-vehicle"]["jobOutputS3Uri"])
    injected_frames = {e["frame"] for e in injected[0]["errors"]}
    assert len(injected_frames) == 2

    audits = {j["labelingJobName"]: j for j in detail["secondLevel"]["jobLevels"]}
    sampling = audits[f"{batch_id}-vehicle-audit"]["sampling"]
    assert sampling["strategy"] == "targeted" and sampling["explorationPercent"] == 0
    entry = sampling["samples"][0]
    scores = {s["frame"]: s for s in entry["scores"]}
    assert injected_frames <= set(entry["frames"]) == set(scores)
    for frame in injected_frames:
        assert scores[frame]["pick"] == "risk" and scores[frame]["risk"] > 0 and scores[frame]["reasons"]
    # The lane job had no injected errors; its audit was still sampled targeted, to the same budget.
    lane = audits[f"{batch_id}-lane-audit"]["sampling"]
    assert lane["strategy"] == "targeted" and lane["framesOut"] == sampling["framesOut"]
