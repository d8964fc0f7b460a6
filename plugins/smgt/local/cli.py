"""`smgt-local` / `python -m smgt.local`: run the emulator, or upload the demo data to one."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from typing import Any

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
    serve.add_argument("--state-dir", default=os.environ.get("SMGT_LOCAL_STATE_DIR"),
                       help="keep labeling jobs and work teams in DIR/gt.sqlite3 across restarts "
                            "(env SMGT_LOCAL_STATE_DIR; default: in memory)")
    serve.add_argument("--s3-endpoint-url", default=os.environ.get("SMGT_LOCAL_S3_ENDPOINT_URL"),
                       help="S3-compatible store for all S3 traffic, e.g. SeaweedFS (env SMGT_LOCAL_S3_ENDPOINT_URL),"
                            " with keys SMGT_LOCAL_S3_ACCESS_KEY / SMGT_LOCAL_S3_SECRET_KEY. Default: run a SeaweedFS"
                            " for this emulator, its data in STATE_DIR/s3 (or a temporary folder)")
    serve.add_argument("--workforce", choices=("simulated", "labelstudio"),
                       default=os.environ.get("SMGT_LOCAL_WORKFORCE", "simulated"),
                       help="who labels: simulated workers, or people in Label Studio (env SMGT_LOCAL_WORKFORCE); "
                            "point-cloud jobs always use the simulated workforce")
    serve.add_argument("--work-team-members", default=os.environ.get("SMGT_LOCAL_WORK_TEAM_MEMBERS"),
                       help='each work team\'s user names as JSON, e.g. {"smgt-workflows-first-level": ["ana", "bo"]}'
                            " (env SMGT_LOCAL_WORK_TEAM_MEMBERS; a team left out keeps labeler-1..3 / qa-manager-1..2)")
    serve.add_argument("--clock-origin", type=float, default=None,
                       help="fixed epoch seconds for the simulated workforce's timestamps (reproducible outputs)")
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


def _s3_store(args: argparse.Namespace, stack: contextlib.ExitStack) -> Any:
    """The S3 store to use: the one named, else a SeaweedFS of our own (stopped when serve ends)."""
    import secrets
    import tempfile
    from pathlib import Path

    from smgt.embedded import free_port

    from .emulator import S3Store
    from .seaweedfs import SeaweedFS

    keys = {name: os.environ.get(name) for name in ("SMGT_LOCAL_S3_ACCESS_KEY", "SMGT_LOCAL_S3_SECRET_KEY")}
    if args.s3_endpoint_url:
        missing = [name for name, value in keys.items() if not value]
        if missing:
            raise SystemExit(f"--s3-endpoint-url needs {' and '.join(missing)} in the environment")
        return S3Store(args.s3_endpoint_url, keys["SMGT_LOCAL_S3_ACCESS_KEY"], keys["SMGT_LOCAL_S3_SECRET_KEY"])
    data = Path(args.state_dir) / "s3" if args.state_dir else Path(stack.enter_context(tempfile.TemporaryDirectory()))
    store = SeaweedFS(data, s3_port=free_port(),
                      access_key=keys["SMGT_LOCAL_S3_ACCESS_KEY"] or "smgt" + secrets.token_hex(8),
                      secret_key=keys["SMGT_LOCAL_S3_SECRET_KEY"] or secrets.token_urlsafe(30))
    stack.enter_context(store)
    print(f"SeaweedFS (S3) on {store.endpoint_url}, data in {data}", flush=True)
    return S3Store(store.endpoint_url, store.access_key, store.secret_key)


def _workforce(args: argparse.Namespace, s3_store: Any) -> Any:
    if args.workforce != "labelstudio":
        return None
    from .labelstudio.workforce import LabelStudioWorkforce

    return LabelStudioWorkforce.from_env(s3_store=s3_store)


def _serve(args: argparse.Namespace) -> int:
    import logging

    from .emulator import LocalGroundTruth

    # Jobs resumed, workforce progress and failed data objects go to the log (stderr).
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("botocore").setLevel(logging.WARNING)

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    from .bootstrap import parse_work_team_members

    try:
        members = parse_work_team_members(args.work_team_members, where="--work-team-members")
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    with contextlib.ExitStack() as stack:  # on the way out: the emulator, then its own SeaweedFS
        s3_store = _s3_store(args, stack)
        emu = LocalGroundTruth(port=args.port, host=args.host, task_seconds=args.task_seconds,
                               init_seconds=args.init_seconds, seed=args.seed, faults=args.faults,
                               state_dir=args.state_dir, s3=s3_store, workforce=_workforce(args, s3_store),
                               clock_origin=args.clock_origin, work_team_members=members)
        stack.enter_context(emu)
        print(f"Local Ground Truth listening on {emu.endpoint_url}", flush=True)
        if args.demo_data:
            print(json.dumps(emu.upload_demo_data(), indent=2), flush=True)
        print("# environment for Airflow and boto3:")
        for key, value in emu.env().items():
            print(f"export {key}='{value}'")
        print(f"# status queue: {emu.status_queue_url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            done.wait()
    return 0


def _demo_data(args: argparse.Namespace) -> int:
    import boto3

    from .demo import upload_demo_data
    from .s3io import S3

    settings = get_settings()
    # S3 on the deployment's store, with its keys: the environment `serve` prints.
    missing = [n for n in ("AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if not os.environ.get(n)]
    if missing:
        raise SystemExit(f"demo-data needs the environment `serve` prints; missing: {', '.join(missing)}")
    client = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL_S3"], region_name=settings.region,
                          aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"])
    print(json.dumps(upload_demo_data(S3(client), settings.input_bucket, n_frames=args.frames, seed=args.seed),
                     indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
