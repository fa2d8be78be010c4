"""Benchmark of the mesh stage: the raw job against the asset job, in one process, and
the asset's quality.

    python bench/asset_bench.py --model DIR --image IMAGE [--device cpu|cuda] [--resolution 256]
        [--repeats 3] [--faces 20000] [--texture 1024] [--smooth 0] [--no-normal-map]
        [--no-quality] [--json OUT]

Both jobs go through backend.pipeline.generate_mesh, the one job function, from the
same image: "raw" with the default options (the raw surface), "asset" with the mesh
stage's options. Per repeat (after one warm-up of each, not counted) it runs one of
each, alternating, and prints every stage's seconds (median, min-max), the asset
stage's own seconds (clean-up to bake, all on `--device`) and the ratio of the asset
job to the raw job: ratios from one run are what compare across machines and loads.
Then the quality of the last asset result (bench/asset_quality.py): the decimated
surface against the raw one with its floaters removed, the texture against the colour
field, the normal map's shading against the dense surface's.
"""

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from backend.bridge.settings import STAGES, GenerateSettings  # noqa: E402
from backend.mesh.asset.stage import STEP_STAGES  # noqa: E402
from backend.pipeline import generate_mesh, load_model  # noqa: E402
from backend.triposr.engine import color_field  # noqa: E402

ASSET_STEPS = tuple(STEP_STAGES)  # cleanup .. bake_normals: the stage's own timings


def spread(values) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def timed_job(loaded, image, settings) -> tuple:
    if loaded.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    result = generate_mesh(loaded, image, settings)
    timings = dict(result.timings, total=time.perf_counter() - started)
    if loaded.device == "cuda":
        timings["gpu_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    if "cleanup" in timings:  # the asset job: its stage's own seconds
        timings["asset_stage"] = sum(timings.get(step, 0.0) for step in ASSET_STEPS)
    return result, timings


def quality(loaded, raw, asset) -> dict:
    """Distances, colour and shading of `asset` (bench/asset_quality.py says how)."""
    from asset_quality import color_errors, shading_errors, surface_distances

    from backend.mesh.asset.cleanup import compact, floater_faces

    v, f = torch.from_numpy(raw.vertices), torch.from_numpy(raw.faces).long()
    dense_v, dense_f, _ = compact(v, f, floater_faces(v, f))
    dense_v, dense_f = dense_v.numpy(), dense_f.numpy()
    out = {"distance_to_cleaned_raw": surface_distances(asset.vertices, asset.faces, dense_v, dense_f),
           "distance_to_raw": surface_distances(asset.vertices, asset.faces, raw.vertices, raw.faces)}
    if asset.base_color is not None:
        pixels = torch.from_numpy(asset.prepared_image).to(loaded.device).float().div(255.0).unsqueeze(0)
        field_colors = color_field(loaded.model.field, loaded.model.encode(pixels)[0])
        out["colour"] = color_errors(asset, lambda points: field_colors(points.to(loaded.device)).cpu())
    if asset.normal_map is not None:
        out["shading"] = shading_errors(asset, dense_v, dense_f)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--image", required=True)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "mps", "auto"])
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--faces", type=int, default=20000)
    parser.add_argument("--texture", type=int, default=1024)
    parser.add_argument("--smooth", type=int, default=0)
    parser.add_argument("--no-normal-map", action="store_true")
    parser.add_argument("--no-quality", action="store_true", help="timings only (the quality needs scipy)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    loaded = load_model(args.model, args.device)
    raw_settings = GenerateSettings(resolution=args.resolution, remove_background=False)
    asset_settings = GenerateSettings(resolution=args.resolution, remove_background=False, max_faces=args.faces,
                                      texture_size=args.texture, smooth_iterations=args.smooth,
                                      normal_map=not args.no_normal_map)
    machine = {"platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads(),
               "gpu": torch.cuda.get_device_name() if loaded.device == "cuda" else None}
    print(f"# {machine} device={loaded.device} resolution={args.resolution} options={asset_settings.to_dict()}", flush=True)
    samples = {"raw": [], "asset": []}
    for repeat in range(args.repeats + 1):  # the first of each is a warm-up, not counted
        for mode, settings in (("raw", raw_settings), ("asset", asset_settings)):
            result, timings = timed_job(loaded, args.image, settings)
            if repeat:
                samples[mode].append(timings)
            if mode == "raw":
                raw = result
            else:
                asset = result
            shown = ", ".join(f"{k} {v:.3f}" for k, v in timings.items())
            print(f"run {repeat}{' (warm-up)' if not repeat else ''} {mode}: {shown}", flush=True)
    report = {"machine": machine, "device": loaded.device, "resolution": args.resolution, "image": args.image,
              "options": asset_settings.to_dict(), "runs": {}}
    for mode, rows in samples.items():
        report["runs"][mode] = {key: spread([row[key] for row in rows]) for key in rows[0]}
    pairs = list(zip(samples["raw"], samples["asset"]))
    report["ratio"] = spread([a["total"] / r["total"] for r, a in pairs])
    # the same ratio from the raw job's own run: it, less its vertex colours (the asset
    # job colours only its final vertices), plus the stage. The encoder's seconds swing
    # by 2x between two runs on a loaded machine; this leaves them out of the comparison.
    report["ratio_within_run"] = spread([(r["total"] - r["colors"] + a["asset_stage"]) / r["total"] for r, a in pairs])
    report["mesh"] = {"raw_vertices": len(raw.vertices), "raw_faces": len(raw.faces), "asset_vertices": len(asset.vertices),
                      "asset_faces": len(asset.faces)}
    print("\n| job | stage | median s | min-max |\n| --- | --- | --- | --- |")
    for mode, stats in report["runs"].items():
        for key in dict.fromkeys((*STAGES, *ASSET_STEPS, "asset_stage", "total", "gpu_peak_mib")):
            if key in stats:
                s = stats[key]
                print(f"| {mode} | {key} | {s['median']:.3f} | {s['min']:.3f}-{s['max']:.3f} |")
    ratio, within = report["ratio"], report["ratio_within_run"]
    print(f"\nasset job / raw job: {ratio['median']:.3f} ({ratio['min']:.3f}-{ratio['max']:.3f}); within the raw run "
          f"(raw - its colours + the stage) / raw: {within['median']:.3f} ({within['min']:.3f}-{within['max']:.3f}); "
          f"asset stage {report['runs']['asset']['asset_stage']['median']:.3f} s; {report['mesh']}", flush=True)
    if not args.no_quality:
        report["quality"] = quality(loaded, raw, asset)
        print(json.dumps(report["quality"], indent=1), flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
