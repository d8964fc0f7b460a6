"""`smgt-local` / `python -m smgt.local`: run the emulator, or upload the demo data to one."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading

from smgt.settings import get_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="smgt-local", description="Local Ground Truth emulator")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="start the emulator and run until killed")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=4566)
    serve.add_argument("--task-seconds", type=float, default=2.0, help="simulated time per wave of tasks")
    serve.add_argument("--init-seconds", type=float, default=1.0, help="time a job stays Initializing")
    serve.add_argument("--seed", type=int, default=0)
    serve.add_argument("--faults", help="JSON file of faults (see smgt.local.faults)")
    serve.add_argument("--demo-data", action="store_true", help="also upload the demo video")
    data = sub.add_parser("demo-data", help="upload the demo video, sequence file and manifest")
    data.add_argument("--endpoint-url", required=True)
    data.add_argument("--frames", type=int, default=30)
    data.add_argument("--seed", type=int, default=0)
    walk = sub.add_parser("label-demo", help="label the demo video end to end (4 jobs) with plain boto3")
    walk.add_argument("--endpoint-url", required=True)
    walk.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "label-demo":
        from .walkthrough import label_demo

        print(json.dumps(label_demo(args.endpoint_url, timeout=args.timeout), indent=2))
        return 0
    return _demo_data(args)


def _serve(args: argparse.Namespace) -> int:
    from .emulator import LocalGroundTruth

    emu = LocalGroundTruth(port=args.port, host=args.host, task_seconds=args.task_seconds,
                           init_seconds=args.init_seconds, seed=args.seed, faults=args.faults).start()
    print(f"Local Ground Truth listening on {emu.endpoint_url}", flush=True)
    if args.demo_data:
        print(json.dumps(emu.upload_demo_data(), indent=2), flush=True)
    print("# environment for Airflow and boto3:")
    for key, value in emu.env().items():
        print(f"export {key}='{value}'")
    print(f"# status queue: {emu.status_queue_url}", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with contextlib.suppress(KeyboardInterrupt):
        done.wait()
    emu.stop()
    return 0


def _demo_data(args: argparse.Namespace) -> int:
    import boto3

    from .demo import upload_demo_data
    from .emulator import ACCESS_KEY, SECRET_KEY
    from .s3io import S3

    settings = get_settings()
    client = boto3.client("s3", endpoint_url=args.endpoint_url, region_name=settings.region,
                          aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
    print(json.dumps(upload_demo_data(S3(client), settings.input_bucket, n_frames=args.frames, seed=args.seed),
                     indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
