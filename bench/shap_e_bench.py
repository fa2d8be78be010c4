"""Seconds per Shap-E object through the project's job function, at Shap-E's defaults.

    python bench/shap_e_bench.py [--task text|image|both] [--device auto|cpu|cuda]
        [--models DIR | --text-model DIR --image-model DIR] [--size full|tiny]
        [--steps 64] [--resolution 128] [--precision float32|bfloat16] [--repeats 3] [--reference-repeats 1]
        [--estimate-from-steps K] [--json FILE]

Without real weights it makes the full-size random folders in --models when they are
not there yet (configs of openai/shap-e and openai/shap-e-img2img; 2.7 and 3.4 GB, a
minute each): the networks cost what the real ones do, the shapes are blobs. Each task:
the model is loaded (backend.pipeline.load_model), one small warm-up job runs, then
--repeats timed jobs (backend.pipeline.generate_mesh, float32, TF32 off, the mesh stage
off as in the CLI's defaults). Then --reference-repeats runs of diffusers' own pipeline on
the same loaded model, seed and steps (output_type="mesh", its decode at its own 128 grid;
run last, since that decode copies the latent's weights into the renderer), for the
same-run ratio. One JSON line per event; the last line of each task is its
summary, and a table row for bench/RESULTS.md is printed at the end.

--estimate-from-steps K (for slow CPUs: an object at 64 steps takes tens of minutes on 2
cores): the timed jobs run K steps; the prior costs the same at every step, so the
diffusion at --steps is (seconds per prior evaluation) x (2 x steps - 1, Heun's
evaluations), reported beside what was measured.

On a GPU box with torch and transformers but no diffusers: bench/run_shap_e_gpu.sh.
"""

import argparse
import json
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.bridge.settings import GenerateSettings  # noqa: E402
from backend.shap_e.declaration import SHAP_E  # noqa: E402

PROMPT = "a red wooden chair with four legs"
REFERENCE_GRID = 128  # diffusers' ShapERenderer.decode_to_mesh grid, which its pipelines use


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=["text", "image", "both"], default="both")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    parser.add_argument("--models", type=Path, default=Path("/tmp/shap_e_models"),
                        help="where the random-weight folders are (made when missing)")
    parser.add_argument("--size", choices=["full", "tiny"], default="full", help="random folders' size (tiny: a smoke test)")
    parser.add_argument("--text-model", help="a real openai/shap-e folder (instead of random weights)")
    parser.add_argument("--image-model", help="a real openai/shap-e-img2img folder")
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--precision", choices=["float32", "bfloat16"], default="float32",
                        help="bfloat16: the prior and the condition's encoder (the reference then runs the same)")
    parser.add_argument("--seed", type=int, default=0, help="a random model's blob may be empty at some seeds")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reference-repeats", type=int, default=1,
                        help="timed runs of diffusers' ShapEPipeline / ShapEImg2ImgPipeline (0: none)")
    parser.add_argument("--estimate-from-steps", type=int, metavar="K")
    parser.add_argument("--json", type=Path, help="also append the JSON lines to this file")
    return parser.parse_args(argv)


def machine(device) -> dict:
    import diffusers
    import torch
    import transformers

    info = {"python": platform.python_version(), "torch": torch.__version__, "diffusers": diffusers.__version__,
            "transformers": transformers.__version__, "device": device, "cpu_threads": torch.get_num_threads(),
            "processor": platform.processor() or platform.machine()}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    return info


def sample_image():
    """The image task's input: a shaded disc on white (Shap-E's image model wants a lone object)."""
    import numpy as np

    yy, xx = np.mgrid[:256, :256]
    inside = (xx - 128) ** 2 + (yy - 128) ** 2 < 80**2
    image = np.full((256, 256, 3), 255, dtype=np.uint8)
    image[inside] = np.stack([200 - yy[inside] // 3, 80 + xx[inside] // 4, 60 + 0 * xx[inside]], -1).astype(np.uint8)
    return image


def model_folder(task: str, args, emit) -> str:
    given = args.text_model if task == "text" else args.image_model
    if given:
        return given
    from backend.test_models.shap_e import FOLDER_NAMES, is_test_model, make_test_model

    folder = args.models / args.size / FOLDER_NAMES[task]
    if not is_test_model(folder):
        started = time.perf_counter()
        make_test_model(folder, task, args.size, seed=0)
        emit({"event": "made", "task": task, "folder": str(folder), "seconds": round(time.perf_counter() - started, 1)})
    return str(folder)


def run_job(loaded, settings, source):
    import torch

    from backend.pipeline import generate_mesh

    cuda = loaded.device == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    started = time.perf_counter()
    text = isinstance(source, str)
    result = generate_mesh(loaded, None if text else source, settings, prompt=source if text else None)
    if cuda:
        torch.cuda.synchronize()
    record = {"seconds": round(time.perf_counter() - started, 3),
              "stages": {k: round(v, 3) for k, v in result.timings.items()},
              "vertices": len(result.vertices), "faces": len(result.faces),
              "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    if cuda:
        record["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
    return record


def reference_job(loaded, settings, source) -> float:
    """Seconds of one diffusers pipeline call, prompt or image to its mesh (MeshDecoderOutput)."""
    import torch

    from backend.shap_e.inputs import prepare_image

    condition = source if isinstance(source, str) else prepare_image(source)
    guidance = settings.text_guidance if isinstance(source, str) else settings.image_guidance
    cuda = loaded.device == "cuda"
    if cuda:
        torch.cuda.synchronize()
    started = time.perf_counter()
    loaded.pipeline(condition, num_inference_steps=settings.steps, guidance_scale=guidance,
                    generator=torch.Generator(device="cpu").manual_seed(settings.seed), output_type="mesh")
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - started


def bench_task(task: str, args, device: str, emit) -> dict:
    from backend.pipeline import load_model

    loaded = load_model(model_folder(task, args, emit), device, args.precision, family=SHAP_E, task=task)
    emit({"event": "loaded", "task": task, "folder": str(loaded.model_dir), "seconds": round(loaded.load_seconds, 2)})
    source = PROMPT if task == "text" else sample_image()
    steps = args.estimate_from_steps or args.steps
    settings = GenerateSettings(family=SHAP_E, steps=steps, shap_e_resolution=args.resolution, seed=args.seed)
    run_job(loaded, GenerateSettings(family=SHAP_E, steps=2, shap_e_resolution=32, seed=args.seed), source)  # warm-up
    per_object, record_seconds = [], []
    for repeat in range(args.repeats):
        record = run_job(loaded, settings, source)
        record.update(event="job", task=task, steps_run=steps, resolution=args.resolution, repeat=repeat)
        seconds = record["seconds"]
        if args.estimate_from_steps:
            per_call = record["stages"]["diffusion"] / (2 * steps - 1)
            seconds = seconds - record["stages"]["diffusion"] + per_call * (2 * args.steps - 1)
            record.update(seconds_per_prior_call=float(f"{per_call:.3g}"), estimated_steps=args.steps,
                          estimated_seconds=float(f"{seconds:.3g}"))
        per_object.append(seconds)
        record_seconds.append(record["seconds"])
        emit(record)
    reference = []
    for repeat in range(args.reference_repeats):
        try:
            reference.append(reference_job(loaded, settings, source))
        except (RuntimeError, IndexError, ValueError) as error:  # an empty surface; bfloat16 latents
            emit({"event": "reference_failed", "task": task, "error": f"{type(error).__name__}: {error}"})
            break
        emit({"event": "reference", "task": task, "steps_run": steps, "seconds": round(reference[-1], 3),
              "repeat": repeat})
    measured = statistics.median(record_seconds)
    summary = {"event": "summary", "task": task, "device": device, "precision": args.precision, "steps": args.steps, "resolution": args.resolution,
               "estimated": bool(args.estimate_from_steps), "seconds_per_object_median": round(statistics.median(per_object), 2),
               "seconds_per_object_min": round(min(per_object), 2), "seconds_per_object_max": round(max(per_object), 2),
               "reference_ran": bool(reference)}
    if reference and args.resolution == REFERENCE_GRID:  # like for like: the same steps and grid
        summary.update(reference_seconds_median=round(statistics.median(reference), 2),
                       reference_over_ours=round(statistics.median(reference) / measured, 2), reference_steps=steps)
    emit(summary)
    return summary


def ratio(row) -> str:
    if not row["reference_ran"]:
        return "-"
    if "reference_over_ours" not in row:
        return f"- (a like-for-like ratio needs --resolution {REFERENCE_GRID})"
    return f"{row['reference_over_ours']}x ({row['reference_seconds_median']} s at {row['reference_steps']} steps)"


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"

    def emit(record):
        line = json.dumps(record)
        print(line, flush=True)
        if args.json:
            with args.json.open("a") as out:
                out.write(line + "\n")

    emit({"event": "machine", **machine(device)})
    summaries = [bench_task(task, args, device, emit) for task in (["text", "image"] if args.task == "both" else [args.task])]
    print("\n| task | device | precision | steps | grid | seconds per object (median, min-max) | diffusers' pipeline / ours |",
          flush=True)
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for row in summaries:
        estimated = " (estimated)" if row["estimated"] else ""
        print(f"| {row['task']} | {row['device']} | {row['precision']} | {row['steps']} | {row['resolution']} | "
              f"{row['seconds_per_object_median']}{estimated} ({row['seconds_per_object_min']}-{row['seconds_per_object_max']}) | "
              f"{ratio(row)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
