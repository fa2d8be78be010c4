"""The mesh stage of another checkout against this one's, interleaved in one process.

    python bench/stage_ab.py --before ../main [--model DIR --image IMAGE] [--device cpu]
        [--repeats 5] [--resolution 256] [--faces 20000] [--texture 1024]

The other checkout's `backend` package is copied to a temporary folder and imported as
`backend_before` (its imports are relative), so both stages run alternately in this
process: pairs measured seconds apart, which on a shared machine is the only fair
comparison. Surfaces: with --model, the checkpoint's raw surface of --image (its real
colour field); always the two smooth shapes of bench/asset_stage_bench.py. Prints each
step's median and min for both.
"""

import argparse
import importlib
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "tests" / "mesh_stage"))

import shapes  # noqa: E402

from backend.bridge.settings import GenerateSettings  # noqa: E402
from backend.mesh.asset.stage import make_asset  # noqa: E402


def before_stage(checkout: Path, folder: Path):
    shutil.copytree(checkout / "backend", folder / "backend_before",
                    ignore=shutil.ignore_patterns("__pycache__", "test_models"))
    sys.path.insert(0, str(folder))
    return importlib.import_module("backend_before.mesh.asset.stage").make_asset


def surfaces(args):
    out = {}
    if args.model:
        from backend.pipeline import generate_mesh, load_model
        from backend.triposr.engine import color_field

        loaded = load_model(args.model, args.device)
        raw = generate_mesh(loaded, args.image, GenerateSettings(resolution=args.resolution, remove_background=False))
        pixels = torch.from_numpy(raw.prepared_image).to(loaded.device).float().div(255).unsqueeze(0)
        out["checkpoint"] = (raw.vertices, raw.faces, color_field(loaded.model.field, loaded.model.encode(pixels)[0]))
    for name, sdf in (("figure", shapes.figure_sdf), ("bumpy sphere", shapes.bumpy_sphere_sdf)):
        v, f = shapes.marching_cubes_mesh(sdf, args.resolution)
        out[name] = (v, f, shapes.stripes_color)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="the other checkout (its backend/ is compared)")
    parser.add_argument("--model")
    parser.add_argument("--image")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--faces", type=int, default=20000)
    parser.add_argument("--texture", type=int, default=1024)
    args = parser.parse_args(argv)
    settings = GenerateSettings(max_faces=args.faces, texture_size=args.texture)
    with tempfile.TemporaryDirectory() as folder:
        stages = {"before": before_stage(args.before, Path(folder)), "after": make_asset}
        for name, (v, f, color_at) in surfaces(args).items():
            runs = {label: [] for label in stages}
            for repeat in range(args.repeats + 1):  # the first pair is a warm-up
                for label, stage in stages.items():
                    started = time.perf_counter()
                    result = stage(v, f, settings, color_at, device=args.device)
                    seconds = time.perf_counter() - started
                    if repeat:
                        runs[label].append((seconds, result.timings, result.stats.get("charts")))
            for label, rows in runs.items():
                steps = {k: (statistics.median(r[1][k] for r in rows), min(r[1][k] for r in rows)) for k in rows[0][1]}
                print(f"{name} {label}: stage {statistics.median(r[0] for r in rows):.3f} s, {rows[0][2]} charts; "
                      + ", ".join(f"{k} {m:.3f} (min {lo:.3f})" for k, (m, lo) in steps.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
