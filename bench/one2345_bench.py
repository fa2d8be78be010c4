"""Seconds per object of the One-2-3-45 family - the 32 views, the reconstruction and the
mesh with its colours, the whole job - and peak GPU memory.

    python bench/one2345_bench.py --device cuda [--models DIR] [--repeats 3] [--json FILE]
    bash bench/run_one2345_gpu.sh WHEEL_DIR [options]       # a GPU box without diffusers/kornia/PyMCubes
    python bench/one2345_bench.py --tiny                    # seconds on a CPU: the test's mode

Without --models, full-size random weights are made first (`make-test-model one2345
--size full` into a temporary folder: Zero123-XL's sizes, about 2.5 GB of float16, LoFTR's
and the checkpoint's layout; a minute or two): they cost what the real ones do, and the
object is a blob. The job is the family's default (backend.pipeline.generate_mesh: 75 first
view steps and 50 nearby, the elevation estimated with LoFTR, the mesh at 256, the raw
surface's colours), on a cut-out picture (no background removal). One warm-up job, then
--repeats timed ones; the peak is torch.cuda.max_memory_allocated over each job (and the
reserved peak). Target (issue 21): at most 20 s per object and under 12 GB on one H200.
Prints one JSON line per job and a markdown table; --json writes the summary.
"""

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from backend.bridge.settings import GenerateSettings  # noqa: E402
from backend.families.registry import FAMILIES_BY_NAME  # noqa: E402
from backend.pipeline import generate_mesh, load_model  # noqa: E402

FAMILY = FAMILIES_BY_NAME["ONE2345"]
TARGET_SECONDS, TARGET_GIB = 20.0, 12.0
TINY = {"views_estimate_elevation": False, "views_elevation": 20.0, "views_steps": 3, "one2345_resolution": 32}


def picture() -> np.ndarray:
    """A cut-out (RGBA): an orange box with a darker band, on transparency."""
    rgba = np.zeros((320, 240, 4), np.uint8)
    rgba[40:280, 40:200] = (220, 120, 40, 255)
    rgba[120:160, 40:200, :3] = (90, 40, 20)
    return rgba


def settings_of(args) -> GenerateSettings:
    values = dict(TINY) if args.tiny else {}
    if args.steps:
        values["views_steps"] = args.steps
    if args.resolution:
        values["one2345_resolution"] = args.resolution
    if args.elevation is not None:
        values.update(views_estimate_elevation=False, views_elevation=args.elevation)
    return GenerateSettings(family=FAMILY.identifier, one2345_cpu_minutes=0.0, **values)


def one_job(loaded, settings, device) -> dict:
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    result = generate_mesh(loaded, picture(), settings)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    found = {"seconds": round(seconds, 3), "vertices": len(result.vertices), "faces": len(result.faces),
             "stages": {name: round(value, 3) for name, value in result.timings.items()}}
    if device.type == "cuda":
        found["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        found["peak_reserved_gib"] = round(torch.cuda.max_memory_reserved() / 2**30, 2)
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--models", type=Path, help="a folder of the three model folders (default: full-size random)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, help="the first views' steps (default 75)")
    parser.add_argument("--resolution", type=int, help="the mesh's grid (default 256)")
    parser.add_argument("--elevation", type=float, help="give the elevation instead of estimating it")
    parser.add_argument("--tiny", action="store_true", help="tiny random models, 3 steps, mesh at 32, one repeat")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    repeats = 1 if args.tiny else args.repeats
    with tempfile.TemporaryDirectory() as scratch:
        models = args.models
        if models is None:
            made = time.perf_counter()
            models = Path(scratch) / "one2345"
            FAMILY.test_models(models, "tiny" if args.tiny else "full", 0)
            print(json.dumps({"made_random_models_s": round(time.perf_counter() - made, 1)}), flush=True)
        loaded = load_model(models, args.device, "float32", family=FAMILY.identifier)
        device = torch.device(loaded.device)
        settings = settings_of(args)
        print(json.dumps({"loaded_s": round(loaded.load_seconds, 1), "device": loaded.device,
                          "views_precision": loaded.views_precision}), flush=True)
        jobs = []
        for index in range(repeats + 1):  # the first warms up
            job = one_job(loaded, settings, device)
            print(json.dumps({"job": index, "warm_up": index == 0, **job}), flush=True)
            jobs += [job] if index else []
    seconds = [job["seconds"] for job in jobs]
    stages = {name: round(statistics.median(job["stages"].get(name, 0.0) for job in jobs), 2)
              for name in jobs[0]["stages"]}
    peak = max((job.get("peak_gib") for job in jobs), default=None) if device.type == "cuda" else None
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    summary = {"device": name, "torch": torch.__version__, "weights": str(args.models or "random, full size"),
               "views_precision": loaded.views_precision, "settings": settings.to_dict(),
               "median_seconds": round(statistics.median(seconds), 2), "min_seconds": round(min(seconds), 2),
               "stages_median_s": stages, "peak_gib": peak,
               "peak_reserved_gib": max((job.get("peak_reserved_gib") or 0 for job in jobs), default=None),
               "vertices": jobs[-1]["vertices"], "jobs": jobs}
    print("\n| device | views | seconds per object (median, min) | views / reconstruction / surface / colours s "
          "| peak GPU GiB (allocated, reserved) | vertices |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(f"| {name} | {summary['views_precision']} | {summary['median_seconds']}, {summary['min_seconds']} "
          f"| {stages.get('views')} / {stages.get('reconstruction')} / {stages.get('surface')} / {stages.get('colors')} "
          f"| {peak}, {summary['peak_reserved_gib']} | {summary['vertices']:,} |")
    if device.type == "cuda":
        met = summary["median_seconds"] <= TARGET_SECONDS and peak < TARGET_GIB
        print(f"\ntarget (<= {TARGET_SECONDS:g} s and < {TARGET_GIB:g} GB per object): {'met' if met else 'missed'}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
