"""`python -m backend generate ...`: images to mesh files from the command line."""

import argparse
import sys
import time
from pathlib import Path

from tqdm import tqdm

from .devices import CHOICES as DEVICE_CHOICES
from .errors import BackendError
from .export import FORMATS
from .settings import DEFAULT_FOREGROUND_RATIO, DEFAULT_RESOLUTION, DEFAULT_THRESHOLD, GenerateSettings

EXIT_FAILED_IMAGES = 1
EXIT_SETUP = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m backend", description="TripoSR: single image to 3D mesh.")
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="turn images into coloured meshes")
    gen.add_argument("images", nargs="+", type=Path, help="input images (PNG, JPEG, WebP, TIFF, BMP)")
    gen.add_argument("--model", required=True, help="model folder (config.yaml + model.ckpt) or hub id, e.g. stabilityai/TripoSR")
    gen.add_argument("--out", required=True, type=Path, help="output folder; writes <image stem>.<format>")
    gen.add_argument("--format", default="glb", choices=FORMATS, help="mesh file format (default glb)")
    gen.add_argument("--resolution", type=int, default=DEFAULT_RESOLUTION, help="marching-cubes grid size (default %(default)s)")
    gen.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD, help="density iso-level (default %(default)s)")
    gen.add_argument("--foreground-ratio", type=float, default=DEFAULT_FOREGROUND_RATIO, help="share of the frame the object fills (default %(default)s)")
    gen.add_argument("--no-remove-bg", action="store_true", help="use opaque images as they are (no rembg)")
    gen.add_argument("--device", default="auto", choices=DEVICE_CHOICES, help="auto picks CUDA, then MPS, then CPU")
    gen.add_argument("--precision", default="float32", choices=["float32", "bfloat16"],
                     help="encoder precision: float32 matches the reference; bfloat16 is faster, less exact (see README)")
    return parser


def generate_command(args) -> int:
    # torch is imported here, not at module level, so `--help` answers at once
    from .export import write_mesh
    from .pipeline import generate_mesh, load_model

    try:
        settings = GenerateSettings(
            resolution=args.resolution,
            threshold=args.threshold,
            foreground_ratio=args.foreground_ratio,
            remove_background=not args.no_remove_bg,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_SETUP
    try:
        loaded = load_model(args.model, args.device, args.precision)
    except BackendError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_SETUP
    print(f"model {loaded.model_dir} on {loaded.device} ({loaded.precision}), loaded in {loaded.load_seconds:.1f} s", file=sys.stderr)

    failures = []
    bar = tqdm(total=len(args.images), unit="image", file=sys.stderr, dynamic_ncols=True)
    for image in args.images:
        bar.set_description(image.name)
        started = time.perf_counter()
        try:
            result = generate_mesh(
                loaded, image, settings,
                progress=lambda stage, fraction: bar.set_postfix_str(f"{stage} {fraction:4.0%}", refresh=False),
            )
            written = write_mesh(args.out / f"{image.stem}.{args.format}", result.vertices, result.faces, result.colors)
        except BackendError as exc:
            failures.append((image, exc.message))
            bar.write(f"FAILED {image}: {exc.message}", file=sys.stderr)
        else:
            bar.write(
                f"{image} -> {written}: {len(result.vertices)} vertices, {len(result.faces)} faces, "
                f"{time.perf_counter() - started:.2f} s"
            )
        bar.update(1)
    bar.close()
    if failures:
        print(f"{len(failures)} of {len(args.images)} images failed:", file=sys.stderr)
        for image, message in failures:
            print(f"  {image}: {message}", file=sys.stderr)
        return EXIT_FAILED_IMAGES
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "generate":
        return generate_command(args)
    return EXIT_SETUP


if __name__ == "__main__":
    sys.exit(main())
