"""Issue 23's GPU run in one process: the encoder's kernel options one by one, the raw
and Game Asset jobs, the mesh stage step by step, the asset's quality, and profiles.

    python bench/gpu_asset_suite.py --model DIR --image IMAGE [--reference NPZ] [--device cuda]
        [--out DIR] [--repeats 7] [--resolutions 256 512] [--faces 20000] [--texture 1024] [--no-quality]

(bench/gpu_asset_suite.sh installs the carried wheels, makes the full-size checkpoint
and calls this.) Sections, all in one run so that before and after share a machine:

1. encoder: each option of triposr/fast_encoder.py alone and combined, in float32, and
   the bfloat16 encoder: milliseconds per encode (median), the largest deviation of
   the scene codes from the standard float32 kernels and from float64 (the same
   weights in float64 on the same GPU), and the equivalence verdict: against --reference
   (the reference implementation's numbers for this checkpoint, tests/test_fullsize.py's
   rtol = atol = 1e-4 on codes, density and colour) when given, else against float64.
2. jobs: the raw job (float32 with the standard kernels, float32 with the fastest exact
   kernels, bfloat16) at each resolution, and the Game Asset job, through generate_mesh;
   every stage's median. (A model loaded on a data-centre GPU gets attention=flash by
   default; every row here sets its kernels explicitly.)
3. the mesh stage alone, per step, on the checkpoint's surface and two smooth ones,
   with the decimation's two halves and the unwrap on the GPU and on the CPU apart.
4. quality of the Game Asset result (bench/asset_quality.py's measures and bars).
5. profiles: the encoder's top kernels and the asset job's top operations.

Prints markdown tables (also written to OUT/suite.md) and writes OUT/suite.json. On a CPU
(the test's tiny mode) the flash attention runs emulated and CUDA graphs are skipped.
"""

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "bench"))
sys.path.insert(0, str(REPO_ROOT / "tests" / "mesh_stage"))

from backend.bridge.settings import GenerateSettings  # noqa: E402
from backend.mesh.asset.stage import STEP_STAGES  # noqa: E402
from backend.pipeline import generate_mesh, load_model  # noqa: E402
from backend.triposr.engine import color_field  # noqa: E402
from backend.triposr.fast_encoder import EncoderKernels, apply_encoder_kernels, remove_encoder_kernels  # noqa: E402

VARIANTS = ["standard", "attention=flash", "graph", "attention=flash,graph"]  # attention=flash: the CUDA default
TOL = 1e-4  # tests/test_fullsize.py and test_equivalence.py: rtol = atol = 1e-4
ASSET_STEPS = tuple(STEP_STAGES)


class Report:
    def __init__(self, out: Path | None):
        self.out, self.data, self.lines = out, {}, []

    def table(self, title, header, rows):
        text = [f"\n### {title}\n", "| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
        text += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
        print("\n".join(text), flush=True)
        self.lines += text

    def save(self):
        if self.out:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "suite.json").write_text(json.dumps(self.data, indent=1, default=str))
            (self.out / "suite.md").write_text("\n".join(self.lines) + "\n")


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, repeats, warmup=2):
    for _ in range(warmup):
        result = fn()
    seconds = []
    for _ in range(repeats):
        sync(device)
        started = time.perf_counter()
        result = fn()
        sync(device)
        seconds.append(time.perf_counter() - started)
    return result, seconds


def ms(seconds):
    return f"{statistics.median(seconds) * 1000:.1f}"


def float64_codes(model_dir, pixels, device):
    from backend.triposr.checkpoint import load_tripo

    model = load_tripo(model_dir).double().to(device)
    with torch.no_grad():
        codes = model.encode_plain(pixels.double().to(device)).double()
    del model
    return codes


def field_check(model, codes, reference):
    points = torch.from_numpy(reference["pts"]).to(codes.device)
    with torch.no_grad():
        density, color = model.field.density_and_color(codes[0], points)
    return (np.allclose(density.cpu().numpy(), reference["pts_density"][:, 0], rtol=TOL, atol=TOL)
            and np.allclose(color.cpu().numpy(), reference["pts_color"], rtol=TOL, atol=TOL))


def encoder_section(report, loaded, loaded_bf16, args, pixels, reference):
    """Each kernel option alone, on one model; the standard kernels first and last."""
    model, device = loaded.model, loaded.device
    exact64 = float64_codes(loaded.model_dir, pixels, device)
    scale = float(exact64.abs().max())
    rows, results, baseline = [], {}, None
    variants = VARIANTS + ["standard"]  # again at the end: the drift of the machine
    for index, spec in enumerate(variants):
        name = spec if index < len(VARIANTS) else "standard (again)"
        kernels = EncoderKernels.parse("" if spec == "standard" else spec)
        if kernels.graph and device != "cuda":
            continue
        try:
            apply_encoder_kernels(model, kernels, device, emulate=device != "cuda")
            codes, seconds = timed(lambda: model.encode_resized(pixels), device, args.repeats, warmup=3)
        except Exception as exc:  # noqa: BLE001 (one option failing must not end the run)
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
            rows.append([name, "failed", str(exc)[:80], "", "", ""])
            continue
        baseline = codes if baseline is None else baseline
        results[name] = _deviation(codes, baseline, exact64, scale, reference, model, seconds)
        r = results[name]
        rows.append([name, ms(seconds), f"{r['vs_float32']:.2e}", f"{r['vs_float64']:.2e} ({r['vs_float64_rel']:.1e})",
                     r["verdict"], f"{statistics.median(results['standard']['seconds']) / statistics.median(seconds):.2f}x"])
    remove_encoder_kernels(model)
    # for scale: plain TF32 (process-wide, what issue 23 measured) and the bfloat16 encoder
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = device == "cuda"
    try:
        codes, seconds = timed(lambda: model.encode_resized(pixels), device, args.repeats)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    if device == "cuda":
        results["plain TF32 (not exact)"] = _deviation(codes, baseline, exact64, scale, reference, model, seconds)
    if loaded_bf16 is not None:
        codes, seconds = timed(lambda: loaded_bf16.model.encode_resized(pixels), device, args.repeats)
        results["bfloat16 encoder (--precision)"] = _deviation(codes, baseline, exact64, scale, reference, model, seconds)
    for name in ("plain TF32 (not exact)", "bfloat16 encoder (--precision)"):
        if name in results:
            r = results[name]
            rows.append([name, ms(r["seconds"]), f"{r['vs_float32']:.2e}", f"{r['vs_float64']:.2e} ({r['vs_float64_rel']:.1e})",
                         r["verdict"], f"{statistics.median(results['standard']['seconds']) / statistics.median(r['seconds']):.2f}x"])
    against = "the reference numbers (rtol = atol = 1e-4 on codes, density, colour)" if reference is not None \
        else "float64 (rtol = atol = 1e-4)"
    report.table(f"Encoder, one image, ms (median of {args.repeats}); verdict against {against}",
                 ["kernels", "ms", "max |codes - float32|", "max |codes - float64| (relative)", "within tolerance",
                  "speed-up"], rows)
    report.data["encoder"] = results
    exact = [(statistics.median(r["seconds"]), name) for name, r in results.items()
             if "error" not in r and r["verdict"] is True and not name.startswith(("standard", "plain", "bfloat16"))]
    best = min(exact)[1] if exact else None
    report.data["best_exact_kernels"] = best
    print(f"\nfastest option within tolerance: {best}", flush=True)
    return best


def _deviation(codes, baseline, exact64, scale, reference, model, seconds):
    d64 = float((codes.double() - exact64).abs().max())
    if reference is not None:
        verdict = bool(np.allclose(codes.float().cpu().numpy(), reference["codes"], rtol=TOL, atol=TOL)
                       and field_check(model, codes.float(), reference))
    else:
        verdict = bool(torch.allclose(codes.double(), exact64, rtol=TOL, atol=TOL))
    return {"seconds": seconds, "vs_float32": float((codes.float() - baseline.float()).abs().max()), "vs_float64": d64,
            "vs_float64_rel": d64 / scale, "verdict": verdict}


def job_rows(loaded, image, settings, repeats, label):
    """generate_mesh `repeats` times after one warm-up -> (stage medians, result)."""
    samples = []
    generate_mesh(loaded, image, settings)
    for _ in range(repeats):
        sync(loaded.device)
        started = time.perf_counter()
        result = generate_mesh(loaded, image, settings)
        timings = dict(result.timings, total=time.perf_counter() - started)
        if "cleanup" in timings:
            timings["mesh stage"] = sum(timings.get(step, 0.0) for step in ASSET_STEPS)
        samples.append(timings)
    medians = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
    medians.update(label=label, faces=int(len(result.faces)))
    return medians, result


def jobs_section(report, loaded, loaded_bf16, best, args):
    """Raw jobs at each resolution and the Game Asset job: float32 with the standard
    kernels, with the fastest exact kernels (when one held the tolerance), bfloat16."""
    variants = [("float32", None)] + [("float32", best)] * bool(best) + [("bfloat16", None)]
    configs = [("raw", GenerateSettings(resolution=r, remove_background=False), v)
               for r in args.resolutions for v in variants]
    asset = GenerateSettings(resolution=args.resolutions[0], remove_background=False, max_faces=args.faces,
                             texture_size=args.texture)
    configs += [("asset", asset, v) for v in variants]
    rows, results, asset_results = [], {}, {}
    for job, settings, (precision, kernels) in configs:
        target = loaded_bf16 if precision == "bfloat16" else loaded
        if precision == "float32":
            apply_encoder_kernels(loaded.model, EncoderKernels.parse(kernels), loaded.device,
                                  emulate=loaded.device != "cuda")
        label = f"{job} {settings.resolution} {precision}" + (f" + {kernels}" if kernels else "")
        medians, result = job_rows(target, args.image, settings, args.repeats, label)
        results[label] = medians
        if job == "asset":
            asset_results[label] = result
        rows.append([label] + [f"{medians[s] * 1000:.1f}" if s in medians else "" for s in
                               ("prepare", "encode", "field", "surface", "colors", "mesh stage", "total")]
                    + [f"{medians['faces']:,}"])
    remove_encoder_kernels(loaded.model)
    report.table(f"Jobs through generate_mesh, ms (median of {args.repeats} warm runs)",
                 ["job", "prepare", "encode", "field", "surface", "colours", "mesh stage", "total", "faces"], rows)
    steps = [[label] + [f"{r[s] * 1000:.1f}" for s in ASSET_STEPS] for label, r in results.items() if "mesh stage" in r]
    report.table("The mesh stage inside the Game Asset job, ms", ["job", *ASSET_STEPS], steps)
    report.data["jobs"] = results
    return asset_results


def stage_section(report, loaded, raw_result, args):
    """make_asset alone on three surfaces, and the two halves of the slow steps."""
    import shapes

    from backend.mesh.asset.stage import make_asset

    device = loaded.device
    codes = loaded.model.encode(torch.from_numpy(raw_result.prepared_image).to(device).float().div(255).unsqueeze(0))[0]
    surfaces = {"checkpoint": (raw_result.vertices, raw_result.faces, color_field(loaded.model.field, codes))}
    for name, sdf in (("figure", shapes.figure_sdf), ("bumpy sphere", shapes.bumpy_sphere_sdf)):
        v, f = shapes.marching_cubes_mesh(sdf, args.resolutions[0])
        surfaces[name] = (v, f, shapes.stripes_color)
    settings = GenerateSettings(max_faces=args.faces, texture_size=args.texture)
    rows, split_rows, results = [], [], {}
    for name, (v, f, color_at) in surfaces.items():
        runs = [make_asset(v, f, settings, color_at, device=device) for _ in range(args.repeats + 1)][1:]
        steps = {s: statistics.median(r.timings[s] for r in runs) for s in runs[0].timings}
        total = sum(steps.values())
        rows.append([name, f"{len(f):,}", runs[-1].stats.get("charts")] + [f"{steps[s] * 1000:.1f}" for s in ASSET_STEPS]
                    + [f"{total * 1000:.1f}"])
        halves = _halves(v, f, device, args)
        results[name] = {"steps": steps, "stage": total, "faces": int(len(f)), "charts": runs[-1].stats.get("charts"),
                         **halves}
        split_rows.append([name, f"{len(f):,} -> {halves['clustered_faces']:,}", ms(halves["cluster_quadric"]),
                           ms(halves["cluster_mean"]), ms(halves["collapse"]),
                           f"{ms(halves['collapse_before'])} ({halves['faces_before']:,} faces)",
                           ms(halves["collapse_from_1.5x"]),
                           ms(halves["unwrap_cpu"]), ms(halves["unwrap_gpu"])])
    report.table(f"The mesh stage alone on {device}, ms (median of {args.repeats})",
                 ["surface", "raw faces", "charts", *ASSET_STEPS, "stage"], rows)
    report.table("Its slow steps in halves, ms", ["surface", "faces clustered", "quadric clustering", "mean clustering",
                                                  "edge collapse (CPU)", "edge collapse before (mean, 5.5x)",
                                                  "edge collapse from 1.5x",
                                                  "unwrap on the CPU", "unwrap on the GPU"], split_rows)
    report.data["stage"] = results


def _halves(v, f, device, args):
    """The decimation's clustering (device) and edge collapse (CPU) apart, the collapse as
    it was before this issue (mean clustering to 5.5x the target), and the unwrap of the
    decimated mesh on the CPU and on the GPU."""
    from backend.mesh.asset import decimate as decimation
    from backend.mesh.asset.clustering import cluster_vertices
    from backend.mesh.asset.steps import torch_threads
    from backend.mesh.asset.unwrap import unwrap

    dv, df = torch.as_tensor(v).to(device), torch.as_tensor(f).to(device).long()
    edges = (len(f) / (decimation.CLUSTER_TO * args.faces)) ** 0.5
    out = {}
    with torch_threads(1):  # as the stage runs them
        if edges >= decimation.MIN_CELL_EDGES:
            cell = min(edges, decimation.MAX_CELL_EDGES) * decimation.median_edge(dv, df)
            (cv, cf), out["cluster_quadric"] = timed(lambda: cluster_vertices(dv, df, cell), device, args.repeats, 1)
            _, out["cluster_mean"] = timed(lambda: cluster_vertices(dv, df, cell, quadric=False), device, args.repeats, 1)
        else:
            (cv, cf), out["cluster_quadric"], out["cluster_mean"] = (dv, df), [0.0], [0.0]
        cv_np, cf_np = cv.cpu().numpy(), cf.cpu().numpy()
        (lv, lf), out["collapse"] = timed(lambda: decimation.quadric_decimate(cv_np, cf_np, args.faces), "cpu",
                                          args.repeats, 1)
        # a smaller hand-over (1.5x the target): what a slower host CPU could trade for p99 (docs/asset.md)
        small = (len(f) / (1.5 * args.faces)) ** 0.5
        if small >= decimation.MIN_CELL_EDGES:
            sv, sf = cluster_vertices(dv, df, min(small, decimation.MAX_CELL_EDGES) * decimation.median_edge(dv, df))
            sv_np, sf_np = sv.cpu().numpy(), sf.cpu().numpy()
            _, out["collapse_from_1.5x"] = timed(lambda: decimation.quadric_decimate(sv_np, sf_np, args.faces), "cpu",
                                                 args.repeats, 1)
        else:
            out["collapse_from_1.5x"] = [float("nan")]
        old_edges = (len(f) / (5.5 * args.faces)) ** 0.5
        ov, of = dv, df
        if old_edges >= 1.5:
            ov, of = cluster_vertices(dv, df, min(old_edges, 3.0) * decimation.median_edge(dv, df), quadric=False)
        ov_np, of_np = ov.cpu().numpy(), of.cpu().numpy()
        _, out["collapse_before"] = timed(lambda: decimation.quadric_decimate(ov_np, of_np, args.faces), "cpu",
                                          max(1, args.repeats // 2), 1)
        low_v, low_f = torch.from_numpy(lv), torch.from_numpy(lf).long()
        _, out["unwrap_cpu"] = timed(lambda: unwrap(low_v, low_f, args.texture), "cpu", args.repeats, 1)
        out["unwrap_gpu"] = [float("nan")]
        if device == "cuda":
            gv, gf = low_v.to(device), low_f.to(device)
            _, out["unwrap_gpu"] = timed(lambda: unwrap(gv, gf, args.texture), device, args.repeats, 1)
    out.update(clustered_faces=int(len(cf)), faces_before=int(len(of)))
    return out


def quality_section(report, loaded, raw, asset):
    from asset_bench import quality

    q = quality(loaded, raw, asset)
    d, c, s = q["distance_to_cleaned_raw"], q.get("colour", {}), q.get("shading", {}).get("normal_map", {})
    rows = [["surface p99 (% of diagonal)", f"{d['p99_pct']:.3f}", "<= 0.5", d["p99_pct"] <= 0.5],
            ["texture colour median (/255)", f"{c.get('texture_median', float('nan')):.2f}", "<= 4",
             c.get("texture_median", 99) <= 4],
            ["texture colour p95 (/255)", f"{c.get('texture_p95', float('nan')):.2f}", "<= 12", c.get("texture_p95", 99) <= 12],
            ["normal-map shading median / p95 (/255)",
             f"{s.get('shading_median', float('nan')):.2f} / {s.get('shading_p95', float('nan')):.1f}", "(compared)", ""],
            ["normal-map angle median / p95 (degrees)",
             f"{s.get('angle_median', float('nan')):.2f} / {s.get('angle_p95', float('nan')):.1f}", "(compared)", ""]]
    report.table("Quality of the Game Asset result (bench/asset_quality.py)", ["measure", "result", "bar", "met"], rows)
    report.data["quality"] = q


def profile_section(report, loaded, best, pixels, args):
    from torch.profiler import ProfilerActivity, profile

    device = loaded.device
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    sort = "self_cuda_time_total" if device == "cuda" else "self_cpu_time_total"
    spec = ",".join(p for p in (best or "").split(",") if p and p != "graph")  # a graph hides its kernels
    apply_encoder_kernels(loaded.model, EncoderKernels.parse(spec), device, emulate=device != "cuda")
    loaded.model.encode_resized(pixels)
    with profile(activities=activities) as prof:
        loaded.model.encode_resized(pixels)
        sync(device)
    remove_encoder_kernels(loaded.model)
    text = prof.key_averages().table(sort_by=sort, row_limit=12)
    print(f"\nencoder profile ({spec or 'standard'}):\n{text}", flush=True)
    asset = GenerateSettings(resolution=args.resolutions[0], remove_background=False, max_faces=args.faces,
                             texture_size=args.texture)
    with profile(activities=activities) as prof2:
        generate_mesh(loaded, args.image, asset)
        sync(device)
    text2 = prof2.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)
    print(f"\nGame Asset job profile (by CPU time):\n{text2}", flush=True)
    report.data["profiles"] = {"encoder": text, "asset_job": text2}
    report.lines += ["", "```", f"encoder profile ({spec or 'standard'})", text, "Game Asset job profile", text2, "```"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--image", required=True)
    parser.add_argument("--reference", type=Path, help="reference.npz of this checkpoint (codes, pts, density, colour)")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--resolutions", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--faces", type=int, default=20000)
    parser.add_argument("--texture", type=int, default=1024)
    parser.add_argument("--no-quality", action="store_true")
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    report = Report(args.out)
    loaded = load_model(args.model, args.device)
    loaded_bf16 = load_model(args.model, args.device, "bfloat16")
    reference = np.load(args.reference) if args.reference else None
    from backend.prepare.framing import prepare_image

    prepared = reference["pre"] if reference is not None else prepare_image(args.image, 0.85, False)
    pixels = loaded.model.image_tokenizer.resize(torch.from_numpy(prepared).to(loaded.device).float().div(255).unsqueeze(0))
    report.data["machine"] = {"platform": platform.platform(), "torch": torch.__version__, "python": platform.python_version(),
                              "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None,
                              "cpu_threads": torch.get_num_threads(), "model": args.model, "image": args.image}
    print(f"# {report.data['machine']}", flush=True)
    best = _guarded(report, "encoder", lambda: encoder_section(report, loaded, loaded_bf16, args, pixels, reference))
    asset_results = _guarded(report, "jobs", lambda: jobs_section(report, loaded, loaded_bf16, best, args)) or {}
    raw = generate_mesh(loaded, args.image, GenerateSettings(resolution=args.resolutions[0], remove_background=False))
    _guarded(report, "stage", lambda: stage_section(report, loaded, raw, args))
    if not args.no_quality and asset_results:
        _guarded(report, "quality", lambda: quality_section(report, loaded, raw, next(iter(asset_results.values()))))
    if not args.no_profile:
        _guarded(report, "profile", lambda: profile_section(report, loaded, best, pixels, args))
    report.data["seconds"] = time.perf_counter() - started
    print(f"\nsuite done in {report.data['seconds']:.0f} s", flush=True)
    report.save()
    return 0


def _guarded(report, name, run):
    """Run a section; a failure is reported and the next section still runs."""
    try:
        return run()
    except Exception as exc:  # noqa: BLE001 (reported; the next section still runs)
        import traceback

        traceback.print_exc()
        report.data.setdefault("errors", {})[name] = f"{type(exc).__name__}: {exc}"
        report.save()
        return None


if __name__ == "__main__":
    sys.exit(main())
