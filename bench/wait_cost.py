"""Waiting cost and hand-off latency of LabelingJobTrigger: polling (before) vs GT events (after).

Issue 13 targets: <= 30 DescribeLabelingJob calls per waiting job-hour, and a hand-off (job ended ->
trigger fires) <= 10 s for a job that ends within its first 5 minutes. One run against the local GT
emulator (SeaweedFS for S3, moto for EventBridge/SQS), every trigger on one event loop as in one
triggerer process, before and after side by side:

* before: the trigger as the sensor builds it without an events queue: DescribeLabelingJob every
  30 s (SMGT_POKE_INTERVAL);
* after:  the same trigger with SMGT_EVENTS_QUEUE_URL (the emulator's EventBridge rule -> SQS queue):
  woken by the job's "Labeling Job State Change" event, fallback poll every 300 s.

Hand-off: jobs ending 15 s .. 95 s after the trigger started, real time and production intervals.
Cost: jobs waiting one job-hour each, time-compressed (--compress 60: the 30 s / 300 s intervals run
as 0.5 s / 5 s and one job-hour as 60 s); calls are counted per job by the emulator and include the
trigger's first describe and the one that sees the end.

    .venv/bin/python bench/wait_cost.py [--latency-jobs 8] [--cost-jobs 6] [--compress 60]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))
# Airflow (the trigger's hook) reads its config at import: a throwaway AIRFLOW_HOME.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="smgt-wait-cost-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

POKE = 30  # SMGT_POKE_INTERVAL default
FALLBACK = 300  # SMGT_EVENTS_FALLBACK_POLL default (10 polls of 30 s)


def create_request(name: str, demo: dict, settings: Any) -> dict:
    from smgt.config import validate_batch_config
    from smgt.gt.requests import build_create_labeling_job_request

    config = validate_batch_config({"batchId": "wait-cost", "labelingJobs": [{
        "jobName": name, "jobType": "BATCH", "jobModality": "VideoObjectTracking", "labelAttributeName": "vehicle-ref",
        "labelCategoryConfigS3Uri": demo["label_configs"]["vehicle_label_category"],
        "inputConfig": {"inputManifestS3Uri": demo["manifest_uri"]}, "jobLevel": 1}]})
    job = config.labelingJobs[0]
    return build_create_labeling_job_request(job, batch_id="wait-cost", settings=settings,
                                             input_manifest_s3_uri=demo["manifest_uri"],
                                             label_category_config_s3_uri=job.labelCategoryConfigS3Uri)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run_triggers(specs: list[tuple[str, dict[str, Any]]]) -> dict[str, tuple[dict, float, float]]:
    """Run every trigger concurrently on this loop; name -> (payload, started, fired)."""
    from smgt.gt.triggers import LabelingJobTrigger

    results: dict[str, tuple[dict, float, float]] = {}

    async def one(name: str, kwargs: dict[str, Any]) -> None:
        _, serialized = LabelingJobTrigger(job_name=name, **kwargs).serialize()
        trigger = LabelingJobTrigger(**serialized)  # what a triggerer runs
        started = time.time()
        async for event in trigger.run():
            results[name] = (event.payload, started, time.time())
            return

    await asyncio.gather(*(one(name, kwargs) for name, kwargs in specs))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency-jobs", type=int, default=8, help="jobs per mode for the hand-off latency")
    parser.add_argument("--cost-jobs", type=int, default=6, help="jobs per mode for the waiting cost")
    parser.add_argument("--compress", type=float, default=60.0, help="time compression of the cost phase")
    parser.add_argument("--latency-window", type=float, default=80.0, help="jobs end 15 s .. 15 + this s in")
    args = parser.parse_args()

    from smgt.embedded import free_port
    from smgt.local import LocalGroundTruth
    from smgt.local.emulator import S3Store
    from smgt.local.seaweedfs import SeaweedFS
    from smgt.settings import Settings

    tmp = Path(tempfile.mkdtemp(prefix="smgt-wait-cost-"))
    weed = SeaweedFS(tmp / "s3", s3_port=free_port(), access_key="bench" + secrets.token_hex(4),
                     secret_key=secrets.token_urlsafe(16))
    weed.start()
    try:
        store = S3Store(weed.endpoint_url, weed.access_key, weed.secret_key)
        with LocalGroundTruth(port=0, task_seconds=0.05, seed=1, settings=Settings(), s3=store) as emu:
            bench(emu, args)
    finally:
        weed.stop()


def bench(emu: Any, args: argparse.Namespace) -> None:
    os.environ.update(emu.env())  # aws_default -> the emulator; SMGT_EVENTS_QUEUE_URL -> its events queue
    demo = emu.upload_demo_data(n_frames=2)
    sm = emu.client("sagemaker")
    run = secrets.token_hex(3)
    hour = 3600.0 / args.compress
    n_lat, n_cost = args.latency_jobs, args.cost_jobs
    # From 15 s on: 28 triggers starting on a loaded 2-core machine take several seconds to make
    # their first describe, and a job that ends before that measures the start-up, not the wait.
    offsets = [15 + i * args.latency_window / max(n_lat - 1, 1) for i in range(n_lat)]
    modes = {"before": {"events_queue_url": ""}, "after": {}}
    plan: list[tuple[str, str, str, float, dict[str, Any]]] = []  # name, mode, phase, ends after, trigger kwargs
    for mode, extra in modes.items():
        for i, offset in enumerate(offsets):
            plan.append((f"lat-{mode}-{i}-{run}", mode, "latency", offset,
                         {"waiter_delay": POKE, "waiter_max_attempts": 10_000, **extra}))
        for i in range(n_cost):
            kwargs = {"waiter_delay": POKE / args.compress, "waiter_max_attempts": 10_000_000, **extra}
            if mode == "after":
                kwargs["fallback_delay"] = FALLBACK / args.compress
            plan.append((f"cost-{mode}-{i}-{run}", mode, "cost", hour, kwargs))

    # Jobs end `offset` seconds after the triggers start (at `start`): the emulator holds each job
    # (delay_jobs, read when its lifecycle starts) until then.
    start = time.time() + 3.0 + 0.2 * len(plan)
    delays: list[dict[str, Any]] = []
    for name, _, _, offset, _ in plan:
        delays.append({"pattern": name, "seconds": start + offset - time.time()})
        emu.set_faults({"delay_jobs": delays})
        sm.create_labeling_job(**create_request(name, demo, emu.settings))
    time.sleep(max(start - time.time(), 0))
    sqs_before = emu.stats.snapshot()["calls"].get("sqs:ReceiveMessage", 0)
    print(f"wait_cost: {len(plan)} triggers on one event loop against the local GT emulator "
          f"({emu.endpoint_url}); events queue {emu.events_queue_url}", flush=True)
    t0 = time.time()
    results = asyncio.run(run_triggers([(name, kwargs) for name, _, _, _, kwargs in plan]))
    early = [name for name, _, phase, _, _ in plan if phase == "latency"
             and emu.jobs.get(name).modified < results[name][1] + 5]
    if early:
        print(f"warning: {len(early)} jobs ended less than 5 s after their trigger started: {early}")
    elapsed = time.time() - t0
    sqs_calls = emu.stats.snapshot()["calls"].get("sqs:ReceiveMessage", 0) - sqs_before

    table: dict[str, dict[str, Any]] = {}
    for mode in modes:
        latency, per_hour = [], []
        for name, m, phase, _, _ in plan:
            if m != mode:
                continue
            payload, started, fired = results[name]
            assert payload["LabelingJobStatus"] == "Completed", payload
            job = emu.jobs.get(name)
            if phase == "latency":
                latency.append(fired - job.modified)
            else:
                waited_hours = (fired - started) / hour
                per_hour.append(emu.describe_calls[name.lower()] / waited_hours)
        table[mode] = {"latency": latency, "per_hour": statistics.mean(per_hour)}

    print(f"\n{'':34}{'before: poll 30 s':>22}{'after: events + 300 s fallback':>34}")
    print(f"{'DescribeLabelingJob / job-hour':34}{table['before']['per_hour']:>22.1f}{table['after']['per_hour']:>34.1f}"
          f"   (target <= 30; {n_cost} jobs/mode waiting 1 job-hour, time x{args.compress:g})")
    for label, q in (("hand-off p50 (s)", 0.5), ("hand-off p90 (s)", 0.9), ("hand-off max (s)", 1.0)):
        print(f"{label:34}{pct(table['before']['latency'], q):>22.2f}{pct(table['after']['latency'], q):>34.2f}")
    print(f"{'':34}(target max <= 10 s; {n_lat} jobs/mode ending {offsets[0]:.0f}-{offsets[-1]:.0f} s in, real time)")
    print(f"\nafter, per job (end -> fire, s): {', '.join(f'{v:.2f}' for v in table['after']['latency'])}")
    print(f"before, per job (end -> fire, s): {', '.join(f'{v:.2f}' for v in table['before']['latency'])}")
    print(f"events: {emu.events_published} published by the emulator; SQS ReceiveMessage calls (one 20 s long "
          f"poll at a time per triggerer process, whatever its number of jobs): {sqs_calls} in {elapsed:.0f} s "
          f"(one per event batch, else <= 180/h idle)")


if __name__ == "__main__":
    main()
