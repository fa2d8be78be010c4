"""`python -m backend views IMAGE --model DIR --out DIR`: the views job from the command line.

    python -m backend views IMAGE --model DIR --out DIR [--elevation DEG] [--steps N] [--guidance G]
        [--seed S] [--no-remove-bg] [--device auto|cpu|cuda|mps] [--precision auto|float32|float16]
    python -m backend views IMAGE --server URL --token-file F --out DIR [options]

--model: a folder holding the Zero123-XL and LoFTR folders (as `make-test-model zero123
OUT` writes them), or each folder given alone (--model Z --model L; a Zero123-XL folder
alone needs --elevation). Writes One-2-3-45's input folder into --out: stage1_8/ and
stage2_8/ (the 40 views as PNGs), pose.json, views.json, contact_sheet.png, input.png.
The options are the views job's own (registry.VIEWS); --elevation turns the estimate off.
"""

import sys
import time
from pathlib import Path

from .bridge.errors import BackendError
from .bridge.options import DEVICES, add_arguments, value_problem, values_given
from .bridge.settings import ViewsSettings
from .families.registry import VIEWS
from .zero123.declaration import ELEVATION, PRECISIONS, job_stages
from .zero123.declaration import ESTIMATE_ELEVATION as ESTIMATE

EXIT_FAILED = 1
EXIT_SETUP = 2
# Every option has its flag, except whether to estimate: --elevation given means "no".
FLAGGED = tuple(option for option in VIEWS.options if option.name != ESTIMATE.name)


def add_parser(commands) -> None:
    views = commands.add_parser("views", help="draw the object in an image from 40 cameras around it (Zero123-XL)",
                                description=__doc__.split("\n\n")[0])
    views.add_argument("image", type=Path, help="the picture (PNG, JPEG, WebP, TIFF, BMP)")
    slots = ", ".join(f"{slot.label} ({slot.hub_repo})" for slot in VIEWS.all_slots())
    views.add_argument("--model", action="append", help=f"a folder holding the views' model folders ({slots}), or "
                       "each folder alone (repeat --model); not with --server")
    views.add_argument("--out", required=True, type=Path, help="output folder: One-2-3-45's input layout")
    add_arguments(views, tuple(option for option in FLAGGED if option.name != ELEVATION.name))
    add_arguments(views, (ELEVATION,), show_defaults=False)  # left out: estimated
    views.add_argument("--device", choices=DEVICES, help="auto (the default) picks CUDA, then MPS, then CPU")
    views.add_argument("--precision", choices=PRECISIONS,
                       help="auto (the default): float16 on CUDA (as One-2-3-45), float32 elsewhere")
    views.add_argument("--server", help="run on this model server (http(s)://host:port of `python -m backend serve`)")
    views.add_argument("--token-file", type=Path, help="the server's access token (with --server)")
    views.add_argument("--ca-file", help="CA certificate that signed an https server's own certificate")



def views_settings(args) -> ViewsSettings:
    """The job's settings from the flags; ValueError naming a refused value."""
    given = values_given(args, FLAGGED)
    problem = value_problem(given, FLAGGED)
    if problem:
        raise ValueError(problem)
    return ViewsSettings(**given, **{ESTIMATE.name: ESTIMATE.default and args.views_elevation is None})


def model_argument(models: list):
    """One --model as it is; several as {slot id: folder}, each matched to its slot."""
    if len(models) == 1:
        return models[0]
    from .families.registry import slot_holding

    folders, wanted = {}, VIEWS.all_slots()
    for model in models:
        held = slot_holding(Path(model).expanduser())
        if held is None or held[2] not in wanted:
            names = " or ".join(slot.described for slot in wanted)
            raise ValueError(f"--model {model} is not {names}")
        folders[held[2].identifier] = model
    return folders


def argument_problem(args) -> str | None:
    from .output_folder import output_problem

    if args.server:
        if args.model or args.device or args.precision:
            return "--model, --device and --precision are the server's own: leave them out with --server"
        if args.token_file is None:
            return "--server needs --token-file: the file with the server's access token"
    elif not args.model:
        return "give --model (the views' model folders), or --server URL --token-file F"
    elif args.token_file or args.ca_file:
        return "--token-file and --ca-file go with --server"
    return output_problem(args.out)


class _Progress:
    """One line of overall progress on stderr, weighted by the job's stages."""

    def __init__(self, stages: tuple):
        from tqdm import tqdm

        weights = {stage.name: stage.weight for stage in VIEWS.stages}
        self.stages, self.weights = stages, weights
        self.total = sum(weights[name] for name in stages)
        self.bar = tqdm(total=100, unit="%", file=sys.stderr, dynamic_ncols=True, bar_format="{l_bar}{bar}| {elapsed}")

    def __call__(self, stage: str, fraction: float) -> None:
        done = sum(self.weights[name] for name in self.stages[:self.stages.index(stage)]) if stage in self.stages else 0
        self.bar.set_description(stage)
        self.bar.n = round(100 * (done + self.weights.get(stage, 0) * fraction) / self.total)
        self.bar.refresh()

    def close(self):
        self.bar.close()


def _run_local(args, settings, progress):
    from .zero123.job import load_views, run_views
    from .zero123.result import write_views

    loaded = load_views(model_argument(args.model), args.device or "auto", args.precision or "auto",
                        with_loftr=settings.views_estimate_elevation)
    held = ", ".join(f"{slot.label} {loaded.folders[slot.identifier]}" for slot in VIEWS.all_slots()
                     if slot.identifier in loaded.folders)
    print(f"{held} on {loaded.device} ({loaded.precision}), loaded in {loaded.load_seconds:.1f} s", file=sys.stderr)
    result = run_views(loaded, args.image, settings, progress)
    return write_views(result, args.out), result.polar, result.polar_estimated, result.notes, len(result.views)


def _run_on_server(args, settings, progress):
    from .bridge.server_client import ServerClient
    from .bridge.tokens import TokenFileError, read_token_file
    from .bridge.views_files import write_result

    try:
        token = read_token_file(args.token_file)
    except TokenFileError as exc:
        raise BackendError(str(exc)) from None
    with ServerClient(args.server, token, token_source=f"the token file {args.token_file}",
                      ca_file=args.ca_file) as client:
        result = client.run_views(settings, image_path=args.image, on_event=lambda event: event.kind == "progress"
                                  and progress(event.stage, event.fraction))
    return write_result(result, args.out), result.polar, result.polar_estimated, result.notes, len(result.views)


def views_command(args) -> int:
    problem = argument_problem(args)
    try:
        settings = views_settings(args) if problem is None else None
    except ValueError as exc:
        problem = str(exc)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_SETUP
    started = time.perf_counter()
    progress = _Progress(job_stages(settings))
    try:
        out, polar, estimated, notes, count = (_run_on_server if args.server else _run_local)(args, settings, progress)
    except (BackendError, ValueError) as exc:
        progress.close()
        print(f"error: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as exc:  # a full disk, a folder that went away
        progress.close()
        print(f"error: could not write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILED
    progress.close()
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)
    how = "estimated" if estimated else "given" if not settings.views_estimate_elevation else "assumed"
    print(f"{args.image} -> {out}: {count} views, elevation {90 - polar:g} degrees ({how}), seed "
          f"{settings.views_seed}, {time.perf_counter() - started:.1f} s")
    return 0
