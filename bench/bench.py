"""Benchmark: where the seconds go, per stage, fast path against the reference algorithm.

    python bench/bench.py --model DIR --image IMAGE [--device cpu|cuda]
        [--resolutions 128 256 512] [--repeats 5] [--no-reference] [--json OUT]

For each resolution it runs one cold job (the first after loading), then `--repeats`
warm jobs, and prints the median and spread (min-max) of each stage. With reference
mode on (the default) it also times the reference algorithm (dense grid, 8192-point
chunks, float32, PyMCubes on the CPU) in the same process, prints the speed-ups as
ratios, and checks that the fast mesh matches the reference one (vertex sets within
1e-3, colours within 2/255). Peak memory: the process's CPU RSS and torch's peak GPU
allocation per job. "transfer" is the result's trip through the worker protocol over
an OS pipe and "blender" the bpy mesh build, each where those modules can be imported.
"""

import argparse
import json
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from backend.bridge.settings import STAGES, GenerateSettings  # noqa: E402
from backend.pipeline import generate_mesh, load_model  # noqa: E402

VERTEX_TOL = 1e-3
COLOR_TOL = 2


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_once(loaded, image, settings, reference):
    stage_peaks = {}

    def note_peak(stage, fraction):
        # GPU memory high-water mark of each stage (a host-side counter: no sync)
        if loaded.device == "cuda" and fraction >= 1.0:
            stage_peaks[f"gpu_peak_mib_{stage}"] = torch.cuda.max_memory_allocated() / 2**20
            torch.cuda.reset_peak_memory_stats()

    if loaded.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    result = generate_mesh(loaded, image, settings, reference_mode=reference,
                           chunk_size=8192 if reference else None, progress=note_peak)
    timings = dict(result.timings)
    timings["total"] = time.perf_counter() - started
    if stage_peaks:
        timings.update(stage_peaks)
        timings["gpu_peak_mib"] = max(stage_peaks.values())
    return result, timings


def summarize(samples: list[dict]) -> dict:
    keys = samples[0].keys()
    return {
        k: {"median": statistics.median(s[k] for s in samples), "min": min(s[k] for s in samples), "max": max(s[k] for s in samples)}
        for k in keys
    }


def same_mesh(fast, ref) -> dict:
    d_fast, nearest = cKDTree(ref.vertices).query(fast.vertices)
    d_ref, _ = cKDTree(fast.vertices).query(ref.vertices)
    color = int(np.abs(fast.colors.astype(int) - ref.colors[nearest].astype(int)).max())
    ok = d_fast.max() < VERTEX_TOL and d_ref.max() < VERTEX_TOL and color <= COLOR_TOL
    beyond = int((d_fast >= VERTEX_TOL).sum() + (d_ref >= VERTEX_TOL).sum())
    return {"ok": bool(ok), "max_vertex_distance": float(max(d_fast.max(), d_ref.max())), "max_color_difference": color,
            "vertices_beyond_tolerance": beyond,
            "vertices": [len(fast.vertices), len(ref.vertices)], "faces": [len(fast.faces), len(ref.faces)]}


def transfer_seconds(result):
    """Encode the result as the worker does, pass it through a pipe, decode it."""
    try:
        from transfer import round_trip  # bench/ is on sys.path as the script's folder
    except ImportError:
        return None
    return round_trip(result)


def blender_build_seconds(result):
    try:
        from blender_build import build_seconds
    except ImportError:
        return None
    return build_seconds(result)


def fmt(stats, key, scale=1000.0):
    if key not in stats:
        return "-"
    s = stats[key]
    return f"{s['median'] * scale:8.1f} ({s['min'] * scale:.1f}-{s['max'] * scale:.1f})"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--image", required=True)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "mps", "auto"])
    parser.add_argument("--precision", default="float32", choices=["float32", "bfloat16"], help="encoder precision of the fast path")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--reference-repeats", type=int, default=None, help="warm runs of the reference mode (default: --repeats)")
    parser.add_argument("--no-reference", action="store_true", help="skip the reference algorithm")
    parser.add_argument("--json", type=Path, help="write all numbers here")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    loaded = load_model(args.model, args.device, args.precision)
    # the reference algorithm always runs in float32
    reference_model = loaded if args.precision == "float32" else None
    report = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "torch": torch.__version__,
                    "threads": torch.get_num_threads(),
                    "gpu": torch.cuda.get_device_name() if loaded.device == "cuda" else None},
        "model": str(loaded.model_dir), "device": loaded.device, "precision": args.precision, "image": args.image,
        "cold_load_seconds": time.perf_counter() - started, "runs": {},
    }
    print(f"# {report['machine']}  device={loaded.device} precision={args.precision}  model load (cold) {report['cold_load_seconds']:.2f} s", flush=True)
    modes = ["fast"] + ([] if args.no_reference else ["reference"])
    for resolution in args.resolutions:
        settings = GenerateSettings(resolution=resolution, remove_background=False)
        meshes = {}
        for mode in modes:
            reference = mode == "reference"
            if reference and reference_model is None:
                reference_model = load_model(args.model, args.device, "float32")
            model = reference_model if reference else loaded
            repeats = args.reference_repeats if (reference and args.reference_repeats) else args.repeats
            result, cold = run_once(model, args.image, settings, reference)
            warm = []
            for _ in range(repeats):
                result, timings = run_once(model, args.image, settings, reference)
                if mode == "fast":
                    t = transfer_seconds(result)
                    if t is not None:
                        timings["transfer"] = t
                    b = blender_build_seconds(result)
                    if b is not None:
                        timings["blender"] = b
                warm.append(timings)
            meshes[mode] = result
            report["runs"][f"{mode}@{resolution}"] = {"cold": cold, "warm": summarize(warm), "vertices": len(result.vertices),
                                                     "faces": len(result.faces), "peak_rss_mib": peak_rss_mib()}
            stats = report["runs"][f"{mode}@{resolution}"]["warm"]
            print(f"{mode:9s} res {resolution:4d}: " + "  ".join(f"{k} {fmt(stats, k)}" for k in (*STAGES, "transfer", "blender", "total") if k in stats)
                  + f"  ms, median (min-max) of {repeats}; cold total {cold['total'] * 1000:.0f} ms; "
                  + (f"GPU peak {stats['gpu_peak_mib']['median']:.0f} MiB ("
                     + ", ".join(f"{k} {stats['gpu_peak_mib_' + k]['median']:.0f}" for k in STAGES if "gpu_peak_mib_" + k in stats)
                     + "); " if "gpu_peak_mib" in stats else "")
                  + f"RSS peak {peak_rss_mib():.0f} MiB; {len(result.vertices)} vertices", flush=True)
        if "reference" in meshes:
            check = same_mesh(meshes["fast"], meshes["reference"])
            fast, ref = report["runs"][f"fast@{resolution}"]["warm"], report["runs"][f"reference@{resolution}"]["warm"]
            surface = lambda s: sum(s[k]["median"] for k in ("field", "surface", "colors"))  # noqa: E731
            check["speedup_surface"] = surface(ref) / surface(fast)
            check["speedup_total"] = ref["total"]["median"] / fast["total"]["median"]
            report["runs"][f"check@{resolution}"] = check
            print(f"check     res {resolution:4d}: surface extraction x{check['speedup_surface']:.1f}, image to mesh "
                  f"x{check['speedup_total']:.2f} faster; meshes {'MATCH' if check['ok'] else 'DIFFER'} (max vertex distance "
                  f"{check['max_vertex_distance']:.2e}, {check['vertices_beyond_tolerance']} vertices beyond {VERTEX_TOL:g}, max colour difference {check['max_color_difference']}/255, "
                  f"vertices {check['vertices']}, faces {check['faces']})", flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    mismatched = [k for k, v in report["runs"].items() if k.startswith("check@") and not v["ok"]]
    return 1 if mismatched else 0


if __name__ == "__main__":
    sys.exit(main())
