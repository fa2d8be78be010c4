"""`python -m backend ...`: images to mesh files from the command line, and test models.

    python -m backend generate IMAGE... --model DIR --out DIR [options]
    python -m backend make-test-model triposr OUT_DIR [--size smoke|official] [--seed 0]
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

from .bridge.errors import BackendError
from .bridge.options import DEVICES, JOB_OPTIONS, PRECISIONS, add_arguments, value_problem, values_given
from .bridge.settings import GenerateSettings
from .mesh.export import FORMATS

EXIT_FAILED_IMAGES = 1
EXIT_SETUP = 2
EXIT_INTERRUPTED = 130  # the shell's convention for Ctrl+C
TEST_MODEL_FAMILIES = ("triposr",)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m backend", description="TripoSR: single image to 3D mesh.")
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="turn images into coloured meshes")
    gen.add_argument("images", nargs="+", type=Path, help="input images (PNG, JPEG, WebP, TIFF, BMP)")
    gen.add_argument("--model", required=True, help="model folder (config.yaml + model.ckpt) or hub id, e.g. stabilityai/TripoSR")
    gen.add_argument("--out", required=True, type=Path, help="output folder; writes <image stem>.<format>")
    gen.add_argument("--format", default="glb", choices=FORMATS,
                     help="mesh file format (default glb); with --texture, glb embeds the textures, obj writes "
                          ".mtl and .png files beside it, ply keeps vertex colours")
    add_arguments(gen, JOB_OPTIONS)
    gen.add_argument("--device", default="auto", choices=DEVICES, help="auto picks CUDA, then MPS, then CPU")
    gen.add_argument("--precision", default="float32", choices=PRECISIONS,
                     help="encoder precision: float32 matches the reference; bfloat16 is faster, less exact (see README)")

    make = commands.add_parser("make-test-model", help="write a random-weight model folder (tests, demos)")
    make.add_argument("family", choices=TEST_MODEL_FAMILIES)
    make.add_argument("out_dir", type=Path)
    make.add_argument("--size", choices=("smoke", "official"), default="smoke",
                      help="smoke: a few MB; official: the official layout and sizes (1.7 GB)")
    make.add_argument("--seed", type=int, default=0)
    return parser


def output_problem(out: Path) -> str | None:
    """Why --out cannot take the meshes, found before the model runs; None when it can."""
    if out.exists() and not out.is_dir():
        return f"--out {out} is a file: give a folder (it is created when missing)"
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        return f"--out {out} cannot be written: {exc.strerror or exc}"
    return None


def output_paths(images: list[Path], out: Path, fmt: str) -> list[Path]:
    """<out>/<stem>.<format> per image; images that share a stem get _2, _3, ... so that
    no output overwrites another of the same run."""
    taken, paths = set(), []
    for image in images:
        name, number = f"{image.stem}.{fmt}", 1
        while name in taken:
            number += 1
            name = f"{image.stem}_{number}.{fmt}"
        taken.add(name)
        paths.append(out / name)
    return paths


def generate_command(args) -> int:
    # torch is imported here, not at module level, so `--help` answers at once
    from .mesh.export import write_mesh
    from .pipeline import generate_mesh, load_model

    given = values_given(args, JOB_OPTIONS)
    problem = value_problem(given, JOB_OPTIONS)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_SETUP
    settings = GenerateSettings(**given)
    problem = output_problem(args.out)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_SETUP
    try:
        loaded = load_model(args.model, args.device, args.precision)
    except BackendError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_SETUP
    print(f"model {loaded.model_dir} on {loaded.device} ({loaded.precision}), loaded in {loaded.load_seconds:.1f} s", file=sys.stderr)

    from tqdm import tqdm

    failures = []
    bar = tqdm(total=len(args.images), unit="image", file=sys.stderr, dynamic_ncols=True)
    for image, destination in zip(args.images, output_paths(args.images, args.out, args.format)):
        bar.set_description(image.name)
        started = time.perf_counter()
        try:
            result = generate_mesh(
                loaded, image, settings,
                progress=lambda stage, fraction: bar.set_postfix_str(f"{stage} {fraction:4.0%}", refresh=False),
            )
            written = write_mesh(destination, result.vertices, result.faces, result.colors, result.uvs,
                                 result.base_color, result.normal_map)
        except BackendError as exc:
            failures.append((image, exc.message))
            bar.write(f"FAILED {image}: {exc.message}", file=sys.stderr)
        except OSError as exc:  # a full disk, a folder that went away
            message = f"could not write {destination}: {exc.strerror or exc}"
            failures.append((image, message))
            bar.write(f"FAILED {image}: {message}", file=sys.stderr)
        else:
            for note in result.notes:
                bar.write(f"warning: {image}: {note}", file=sys.stderr)
            textures = f"{len(result.base_color)} px textures, " if result.base_color is not None else ""
            bar.write(
                f"{image} -> {written}: {len(result.vertices)} vertices, {len(result.faces)} faces, {textures}"
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


def make_test_model_command(args) -> int:
    try:
        from .test_models import triposr
    except ImportError:  # the extension zip leaves the test models out
        print("error: the test models are not part of the installed extension: run this from the "
              "project's source tree", file=sys.stderr)
        return EXIT_SETUP
    folder = triposr.make_smoke_checkpoint(args.out_dir, args.size, args.seed)
    print(f"random-weight TripoSR model (meaningless shapes) in {folder}")
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "generate":
            return generate_command(args)
        if args.command == "make-test-model":
            return make_test_model_command(args)
    except KeyboardInterrupt:  # what was written stays; a half-written file is removed
        print("\ninterrupted (Ctrl+C)", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_SETUP


if __name__ == "__main__":
    sys.exit(main())
