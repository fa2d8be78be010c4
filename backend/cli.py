"""`python -m backend ...`: images or text prompts to mesh files from the command line, the
model server, and test models.

    python -m backend generate IMAGE... --model DIR --out DIR [options]
    python -m backend generate --prompt TEXT [--prompt TEXT ...] [--prompts FILE] --model DIR --out DIR [options]
    python -m backend generate IMAGE... --prompt TEXT --model DIR --out DIR [options]   (a family whose image
                                                                                        jobs take a prompt)
    python -m backend generate IMAGE... --server URL --token-file F --out DIR [options]
    python -m backend serve --model DIR [--model DIR ...] [--host H --port P --token-file F ...]   (docs/server.md)
    python -m backend views IMAGE --model DIR --out DIR [--elevation DEG] [--steps N] [--seed S]   (cli_views.py)
    python -m backend make-test-model FAMILY OUT_DIR [--size SIZE] [--variant text|image|both] [--seed 0]

The model family comes from --family, else from the model folder (or the official hub
id), else the first registered family that starts from the input (TripoSR for images,
Shap-E for prompts). Every family of the registry (backend/families/registry.py) has its
flags, its models and its test models here; none is named in this module.
"""

import argparse
import sys
import time
from pathlib import Path

from .bridge.errors import BackendError
from .bridge.options import (
    DEVICES,
    FAMILIES,
    FAMILIES_BY_NAME,
    JOB_OPTIONS,
    PRECISIONS,
    TASKS,
    add_arguments,
    check_family_takes,
    flags_not_used,
    prompt_with_image_problem,
    value_problem,
    values_given,
)
from .bridge.prompts import clean_prompt, prompt_name, read_prompts
from .bridge.settings import GenerateSettings
from .families.registry import EXTRA_JOBS
from .mesh.export import FORMATS
from .output_folder import output_problem

EXIT_FAILED_IMAGES = 1
EXIT_SETUP = 2
EXIT_INTERRUPTED = 130  # the shell's convention for Ctrl+C
# make-test-model NAME: every family's test models, and the extra jobs' (the views')
TEST_MODEL_FAMILIES = {owner.command_name: owner for owner in (*FAMILIES, *EXTRA_JOBS)}


def _models_help() -> str:
    """Each family's official models, for --model's help."""
    return ", ".join(f"{slot.hub_repo} ({slot.label}: {slot.contents})" for family in FAMILIES
                     for slot in family.all_slots())


def build_parser() -> argparse.ArgumentParser:
    labels = " and ".join(family.label for family in FAMILIES)
    parser = argparse.ArgumentParser(prog="python -m backend", description=f"{labels}: images or text prompts to 3D meshes.")
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="turn images or text prompts into coloured meshes")
    gen.add_argument("images", nargs="*", type=Path, help="input images (PNG, JPEG, WebP, TIFF, BMP)")
    text_families = " or ".join(family.label for family in FAMILIES if "text" in family.tasks)
    with_images = " or ".join(family.label for family in FAMILIES if family.prompt_with_image)
    gen.add_argument("--prompt", action="append", default=[],
                     help=f"a text prompt ({text_families}); repeat for more objects"
                          + (f"; with images, the one prompt of every image ({with_images})" if with_images else ""))
    gen.add_argument("--prompts", type=Path, help="a text file of prompts, one object per line (# starts a comment)")
    gen.add_argument("--model", help=f"model folder or hub id: {_models_help()}; a folder holding model folders "
                                     "for a family that needs several; not with --server: the server has its own")
    gen.add_argument("--out", required=True, type=Path, help="output folder; writes <image stem>.<format>")
    gen.add_argument("--format", default="glb", choices=FORMATS,
                     help="mesh file format (default glb); with --texture, glb embeds the textures, obj writes "
                          ".mtl and .png files beside it, ply keeps vertex colours")
    add_arguments(gen, JOB_OPTIONS)
    gen.add_argument("--device", choices=DEVICES, help="auto (the default) picks CUDA, then MPS, then CPU")
    gen.add_argument("--precision", choices=PRECISIONS,
                     help="float32 (the default) matches the references; bfloat16 runs the networks that "
                          "dominate a job's time faster, less exact (see README)")
    gen.add_argument("--server", help="run on this model server (http(s)://host:port of `python -m backend serve`)")
    gen.add_argument("--token-file", type=Path, help="the server's access token (with --server)")
    gen.add_argument("--ca-file", help="CA certificate that signed an https server's own certificate")

    serve = commands.add_parser("serve", help="serve the model over an authenticated HTTP API (Ray Serve)")
    from .server.cli import add_arguments as add_serve_arguments  # no Ray imported here

    add_serve_arguments(serve)

    from .cli_views import add_parser as add_views_parser

    add_views_parser(commands)

    make = commands.add_parser("make-test-model", help="write a random-weight model folder (tests, demos)")
    make.add_argument("family", choices=tuple(TEST_MODEL_FAMILIES))
    make.add_argument("out_dir", type=Path)
    make.add_argument("--size", choices=sorted({size for f in FAMILIES for size in f.test_model_sizes}),
                      help="; ".join(f"{name}: {', '.join(f.test_model_sizes)} (default {f.test_model_sizes[0]})"
                                     for name, f in TEST_MODEL_FAMILIES.items()))
    make.add_argument("--variant", choices=(*TASKS, "both"), default="both",
                      help="for a family that takes several inputs: the models for one of them, or for all (default)")
    make.add_argument("--seed", type=int, default=0)
    return parser


def output_paths(sources: list, out: Path, fmt: str) -> list[Path]:
    """<out>/<stem>.<format> per image (a prompt: its first words); sources that share a
    stem (in any letter case) get _2, _3, ... so that no output overwrites another of the
    same run. write_mesh then moves off names that exist already."""
    from .bridge.file_names import name_key

    taken, paths = set(), []
    for source in sources:
        stem = source.stem if isinstance(source, Path) else prompt_name(source).replace(" ", "_")
        name, number = f"{stem}.{fmt}", 1
        while name_key(name) in taken:
            number += 1
            name = f"{stem}_{number}.{fmt}"
        taken.add(name_key(name))
        paths.append(out / name)
    return paths


def argument_problem(args) -> str | None:
    """What is wrong with how generate was asked for, before any work; None if nothing."""
    if not args.images and not (args.prompt or args.prompts):
        return "give images or text prompts (--prompt, --prompts)"
    if args.images and (args.prompts or len(args.prompt) > 1):
        return ("images take at most one --prompt (a family whose image jobs take one applies it to every image); "
                "--prompts is for text jobs")
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


def job_kind(args) -> tuple[str, str]:
    """(family, task) of this run: --family, else the model folder's (or hub id's) family,
    else Shap-E for prompts and TripoSR for images; WrongModelError when they disagree."""
    from .model_folder import family_for_job

    task = "image" if args.images else "text"
    family = family_for_job(task, args.family, args.model)
    check_family_takes(family, task)
    return family, task


def image_prompt(args, family: str, task: str) -> str | None:
    """The prompt that goes with every image (a family whose image jobs take one), checked;
    ValueError when the family takes none, or needs one and none was given."""
    if task != "image":
        return None
    prompt = clean_prompt(args.prompt[0]) if args.prompt else None
    problem = prompt_with_image_problem(family, True, prompt is not None)
    if problem:
        raise ValueError(problem + (" (--prompt TEXT)" if prompt is None else ""))
    return prompt


def job_sources(args) -> tuple[list, list]:
    """(the sources to run: image paths or prompts, failures found already: (label, message))."""
    if args.images:
        return list(args.images), []
    sources, failures = [], []
    for prompt in args.prompt:
        sources.append(clean_prompt(prompt))  # PromptError: the whole run is wrong
    if args.prompts:
        for line in read_prompts(args.prompts):
            if line.problem:
                failures.append((f"{args.prompts} {line.label}", line.problem))
            else:
                sources.append(line.text)
    return sources, failures


def local_runner(args, family: str, task: str):
    """(job function, what it runs on) in this process: the model loaded once."""
    # torch is imported here, not at module level, so `--help` answers at once
    from .pipeline import generate_mesh, load_model

    loaded = load_model(args.model, args.device or "auto", args.precision or "float32", family, task)
    where = (f"{FAMILIES_BY_NAME[family].label} model {loaded.model_dir} on {loaded.device} ({loaded.precision}), "
             f"loaded in {loaded.load_seconds:.1f} s")
    slow_here = FAMILIES_BY_NAME[family].notes.get("cpu") if loaded.device != "cuda" else None
    if slow_here:  # said before the first job starts (One-2-3-45's views on a CPU)
        where += f"\nnote: {FAMILIES_BY_NAME[family].label} on {loaded.device}: {slow_here}"

    def run(source, settings, progress, detail, prompt=None):
        if isinstance(source, str):
            return generate_mesh(loaded, None, settings, progress=progress, prompt=source, detail=detail)
        return generate_mesh(loaded, source, settings, progress=progress, prompt=prompt, detail=detail)

    return run, where


def server_runner(args, family: str, task: str):
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

    def run(source, settings, progress, detail, prompt=None):
        def on_event(event):
            if event.kind == "progress" and event.detail:
                detail(event.stage, event.fraction, event.detail)
            elif event.kind == "progress":
                progress(event.stage, event.fraction)

        if isinstance(source, str):
            return client.run(settings, prompt=source, on_event=on_event)
        return client.run(settings, image_path=source, prompt=prompt, on_event=on_event)

    return run, where


def job_settings(args) -> tuple[GenerateSettings, str, str]:
    """(settings, family, task); ValueError or BackendError saying what is wrong."""
    family, task = job_kind(args)
    image_prompt(args, family, task)  # a prompt with images only for a family that takes one
    unused = flags_not_used(args, JOB_OPTIONS, family, task)
    if unused:
        raise ValueError(f"{', '.join(unused)}: not used by {FAMILIES_BY_NAME[family].label} "
                         f"{'text' if task == 'text' else 'image'} jobs")
    given = values_given(args, JOB_OPTIONS, family, task)
    problem = value_problem(given, JOB_OPTIONS)
    if problem:
        raise ValueError(problem)
    return GenerateSettings(**{**given, "family": family}), family, task


def generate_command(args) -> int:
    from .mesh.export import write_mesh

    problem = argument_problem(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_SETUP
    try:
        settings, family, task = job_settings(args)
        sources, failures = job_sources(args)
        prompt = image_prompt(args, family, task)
        run_job, where = server_runner(args, family, task) if args.server else local_runner(args, family, task)
    except (BackendError, ValueError) as exc:
        print(f"error: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return EXIT_SETUP
    print(where, file=sys.stderr)

    from tqdm import tqdm

    unit = "prompt" if task == "text" else "image"
    total = len(sources) + len(failures)  # a prompts file's bad lines have failed already
    bar = tqdm(total=len(sources), unit=unit, file=sys.stderr, dynamic_ncols=True)
    for label, message in failures:
        bar.write(f"FAILED {label}: {message}", file=sys.stderr)
    for source, destination in zip(sources, output_paths(sources, args.out, args.format)):
        label = repr(source) if task == "text" else str(source)
        bar.set_description(prompt_name(source, 20) if task == "text" else source.name)
        started = time.perf_counter()
        try:
            result = run_job(
                source, settings, lambda stage, fraction: bar.set_postfix_str(f"{stage} {fraction:4.0%}", refresh=False),
                lambda stage, fraction, text: bar.set_postfix_str(text, refresh=True), prompt,
            )
            written = write_mesh(destination, result.vertices, result.faces, result.colors, result.uvs,
                                 result.base_color, result.normal_map)
        except BackendError as exc:
            failures.append((label, exc.message))
            bar.write(f"FAILED {label}: {exc.message}", file=sys.stderr)
        except OSError as exc:  # a full disk, a folder that went away
            message = f"could not write {destination}: {exc.strerror or exc}"
            failures.append((label, message))
            bar.write(f"FAILED {label}: {message}", file=sys.stderr)
        else:
            for note in result.notes:
                bar.write(f"warning: {label}: {note}", file=sys.stderr)
            seed_option = FAMILIES_BY_NAME[family].seed_option
            seed = f"seed {getattr(settings, seed_option)}, " if seed_option else ""
            textures = f"{len(result.base_color)} px textures, " if result.base_color is not None else ""
            bar.write(
                f"{label} -> {written}: {len(result.vertices)} vertices, {len(result.faces)} faces, {seed}{textures}"
                f"{time.perf_counter() - started:.2f} s"
            )
        bar.update(1)
    bar.close()
    if failures:
        print(f"{len(failures)} of {total} {unit}s failed:", file=sys.stderr)
        for label, message in failures:
            print(f"  {label}: {message}", file=sys.stderr)
        return EXIT_FAILED_IMAGES
    return 0


def make_test_model_command(args) -> int:
    family = TEST_MODEL_FAMILIES[args.family]
    sizes = family.test_model_sizes
    size = args.size or sizes[0]
    if size not in sizes:
        print(f"error: --size for {args.family} is one of {', '.join(sizes)}", file=sys.stderr)
        return EXIT_SETUP
    tasks = family.tasks if args.variant == "both" else (args.variant,)
    if not set(tasks) <= set(family.tasks):
        print(f"error: {family.label} takes {' and '.join(family.tasks)}, not {args.variant}", file=sys.stderr)
        return EXIT_SETUP
    try:
        made = family.test_models(args.out_dir, size, args.seed, tasks)
    except ImportError:  # the extension zip leaves the test models out
        print("error: the test models are not part of the installed extension: run this from the "
              "project's source tree", file=sys.stderr)
        return EXIT_SETUP
    labels = {slot.identifier: slot.label for slot in family.all_slots()}
    for slot_id, folder in made.items():
        print(f"random-weight {labels[slot_id]} (meaningless shapes) in {folder}")
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "generate":
            return generate_command(args)
        if args.command == "make-test-model":
            return make_test_model_command(args)
        if args.command == "views":
            from .cli_views import views_command

            return views_command(args)
        if args.command == "serve":
            from .server.cli import serve_command

            return serve_command(args)
    except KeyboardInterrupt:  # what was written stays; a half-written file is removed
        print("\ninterrupted (Ctrl+C)", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_SETUP


if __name__ == "__main__":
    sys.exit(main())
