"""Make-It-3D's cost: seconds per iteration of each stage, the total at the defaults, peak
GPU memory; from TripoSR's start (ours) and, beside it, from an empty field (the paper's).

    python bench/make_it_3d_bench.py --device cuda [--models DIR] [--triposr DIR]
        [--sd DIR --clip DIR --depth DIR] [--precision auto|float32|bfloat16|float16]
        [--coarse N --refine N] [--paper-sample C R] [--paper-full] [--skip-paper]
        [--size full|tiny] [--json FILE]

Without real weights it makes full-size random folders in --models when they are not
there yet (backend/test_models/make_it_3d.py: SD 2 base, CLIP ViT-L/14, DPT-Hybrid, 7.4
GB; and an official-size random TripoSR, 1.7 GB): the networks cost what the real ones
do; the shapes and textures are noise. The picture is assets/example.png.

Cases:
- "triposr": the whole job (backend.make_it_3d.job.refine) at the options' defaults (or
  --coarse/--refine), from TripoSR's scene codes for the picture, timed end to end (the
  models already loaded; TripoSR's encode included). Target: <= 300 s, peak < 24 GB.
- "paper": an empty start with the paper's schedule (7000 coarse, 3000 refine iterations).
  By default --paper-sample iterations run (200 coarse, 100 refine) and the total is
  extrapolated from their seconds per iteration (said in the table); --paper-full runs it all.

--size tiny --device cpu: tiny random models and tiny options, a smoke test (tests run it).
Prints one JSON line per case, then a markdown table; --json writes the records too.
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

PROMPT = "a cartoon monkey head, brown fur, blue eyes"
PAPER_COARSE, PAPER_REFINE = 7000, 3000
TARGET_SECONDS, TARGET_PEAK_GIB = 300, 24
# tiny mode: every size cut down (as tests/make_it_3d/conftest.py's tiny_options)
TINY = dict(coarse_iterations=8, front_iterations=2, widen_iterations=4, render_size=24, samples=12, fine_samples=6,
            sd_size=32, regulariser_points=128, surface_resolution=32, max_faces=300, texture_size=128,
            refine_iterations=4, refine_render_size=32, preview_every=0)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    parser.add_argument("--size", choices=["full", "tiny"], default="full")
    parser.add_argument("--models", type=Path, default=Path("/tmp/make_it_3d_models"),
                        help="where the random-weight folders are (made when missing)")
    parser.add_argument("--sd", type=Path, help="a real stabilityai/stable-diffusion-2-base folder")
    parser.add_argument("--clip", type=Path, help="a real openai/clip-vit-large-patch14 folder")
    parser.add_argument("--depth", type=Path, help="a real Intel/dpt-hybrid-midas folder")
    parser.add_argument("--triposr", type=Path, help="a real TripoSR folder (config.yaml + model.ckpt)")
    parser.add_argument("--precision", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    parser.add_argument("--coarse", type=int, help="coarse iterations of the TripoSR case (default: the options')")
    parser.add_argument("--refine", type=int, help="refine iterations of the TripoSR case")
    parser.add_argument("--paper-sample", type=int, nargs=2, default=[200, 100], metavar=("COARSE", "REFINE"))
    parser.add_argument("--paper-full", action="store_true", help="run the paper's 7000 + 3000 iterations")
    parser.add_argument("--skip-paper", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    return parser.parse_args(argv)


def machine(device: str) -> dict:
    import diffusers
    import torch
    import transformers

    info = {"python": platform.python_version(), "torch": torch.__version__, "diffusers": diffusers.__version__,
            "transformers": transformers.__version__, "device": device, "cpu_threads": torch.get_num_threads()}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    return info


def model_folders(args) -> dict:
    from backend.test_models.make_it_3d import FOLDER_NAMES, is_test_model, make_test_models

    given = {"stable_diffusion": args.sd, "clip": args.clip, "depth": args.depth}
    if all(given.values()):
        return given
    root = args.models / args.size
    folders = {slot: root / name for slot, name in FOLDER_NAMES.items()}
    if not all(is_test_model(folder) for folder in folders.values()):
        started = time.perf_counter()
        folders = make_test_models(root, args.size, seed=0)
        print(json.dumps({"event": "made_random_models", "size": args.size, "seconds": round(time.perf_counter()
                                                                                               - started, 1)}))
    return {slot: given[slot] or folders[slot] for slot in folders}


def triposr_folder(args) -> Path:
    if args.triposr:
        return args.triposr
    if args.size == "tiny":
        return ROOT / "tests" / "data" / "tiny"
    from backend.test_models.triposr import make_smoke_checkpoint

    return make_smoke_checkpoint(args.models / "triposr-official", size="official")


class StageClock:
    """Seconds of each iteration from the job's progress events (so they are known even
    when a later stage fails: random weights can leave no surface)."""

    def __init__(self):
        self.last, self.seconds = {}, {"coarse": [], "texture": []}

    def __call__(self, stage, fraction, loss):
        now = time.perf_counter()
        if stage in self.seconds and loss is not None:
            self.seconds[stage].append(now - self.last[stage])
        self.last[stage] = now

    def per_iteration(self, stage) -> float | None:
        """Median seconds of an iteration, the first (warm-up) left out."""
        seconds = self.seconds[stage][1:] or self.seconds[stage]
        return statistics.median(seconds) if seconds else None


def run_case(name, models, picture, start_of, options, device, extrapolate_to=None) -> dict:
    import torch

    from backend.bridge.errors import BackendError
    from backend.make_it_3d.job import refine_with_details

    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    clock = StageClock()
    started = time.perf_counter()
    record = {"case": name, "coarse_iterations": options.coarse_iterations,
              "refine_iterations": options.refine_iterations}
    try:
        start = start_of()
        result, _ = refine_with_details(models, picture, PROMPT, start, options, progress=clock)
    except BackendError as exc:  # random weights can leave no surface: say so, keep the timings
        result, record["error"] = None, f"{type(exc).__name__}: {exc.message}"
    seconds = time.perf_counter() - started
    coarse, texture = clock.per_iteration("coarse"), clock.per_iteration("texture")
    record.update(seconds=round(seconds, 2), coarse_s_per_iteration=coarse, texture_s_per_iteration=texture)
    if device == "cuda":
        torch.cuda.synchronize()
        record["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    if result is not None:
        record.update(stage_seconds={k: round(v, 3) for k, v in result.timings.items()}, faces=int(len(result.faces)),
                      texture_size=int(result.base_color.shape[0]) if result.base_color is not None else 0)
    looped = sum(clock.seconds["coarse"]) + sum(clock.seconds["texture"])
    if extrapolate_to and result is not None:
        coarse_total, refine_total = extrapolate_to
        record["estimated_seconds"] = round(seconds - looped + coarse * coarse_total + (texture or 0) * refine_total, 1)
        record["estimated_for"] = list(extrapolate_to)
    elif result is not None and coarse and texture:
        # the iterations (same coarse : refine ratio) that would fill the target's time
        per_pass = coarse * options.coarse_iterations + texture * options.refine_iterations
        scale = max(0.0, TARGET_SECONDS - (seconds - looped)) / per_pass
        record["iterations_for_target"] = [int(options.coarse_iterations * scale), int(options.refine_iterations * scale)]
    return record


def table(records: list) -> str:
    lines = ["| case | iterations (coarse + refine) | coarse s/it | refine s/it | total s | peak GPU GiB | note |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in records:
        total, note = f"{r['seconds']:.1f}", r.get("error", "")
        if "estimated_seconds" in r:
            total = f"{r['estimated_seconds']:.0f} (est.)"
            note = (f"measured {r['coarse_iterations']} + {r['refine_iterations']} iterations in {r['seconds']:.1f} s, "
                    f"extrapolated to {r['estimated_for'][0]} + {r['estimated_for'][1]}")
        if "iterations_for_target" in r:
            note = f"{TARGET_SECONDS} s would allow {r['iterations_for_target'][0]} + {r['iterations_for_target'][1]}"
        its = f"{r['estimated_for'][0]} + {r['estimated_for'][1]}" if "estimated_for" in r else \
            f"{r['coarse_iterations']} + {r['refine_iterations']}"
        fmt = lambda v: f"{v:.3f}" if v is not None else "-"  # noqa: E731
        lines.append(f"| {r['case']} | {its} | {fmt(r['coarse_s_per_iteration'])} | {fmt(r['texture_s_per_iteration'])} "
                     f"| {total} | {r.get('peak_gpu_gib', '-')} | {note} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from backend.devices import resolve_device
    from backend.make_it_3d.job import encode_start
    from backend.make_it_3d.loader import load_models
    from backend.make_it_3d.options import RefineOptions
    from backend.pipeline import load_model

    device = resolve_device(args.device).type
    records, emit = [], (lambda record: (records.append(record), print(json.dumps(record), flush=True)))
    print(json.dumps({"event": "machine", **machine(device)}))
    folders = model_folders(args)
    models = load_models(folders, device, args.precision)
    tripo = load_model(triposr_folder(args), device)
    print(json.dumps({"event": "loaded", "seconds": round(models.load_seconds + tripo.load_seconds, 1),
                      "guidance_dtype": str(models.dtype), "weights_gib": round(models.weights_bytes / 2**30, 2)}))
    picture = ROOT / "assets" / "example.png"
    base = RefineOptions(seed=args.seed, cpu_limit_minutes=1e9, preview_every=0)
    if args.size == "tiny":
        base = base.with_changes(**TINY)
    ours = base.with_changes(**{k: v for k, v in (("coarse_iterations", args.coarse),
                                                  ("refine_iterations", args.refine)) if v is not None})
    emit(run_case("triposr", models, picture, lambda: encode_start(tripo, picture, ours), ours, device))
    if not args.skip_paper:
        paper = RefineOptions.paper(seed=args.seed, cpu_limit_minutes=1e9, preview_every=0)
        if args.size == "tiny":
            paper = paper.with_changes(**{k: v for k, v in TINY.items() if "iterations" not in k})
        extrapolate = None
        if not args.paper_full:
            coarse, refine = args.paper_sample
            paper = paper.with_changes(coarse_iterations=coarse, refine_iterations=refine,
                                       front_iterations=min(paper.front_iterations, coarse // 2))
            extrapolate = (PAPER_COARSE, PAPER_REFINE)
        emit(run_case("paper", models, picture, lambda: None, paper, device, extrapolate))
    print()
    print(table(records))
    if device == "cuda":
        print(f"\nTargets: TripoSR case <= {TARGET_SECONDS} s, peak < {TARGET_PEAK_GIB} GiB "
              f"({torch.cuda.get_device_name()})")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(device), "records": records}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
