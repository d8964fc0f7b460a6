"""Benchmark: streaming chaining/down-sampling vs. a plain read vs. the whole-file approach.

    .venv/bin/python bench/manifest_bench.py                 # 1 GB manifest (default)
    .venv/bin/python bench/manifest_bench.py --size-mb 100   # quicker

Two workloads are generated in a temporary folder (deleted afterwards unless --keep):

- lines:  a `--size-mb` GT output manifest mixing image lines (inline bounding boxes, 1-40 per
          image) and video lines (SeqLabel.json reference + metadata), down-sampled on lines
          (the image path: count pass + selection sampling);
- frames: a video output manifest of `--videos` lines, each with its own sequence file of
          `--frames` frames, down-sampled on frames (one new sequence file per line).

For each, three approaches run in their own subprocess, one after the other:
  (a) read:   stream the manifest, json.loads every line (frames: also load every sequence file);
  (b) ours:   smgt.manifests.build_chained_manifest at --rate;
  (c) whole:  read every line into a list, random.sample, write the chosen (frames: also hold
              every sequence file in memory), as the reference solution does.
Time is wall-clock of the operation only. Memory: right before the operation (after imports) the
subprocess resets its peak RSS (`5` > /proc/self/clear_refs) and reads VmRSS as baseline; the peak
is VmHWM afterwards (ru_maxrss, which includes import-time peaks, where the reset is refused). The
increment is peak minus baseline. The files are
in the page cache for every run (they were just written), so this measures CPU and memory, not disk.
For frames, (b) and (c) create one new sequence file per line while (a) writes nothing; creating a
file costs ~0.45 ms on the development machine's filesystem, so (b)/(a) there mostly measures that.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))

from smgt.manifests import Storage, build_chained_manifest  # noqa: E402
from smgt.registry import MediaKind  # noqa: E402

MB = 1 << 20


# ------------------------------------------------------------------------------------------ data


def generate_lines_manifest(path: Path, size_mb: int, seed: int = 7) -> int:
    """Mixed image/video GT output lines up to size_mb; returns the line count."""
    rng = random.Random(seed)
    # Pre-serialised annotation blobs: generating 1 GB with json.dumps per line would dominate.
    blobs = []
    for _ in range(256):
        boxes = [
            {
                "class_id": rng.randrange(5),
                "left": rng.randrange(1900),
                "top": rng.randrange(1000),
                "width": rng.randrange(5, 300),
                "height": rng.randrange(5, 300),
            }
            for _ in range(rng.randrange(1, 41))
        ]
        blobs.append(
            json.dumps({"image_size": [{"width": 1920, "height": 1080, "depth": 3}], "annotations": boxes})
        )
    image_meta = json.dumps(
        {
            "objects": [{"confidence": 0.9}],
            "class-map": {str(i): f"class-{i}" for i in range(5)},
            "type": "groundtruth/object-detection",
            "human-annotated": "yes",
            "creation-date": "2026-11-24T00:00:00.000000",
            "job-name": "labeling-job/boxes",
        }
    )
    video_meta = json.dumps(
        {
            "class-map": {"0": "Vehicle"},
            "job-name": "labeling-job/vehicles",
            "human-annotated": "yes",
            "creation-date": "2026-11-24T00:00:00.000000",
            "type": "groundtruth/video-object-tracking",
        }
    )
    limit, written, count = size_mb * MB, 0, 0
    with path.open("w", buffering=4 * MB) as f:
        while written < limit:
            if count % 5 == 4:
                line = (
                    f'{{"source-ref":"s3://bench/seq/{count:09d}_seq.json",'
                    f'"vehicles-ref":"s3://bench/out/vehicles/annotations/consolidated-annotation/output/'
                    f'{count}/SeqLabel.json","vehicles-ref-metadata":{video_meta}}}\n'
                )
            else:
                line = (
                    f'{{"source-ref":"s3://bench/images/{count:09d}.jpg","boxes":{blobs[count % 256]},'
                    f'"boxes-metadata":{image_meta}}}\n'
                )
            f.write(line)
            written += len(line)
            count += 1
    return count


def generate_frames_manifest(root: Path, videos: int, frames: int) -> Path:
    seq_dir = root / "sequences-in"
    seq_dir.mkdir()
    manifest = root / "video-output.manifest"
    with manifest.open("w") as f:
        for v in range(videos):
            seq = {
                "version": "2020-07-01",
                "seq-no": v,
                "prefix": f"s3://bench/videos/{v:05d}/img1/",
                "number-of-frames": frames,
                "frames": [
                    {"frame-no": i + 1, "frame": f"{i + 1:06d}.jpg", "unix-timestamp": 1.7e9 + i / 30}
                    for i in range(frames)
                ],
            }
            seq_path = seq_dir / f"{v:05d}_seq.json"
            seq_path.write_text(json.dumps(seq))
            f.write(
                json.dumps(
                    {
                        "source-ref": str(seq_path),
                        "vehicles-ref": f"s3://bench/out/{v}/SeqLabel.json",
                        "vehicles-ref-metadata": {"type": "groundtruth/video-object-tracking"},
                    }
                )
                + "\n"
            )
    return manifest


# ------------------------------------------------------------------------------------------ approaches


def run_read(src: str, frames: bool) -> None:
    with open(src, "rb") as f:
        for line in f:
            obj = json.loads(line)
            if frames:
                with open(obj["source-ref"], "rb") as s:
                    json.load(s)


def run_ours(src: str, out: str, rate: float, frames: bool) -> None:
    build_chained_manifest(
        Storage(),
        src,
        out,
        media=MediaKind.VIDEO if frames else MediaKind.IMAGE,
        rate=rate,
        batch_id="bench",
        job_name="bench-audit",
    )


def run_whole(src: str, out: str, rate: float, frames: bool) -> None:
    rng = random.Random(1)
    with open(src, "rb") as f:
        lines = f.read().splitlines()
    if not frames:
        k = max(1, -(-len(lines) * int(rate) // 100))
        chosen = sorted(rng.sample(range(len(lines)), k))
        with open(out, "wb") as f:
            for i in chosen:
                json.loads(lines[i])
                f.write(lines[i] + b"\n")
        return
    objs = [json.loads(line) for line in lines]
    sequences = []
    for obj in objs:
        with open(obj["source-ref"], "rb") as s:
            sequences.append(json.load(s))
    seq_dir = Path(out).parent / "sequences-whole"
    seq_dir.mkdir(exist_ok=True)
    with open(out, "w") as f:
        for i, (obj, seq) in enumerate(zip(objs, sequences, strict=True)):
            n = len(seq["frames"])
            keep = sorted(rng.sample(range(n), max(1, -(-n * int(rate) // 100))))
            seq["frames"] = [seq["frames"][j] for j in keep]
            seq["number-of-frames"] = len(keep)
            path = seq_dir / f"{i:06d}.json"
            path.write_text(json.dumps(seq))
            obj["source-ref"] = str(path)
            f.write(json.dumps(obj) + "\n")


def proc_status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so the peak excludes import-time spikes."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def worker(args: argparse.Namespace) -> None:
    frames = args.workload == "frames"
    peak_was_reset = reset_peak_rss()
    baseline = proc_status_kb("VmRSS")
    start = time.perf_counter()
    if args.worker == "read":
        run_read(args.src, frames)
    elif args.worker == "ours":
        run_ours(args.src, args.out, args.rate, frames)
    else:
        run_whole(args.src, args.out, args.rate, frames)
    elapsed = time.perf_counter() - start
    # Without the reset, ru_maxrss (KiB on Linux) also covers the imports: an upper bound.
    peak = proc_status_kb("VmHWM") if peak_was_reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": elapsed, "baseline_kb": baseline, "peak_kb": peak, "reset": peak_was_reset}))


def measure(mode: str, workload: str, src: Path, out_dir: Path, rate: float) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, __file__, "--worker", mode, "--workload", workload, "--src", str(src)]
    cmd += ["--out", str(out_dir / "input.manifest"), "--rate", str(rate)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"{mode}/{workload} failed:\n{proc.stderr}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    shutil.rmtree(out_dir)  # keep disk use to one output at a time
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mb", type=int, default=1024, help="size of the lines manifest (default 1024)")
    parser.add_argument("--videos", type=int, default=5000, help="lines of the frames manifest")
    parser.add_argument("--frames", type=int, default=200, help="frames per sequence file")
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--tmp-dir", default=None, help="where to generate (default: system temp)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--worker", choices=["read", "ours", "whole"], help=argparse.SUPPRESS)
    parser.add_argument("--workload", choices=["lines", "frames"], help=argparse.SUPPRESS)
    parser.add_argument("--src", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    root = Path(tempfile.mkdtemp(prefix="manifest-bench-", dir=args.tmp_dir))
    try:
        t0 = time.perf_counter()
        lines_src = root / "output.manifest"
        n_lines = generate_lines_manifest(lines_src, args.size_mb)
        frames_src = generate_frames_manifest(root, args.videos, args.frames)
        print(
            f"generated in {time.perf_counter() - t0:.1f}s: lines manifest {lines_src.stat().st_size / MB:.0f} MB, "
            f"{n_lines} lines; frames manifest {args.videos} sequences x {args.frames} frames "
            f"({sum(p.stat().st_size for p in (root / 'sequences-in').iterdir()) / MB:.0f} MB of sequence files)"
        )
        print(f"rate {args.rate:g} %, python {sys.version.split()[0]}\n")
        header = f"{'workload':<8} {'approach':<14} {'time s':>8} {'peak RSS MB':>12} {'RSS incr MB':>12}"
        print(header)
        print("-" * len(header))
        results: dict[tuple[str, str], dict] = {}
        for workload, src in (("lines", lines_src), ("frames", frames_src)):
            for mode, label in (("read", "(a) read"), ("ours", "(b) ours"), ("whole", "(c) whole-file")):
                r = measure(mode, workload, src, root / f"out-{workload}-{mode}", args.rate)
                results[workload, mode] = r
                incr = (r["peak_kb"] - r["baseline_kb"]) / 1024
                print(
                    f"{workload:<8} {label:<14} {r['seconds']:>8.2f} {r['peak_kb'] / 1024:>12.1f} {incr:>12.1f}"
                )
        print()
        for workload in ("lines", "frames"):
            a, b, c = (results[workload, m] for m in ("read", "ours", "whole"))
            b_incr = (b["peak_kb"] - b["baseline_kb"]) / 1024
            c_incr = (c["peak_kb"] - c["baseline_kb"]) / 1024
            print(
                f"{workload}: time (b)/(a) = {b['seconds'] / a['seconds']:.2f}x (target <= 2x), "
                f"(c)/(b) = {c['seconds'] / b['seconds']:.2f}x; "
                f"RSS increment (b) = {b_incr:.1f} MB (target < 64 MB), (c) = {c_incr:.1f} MB "
                f"({c_incr / max(b_incr, 0.1):.0f}x)"
            )
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
