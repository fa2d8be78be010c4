"""`python -m backend ...`: images to mesh files from the command line, the model server,
and test models.

    python -m backend generate IMAGE... --model DIR --out DIR [options]
    python -m backend generate IMAGE... --server URL --token-file F --out DIR [options]
    python -m backend serve --model DIR [--host H --port P --token-file F ...]   (docs/server.md)
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
    gen.add_argument("--model", help="model folder (config.yaml + model.ckpt) or hub id, e.g. stabilityai/TripoSR "
                                     "(not with --server: the server has its own)")
    gen.add_argument("--out", required=True, type=Path, help="output folder; writes <image stem>.<format>")
    gen.add_argument("--format", default="glb", choices=FORMATS,
                     help="mesh file format (default glb); with --texture, glb embeds the textures, obj writes "
                          ".mtl and .png files beside it, ply keeps vertex colours")
    add_arguments(gen, JOB_OPTIONS)
    gen.add_argument("--device", choices=DEVICES, help="auto (the default) picks CUDA, then MPS, then CPU")
    gen.add_argument("--precision", choices=PRECISIONS,
                     help="encoder precision: float32 (the default) matches the reference; bfloat16 is faster, "
                          "less exact (see README)")
    gen.add_argument("--server", help="run on this model server (http(s)://host:port of `python -m backend serve`)")
    gen.add_argument("--token-file", type=Path, help="the server's access token (with --server)")
    gen.add_argument("--ca-file", help="CA certificate that signed an https server's own certificate")

    serve = commands.add_parser("serve", help="serve the model over an authenticated HTTP API (Ray Serve)")
    from .server.cli import add_arguments as add_serve_arguments  # no Ray imported here

    add_serve_arguments(serve)

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


def argument_problem(args) -> str | None:
    """What is wrong with how generate was asked for, before any work; None if nothing."""
    if args.server:
        if args.model or args.device or args.precision:
            return ("--model, --device and --precision are the server's own (python -m backend serve ...): "
                    "leave them out with --server")
        if args.token_file is None:
            return "--server needs --token-file: the file with the server's access token"
    elif not args.model:
        return "give --model (a model folder or hub id), or --server URL --token-file F"
    elif args.token_file or args.ca_file:
        return "--token-file and --ca-file go with --server"
    return output_problem(args.out)


def local_runner(args):
    """(job function, what it runs on) in this process: the model loaded once."""
    # torch is imported here, not at module level, so `--help` answers at once
    from .pipeline import generate_mesh, load_model

    loaded = load_model(args.model, args.device or "auto", args.precision or "float32")
    where = f"model {loaded.model_dir} on {loaded.device} ({loaded.precision}), loaded in {loaded.load_seconds:.1f} s"
    return (lambda image, settings, progress: generate_mesh(loaded, image, settings, progress=progress)), where


def server_runner(args):
    """(job function, what it runs on) on a model server: the same jobs over HTTP."""
    from .bridge.server_client import ServerClient
    from .bridge.tokens import TokenFileError, read_token_file

    try:
        token = read_token_file(args.token_file)
    except TokenFileError as exc:
        raise BackendError(str(exc)) from None
    client = ServerClient(args.server, token, token_source=f"the token file {args.token_file}", ca_file=args.ca_file)
    info = client.api.version()  # an unreachable server or a wrong token fails here, before any image
    model = info.get("model", {})
    where = f"server {client.url}: model {model.get('model')} on {info.get('replicas')} {model.get('device')} replica(s)"

    def run(image, settings, progress):
        def on_event(event):
            if event.kind == "progress":
                progress(event.stage, event.fraction)

        return client.run(settings, image_path=image, on_event=on_event)

    return run, where


def generate_command(args) -> int:
    from .mesh.export import write_mesh

    given = values_given(args, JOB_OPTIONS)
    problem = value_problem(given, JOB_OPTIONS)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_SETUP
    settings = GenerateSettings(**given)
    problem = argument_problem(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_SETUP
    try:
        run_job, where = server_runner(args) if args.server else local_runner(args)
    except (BackendError, ValueError) as exc:
        print(f"error: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return EXIT_SETUP
    print(where, file=sys.stderr)

    from tqdm import tqdm

    failures = []
    bar = tqdm(total=len(args.images), unit="image", file=sys.stderr, dynamic_ncols=True)
    for image, destination in zip(args.images, output_paths(args.images, args.out, args.format)):
        bar.set_description(image.name)
        started = time.perf_counter()
        try:
            result = run_job(
                image, settings, lambda stage, fraction: bar.set_postfix_str(f"{stage} {fraction:4.0%}", refresh=False),
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
        if args.command == "serve":
            from .server.cli import serve_command

            return serve_command(args)
    except KeyboardInterrupt:  # what was written stays; a half-written file is removed
        print("\ninterrupted (Ctrl+C)", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_SETUP


if __name__ == "__main__":
    sys.exit(main())
