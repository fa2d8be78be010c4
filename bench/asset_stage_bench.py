"""The mesh stage alone on smooth synthetic surfaces: how the random checkpoint's busy
surface compares with a smooth object's (the stage's time depends on how many UV
charts the decimated mesh needs, and a real object's smooth surface needs far fewer).

    python bench/asset_stage_bench.py [--device cuda] [--resolution 256] [--repeats 9]
        [--faces 20000] [--texture 1024]

Each shape (tests/mesh_stage/shapes.py: a smooth figure with a ring, a bumpy sphere) is
marching-cubed at --resolution, like the model's raw surface, then timed through
backend.mesh.asset.stage.make_asset, the same stage generate_mesh runs, with a smooth
synthetic colour field standing in for the model's. Prints the median seconds of the
stage and of each step, and the chart count. bench/asset_bench.py times the stage
behind the real job.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "tests" / "mesh_stage"))

import shapes  # noqa: E402 (the tests' synthetic surfaces)

from backend.bridge.settings import GenerateSettings  # noqa: E402
from backend.mesh.asset.stage import make_asset  # noqa: E402

SHAPES = {"figure": shapes.figure_sdf, "bumpy sphere": shapes.bumpy_sphere_sdf}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "mps"])
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--faces", type=int, default=20000)
    parser.add_argument("--texture", type=int, default=1024)
    args = parser.parse_args(argv)
    settings = GenerateSettings(max_faces=args.faces, texture_size=args.texture)
    print(f"device={args.device} resolution={args.resolution} faces={args.faces} texture={args.texture}")
    for name, sdf in SHAPES.items():
        vertices, faces = shapes.marching_cubes_mesh(sdf, args.resolution)
        runs = []
        for _ in range(args.repeats + 1):  # the first is a warm-up
            started = time.perf_counter()
            result = make_asset(vertices, faces, settings, shapes.stripes_color, device=args.device)
            if args.device == "cuda":
                torch.cuda.synchronize()
            runs.append((time.perf_counter() - started, result.timings, result.stats.get("charts")))
        steps = {step: statistics.median(t[step] for _, t, _ in runs[1:]) for step in runs[1][1]}
        total = statistics.median(seconds for seconds, _, _ in runs[1:])
        print(f"{name}: {len(faces):,} raw faces, {runs[-1][2]} charts, stage {total:.3f} s median of {args.repeats} "
              f"(" + ", ".join(f"{step} {seconds:.3f}" for step, seconds in steps.items()) + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
