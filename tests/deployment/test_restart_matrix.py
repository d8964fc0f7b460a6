"""Restart matrix of the local deployment (simulated workforce): SIGKILL one component while the
batch's level-1 labeling jobs run, start it again, and the batch still completes as if nothing
happened.

For each of SeaweedFS, the emulator, the Airflow scheduler and the triggerer, on a fresh state dir:
- the batch reaches COMPLETE;
- GT has exactly one labeling job per job name, each Completed;
- everything the batch wrote (chained inputs, output manifests, SeqLabel.json, worker responses) is
  byte-identical to an uninterrupted run of the same batch with the same seed and clock origin;
- every object in the S3 store before the kill is still there, unchanged.
The Label Studio rows (emulator and Label Studio killed under the Label Studio workforce) are in
test_labelstudio_restarts.py.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from smgt.deployment import LocalDeployment

from .deployment_helpers import (
    batch_files,
    batch_with_rates,
    create_batch,
    job_statuses,
    store_snapshot,
    wait_batch,
    wait_until,
)

BATCH_ID = "restart-matrix"
SEED = 11
CLOCK_ORIGIN = 1_767_225_600.0  # 2026-01-01T00:00:00Z: output timestamps do not depend on when a run ran
LEVEL1 = (f"{BATCH_ID}-vehicle", f"{BATCH_ID}-lane")


def deployment(state_dir: Path) -> LocalDeployment:
    # 6 s per wave of tasks: level 1 runs long enough to kill something in the middle of it.
    return LocalDeployment(state_dir, workforce="simulated", task_seconds=6.0, init_seconds=1.0, seed=SEED,
                           clock_origin=CLOCK_ORIGIN, preferred_ports=False)


def run_batch(state_dir: Path, kill: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with deployment(state_dir) as local:
        t0 = time.monotonic()
        create_batch(local, batch_with_rates(BATCH_ID))
        if kill is not None:
            wait_until("both level-1 labeling jobs InProgress",
                       lambda: all(job_statuses(local).get(n) == "InProgress" for n in LEVEL1), timeout=180, poll=0.2)
            out["before_kill"] = store_snapshot(local)
            local.kill(kill)
            out["killed_after_s"] = round(time.monotonic() - t0, 1)
            local.start_component(kill)
        out["shown"] = wait_batch(local, BATCH_ID, timeout=400)
        out["seconds"] = round(time.monotonic() - t0, 1)
        out["jobs"] = local.client("sagemaker").list_labeling_jobs(MaxResults=100)["LabelingJobSummaryList"]
        out["files"] = batch_files(local, BATCH_ID)
        out["after"] = store_snapshot(local)
    return out


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    run = run_batch(tmp_path_factory.mktemp("uninterrupted"))
    assert run["shown"]["status"] == "COMPLETE", run["shown"]
    manifests = [key for key in run["files"] if key.endswith("/manifests/output/output.manifest")]
    assert len(manifests) == 4, sorted(run["files"])
    return run


@pytest.mark.parametrize("component", ["seaweedfs", "emulator", "scheduler", "triggerer"])
def test_sigkill_mid_level_then_restart(component: str, uninterrupted: dict[str, Any], tmp_path: Path) -> None:
    run = run_batch(tmp_path, kill=component)
    print(f"\n{component}: killed {run['killed_after_s']} s after create; batch took {run['seconds']} s "
          f"(uninterrupted: {uninterrupted['seconds']} s)")
    assert run["shown"]["status"] == "COMPLETE", run["shown"]
    names = sorted(j["LabelingJobName"].lower() for j in run["jobs"])
    assert names == sorted(j["jobName"].lower() for j in batch_with_rates(BATCH_ID)["labelingJobs"])
    assert {j["LabelingJobStatus"] for j in run["jobs"]} == {"Completed"}
    assert sorted(run["files"]) == sorted(uninterrupted["files"])
    for key, body in uninterrupted["files"].items():
        assert run["files"][key] == body, f"{key} differs from the uninterrupted run"
    lost = {key: etag for key, etag in run["before_kill"].items() if run["after"].get(key) != etag}
    assert not lost, f"objects lost or changed by the kill of {component}: {sorted(lost)[:10]}"
