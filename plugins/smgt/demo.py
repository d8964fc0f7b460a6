"""The README's demo: the reference notebook's 4-job batch end to end on the embedded default.

    scripts/demo.sh            (= .venv/bin/python -m smgt.demo)

Starts the local deployment (smgt.deployment) with the simulated workforce on a fresh state
directory: S3 on SeaweedFS, the local Ground Truth emulator (SNS, Cognito, work teams, labeling jobs)
and Airflow on SQLite + LocalExecutor (api-server, scheduler, dag-processor, triggerer); uploads the
synthetic street video, then runs `examples/notebook_flow.py` against the batch API: create the
batch, watch it wait for the down-sampling rate, answer 50 %, wait for COMPLETE, print the batch
detail and where every output manifest is. Everything lives under .smgt/demo/ and is stopped at the
end (scripts/up.sh keeps a deployment running instead).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

from smgt.deployment import LocalDeployment
from smgt.embedded import ROOT

# The demo runs one batch on a fresh deployment and then stops, so its Airflow:
# - looks for work again 4x as often when a scheduler loop found nothing to do (Airflow's default:
#   after 1 s), so each of the batch's ~15 task-to-task steps waits less (a little more idle CPU);
# - parses dags/ once, at its start, instead of again every 5 s (the embedded default, so that an
#   edited DAG shows up at once): the files do not change during the demo, and each parse takes a
#   CPU second or two that the batch's tasks need on a small machine.
DEMO_AIRFLOW_ENV = {
    "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.25",
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "600",
    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
}
# Seconds every component gets to exit after SIGTERM before SIGKILL (a kept deployment: 30 s, and
# 15 s for Airflow's scheduler and triggerer). SeaweedFS's filer took 11 s of its graceful stop at
# the end of the demo, Airflow's triggerer 11 s in about one stop of three (its supervisor waits out
# its kill window when the runner exits a moment after closing its sockets). Nothing runs once the
# batch is COMPLETE, SeaweedFS's acknowledged writes survive SIGKILL
# (../shared/notes/seaweedfs.md), and the next demo deletes the state.
DEMO_STOP_GRACE_SECONDS = 3.0
# How often the notebook flow asks batch/show whether the batch waits for the rate or is COMPLETE
# (its default: 2 s).
FLOW_POLL_SECONDS = 1.0


def print_detail(detail: dict) -> None:
    """The batch as batch/show returns it, one line per job, with its output manifest."""
    print(f"\n[demo] batch {detail['batchId']}: {detail['status']}")
    for key in ("firstLevel", "secondLevel", "thirdLevel"):
        level = detail.get(key) or {}
        if not level.get("numChildBatches"):
            continue
        print(f"  {key}: {level['status']} ({level['numChildBatchesComplete']}/{level['numChildBatches']} jobs complete)")
        for job in level["jobLevels"]:
            sampled = job.get("sampling") or {}
            frames = f", frames {sampled['framesOut']}/{sampled['framesIn']}" if sampled.get("framesIn") else ""
            print(f"    {job['labelingJobName']}: {job['batchStatus']}, labels {job['labelAttributeName']}{frames}")
            print(f"      input:  {job['jobInputS3Uri']}")
            print(f"      output: {job['jobOutputS3Uri']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", default=str(ROOT / ".smgt" / "demo"))
    parser.add_argument("--task-seconds", type=float, default=0.5, help="simulated worker time per task")
    parser.add_argument("--rate", type=float, default=50, help="down-sampling rate the QA manager answers")
    args = parser.parse_args(argv)
    if not 0 < args.rate <= 100:  # refused now, not after level 1 has run (batch-metadata/post's rule)
        parser.error(f"--rate: must be a number with 0 < rate <= 100, got {args.rate:g}")

    work = Path(args.work_dir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    print(f"[demo] state and logs in {work}", flush=True)
    print("[demo] starting SeaweedFS (S3), the local Ground Truth emulator and Airflow (SQLite + LocalExecutor):"
          " api-server, scheduler, dag-processor, triggerer; uploading the synthetic street video", flush=True)
    # Any free ports: a deployment someone keeps running (scripts/up.sh) has the usual ones.
    with LocalDeployment(work, workforce="simulated", task_seconds=args.task_seconds, init_seconds=0.0,
                         preferred_ports=False, airflow_env=DEMO_AIRFLOW_ENV,
                         stop_grace=DEMO_STOP_GRACE_SECONDS) as local:
        assert local.airflow is not None
        airflow = local.airflow
        password = airflow.passwords["admin"]
        print(f"[demo] S3 on {local.s3_store.endpoint_url}, Ground Truth on {local.emulator_url}", flush=True)
        print(f"[demo] Airflow UI/API on {airflow.url} (user admin, password {password})", flush=True)
        env = dict(os.environ, **local.env())
        batch_id = f"nb-track-{uuid.uuid4().hex[:8]}"
        flow = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "notebook_flow.py"), "--base-url", airflow.url,
             "--username", "admin", "--password", password, "--rate", str(args.rate),
             "--batch-id", batch_id, "--work-dir", str(work / "notebook_flow_out"), "--poll", str(FLOW_POLL_SECONDS)],
            env=env, check=False,
        )
        if flow.returncode != 0:
            print(f"[demo] the notebook flow failed; Airflow logs:\n{airflow.logs()}", flush=True)
            return flow.returncode
        detail = airflow.session("admin").get(f"{airflow.url}/smgt/batch/show",
                                              params={"batchId": batch_id}, timeout=30).json()
        print_detail(detail)
    print("[demo] done: every component stopped", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
