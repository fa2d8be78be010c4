"""Seconds for One-2-3-45's 40 Zero123 views (8 first-stage + 32 nearby) and peak GPU memory.

    python bench/zero123_bench.py --device cuda [--size full|tiny] [--model DIR]
        [--precision float16 float32] [--elevation given|estimated] [--repeats 3]
        [--stage1-steps 75 --stage2-steps 50] [--json FILE]

Without --model the networks are built in memory with random weights at Zero123-XL's
sizes (backend/test_models/zero123.py build_components, about a minute on a CPU) - they
cost what the real ones do; the views are noise. Each precision: one warm-up run, then
--repeats timed runs of backend.zero123.views.generate_views (a prepared 256 x 256
picture, so no background removal). "given" draws stage 1 in one batch of 8 and stage 2
in one of 32 (76 + 49 UNet evaluations); "estimated" runs One-2-3-45's four passes
(76 + 49 + 76 + 49) with the elevation search replaced by a fixed answer (LoFTR's cost,
well under a second on a GPU, is left out; run it with real weights for that).
The target (issue 20): 32 views in at most 8 s and under 8 GB on one H200.
Prints one JSON line per run and a markdown table; --json writes the summary.
"""

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from backend.devices import resolve_device  # noqa: E402
from backend.test_models.zero123 import build_components  # noqa: E402
from backend.zero123 import views as views_module  # noqa: E402
from backend.zero123.elevation import ElevationEstimate  # noqa: E402
from backend.zero123.loader import from_components, load_zero123  # noqa: E402
from backend.zero123.sampler import evaluations  # noqa: E402


def picture() -> np.ndarray:
    yy, xx = np.mgrid[0:256, 0:256]
    out = np.full((256, 256, 3), 255, np.uint8)
    inside = (np.abs(xx - 128) < 70) & (np.abs(yy - 128) < 90)
    out[inside] = np.stack([xx, yy, (xx + yy) // 2], -1)[inside].astype(np.uint8)
    return out


def load(args, device, precision):
    if args.model:
        loaded = load_zero123(args.model, device)
    else:
        loaded = from_components(build_components(args.size, 0), device)
    if precision == "float32" and loaded.dtype != torch.float32:
        for part in (loaded.unet, loaded.vae, loaded.image_encoder, loaded.camera_projection):
            part.float()
        loaded.dtype = torch.float32
    return loaded


def run_once(loaded, args, device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    kwargs = dict(prepared=True, stage1_steps=args.stage1_steps, stage2_steps=args.stage2_steps, seed=0)
    if args.elevation == "given":
        result = views_module.generate_views(loaded, picture(), 30.0, **kwargs)
    else:
        original = views_module.estimate_polar
        views_module.estimate_polar = lambda matcher, pictures, dev: ElevationEstimate(60, True)
        try:
            result = views_module.generate_views(loaded, picture(), matcher=object(), **kwargs)
        finally:
            views_module.estimate_polar = original
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started, result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--size", choices=("full", "tiny"), default="full")
    parser.add_argument("--model", type=Path, help="a Zero123-XL folder instead of random weights")
    parser.add_argument("--precision", nargs="+", choices=("float16", "float32"), default=["float16", "float32"])
    parser.add_argument("--elevation", choices=("given", "estimated"), default="estimated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--stage1-steps", type=int, default=75)
    parser.add_argument("--stage2-steps", type=int, default=50)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    rows = []
    for precision in args.precision:
        if precision == "float16" and device.type != "cuda":
            print(json.dumps({"precision": precision, "skipped": "float16 runs on CUDA only"}))
            continue
        loaded = load(args, device, precision)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        run_once(loaded, args, device)  # warm-up
        times = []
        for repeat in range(args.repeats):
            seconds, result = run_once(loaded, args, device)
            times.append(seconds)
            print(json.dumps({"precision": precision, "repeat": repeat, "seconds": round(seconds, 3),
                              "timings": {k: round(v, 3) for k, v in result.timings.items()}}))
        peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
        rows.append({"precision": precision, "size": args.size if not args.model else str(args.model),
                     "elevation": args.elevation, "views": len(result.views),
                     "unet_evaluations": (2 if args.elevation == "estimated" else 1)
                     * (evaluations(args.stage1_steps) + evaluations(args.stage2_steps)),
                     "median_seconds": round(statistics.median(times), 3), "min_seconds": round(min(times), 3),
                     "peak_gpu_gib": None if peak is None else round(peak, 2)})
        del loaded
        if device.type == "cuda":
            torch.cuda.empty_cache()
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print("\n| device | weights | precision | elevation | UNet evals | seconds (median) | peak GPU GiB |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(f"| {device_name} | {row['size']} | {row['precision']} | {row['elevation']} | {row['unet_evaluations']} "
              f"| {row['median_seconds']} | {row['peak_gpu_gib']} |")
    if args.json:
        args.json.write_text(json.dumps({"device": device_name, "torch": torch.__version__, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
