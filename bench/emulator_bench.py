"""Load bench of the local Ground Truth emulator.

Starts an emulator in-process, creates many labeling jobs on the demo video at once, and polls
DescribeLabelingJob from several threads (as many deferred Airflow sensors would) until every job is
done. Prints request latency (p50/p95 of DescribeLabelingJob and CreateLabelingJob), the peak
number of jobs running at the same time, and the throughput.

    .venv/bin/python bench/emulator_bench.py --jobs 200 --task-seconds 2 --pollers 8
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from botocore.config import Config

from smgt.embedded import free_port
from smgt.local import LocalGroundTruth
from smgt.local.emulator import S3Store
from smgt.local.seaweedfs import SeaweedFS
from smgt.registry import get_modality
from smgt.settings import Settings


def request(name: str, demo: dict, settings: Settings) -> dict:
    m = get_modality("VideoObjectTracking")
    region = settings.region
    return {
        "LabelingJobName": name, "LabelAttributeName": "vehicle-ref",
        "InputConfig": {"DataSource": {"S3DataSource": {"ManifestS3Uri": demo["manifest_uri"]}}},
        "OutputConfig": {"S3OutputPath": f"s3://{settings.processing_bucket}/bench/"},
        "RoleArn": settings.role_arn, "LabelCategoryConfigS3Uri": demo["label_configs"]["vehicle_label_category"],
        "HumanTaskConfig": {
            "WorkteamArn": settings.first_level_workteam_arn,
            "UiConfig": {"HumanTaskUiArn": m.human_task_ui_arn(region)},
            "PreHumanTaskLambdaArn": m.pre_human_task_lambda_arn(region),
            "TaskTitle": "bench", "TaskDescription": "bench", "NumberOfHumanWorkersPerDataObject": 1,
            "TaskTimeLimitInSeconds": 3600, "MaxConcurrentTaskCount": 100,
            "AnnotationConsolidationConfig": {"AnnotationConsolidationLambdaArn": m.consolidation_lambda_arn(region)},
        },
    }


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--task-seconds", type=float, default=2.0)
    parser.add_argument("--init-seconds", type=float, default=1.0)
    parser.add_argument("--pollers", type=int, default=8)
    parser.add_argument("--creators", type=int, default=8)
    args = parser.parse_args()

    settings = Settings()
    # S3 on SeaweedFS, as in every deployment; job records in memory (no state dir).
    with tempfile.TemporaryDirectory() as data, SeaweedFS(
            data, s3_port=free_port(), access_key="bench" + secrets.token_hex(4),
            secret_key=secrets.token_hex(16)) as store, LocalGroundTruth(
            task_seconds=args.task_seconds, init_seconds=args.init_seconds, seed=1,
            s3=S3Store(store.endpoint_url, store.access_key, store.secret_key)) as emu:
        demo = emu.upload_demo_data()
        config = Config(retries={"mode": "standard", "max_attempts": 10}, max_pool_connections=64)
        sm = emu.client("sagemaker", config=config)
        names = [f"bench-{i:04d}" for i in range(args.jobs)]

        peak = 0
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                running = sum(j.status not in ("Completed", "Failed", "Stopped") for j in emu.jobs.all())
                peak = max(peak, running)
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()

        create_lat: list[float] = []

        def create(name: str) -> None:
            t0 = time.perf_counter()
            sm.create_labeling_job(**request(name, demo, settings))
            create_lat.append(time.perf_counter() - t0)

        started = time.perf_counter()
        with ThreadPoolExecutor(args.creators) as pool:
            list(pool.map(create, names))
        created_in = time.perf_counter() - started

        describe_lat: list[float] = []
        statuses: dict[str, str] = {}
        lock = threading.Lock()

        def poll(worker: int) -> None:
            mine = names[worker::args.pollers]
            pending = set(mine)
            while pending:
                for name in list(pending):
                    t0 = time.perf_counter()
                    status = sm.describe_labeling_job(LabelingJobName=name)["LabelingJobStatus"]
                    with lock:
                        describe_lat.append(time.perf_counter() - t0)
                    if status in ("Completed", "Failed", "Stopped"):
                        statuses[name] = status
                        pending.discard(name)

        with ThreadPoolExecutor(args.pollers) as pool:
            list(pool.map(poll, range(args.pollers)))
        wall = time.perf_counter() - started
        done.set()
        sampler.join()

        completed = sum(s == "Completed" for s in statuses.values())
        print(f"jobs created:            {args.jobs} in {created_in:.2f}s with {args.creators} threads")
        print(f"CreateLabelingJob:       p50 {pct(create_lat, 0.5):.1f} ms, p95 {pct(create_lat, 0.95):.1f} ms")
        print(f"DescribeLabelingJob:     p50 {pct(describe_lat, 0.5):.1f} ms, p95 {pct(describe_lat, 0.95):.1f} ms, "
              f"mean {statistics.mean(describe_lat) * 1000:.1f} ms over {len(describe_lat)} calls "
              f"({len(describe_lat) / wall:.0f}/s from {args.pollers} pollers)")
        print(f"peak concurrent jobs:    {peak} (not yet terminal at the same time)")
        print(f"completed:               {completed}/{args.jobs} in {wall:.2f}s "
              f"(task {args.task_seconds}s, init {args.init_seconds}s)")
        stats = emu.stats.snapshot()["calls"]
        print(f"server calls:            DescribeLabelingJob {stats.get('DescribeLabelingJob', 0)}, "
              f"s3 PUT {stats.get('s3:PUT', 0)}, s3 GET {stats.get('s3:GET', 0)}")


if __name__ == "__main__":
    main()
