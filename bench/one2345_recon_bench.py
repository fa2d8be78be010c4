"""Seconds and peak memory of One-2-3-45's reconstruction stage (32 views given -> coloured
mesh): ours (backend/one2345), and with --reference-env the reference code in the same run.

    python bench/one2345_recon_bench.py                              # CPU, ours only
    python bench/one2345_recon_bench.py --reference-env /work/scratch/one2345-ref
    python bench/one2345_recon_bench.py --device cuda                # the H200 run
    python bench/one2345_recon_bench.py --tiny                       # seconds: the test's mode

Defaults: the demo setting (96^3 volume, mesh at 256), a seeded full-size random checkpoint
in the official layout (backend/test_models/one2345.py; real weights: --checkpoint) and a
synthetic 32-view input at polar 60 (or --inputs, an official input folder). Ours runs in a
child process so that its peak resident memory is its own; on CUDA the peak is
torch.cuda.max_memory_allocated (and reserved). Prints a markdown table, writes --json
(with CPU seconds too: on a busy shared machine their ratio is steadier than wall time's).
"""

import argparse
import json
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

GIB = 1024**3


def run_ours(args) -> dict:
    """One reconstruction, timed by stage (in this process)."""
    import torch

    from backend.one2345.checkpoint import load_reconstruction
    from backend.one2345.reconstruct import reconstruct
    from backend.one2345.views import read_input_folder

    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    model = load_reconstruction(args.checkpoint, device, volume_size=args.volume)
    views = read_input_folder(args.inputs)
    loaded = time.perf_counter()
    stage_starts = {}

    def progress(stage, fraction):
        stage_starts.setdefault(stage, time.perf_counter())

    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    begin = time.perf_counter()
    cpu_before = time.process_time()
    mesh = reconstruct(model, views, resolution=args.resolution, progress=progress)
    if device.type == "cuda":
        torch.cuda.synchronize()
    end = time.perf_counter()
    names = list(stage_starts) + ["end"]
    times = [*stage_starts.values(), end]
    result = {
        "load_s": loaded - started,
        "reconstruct_s": end - begin,
        "reconstruct_cpu_s": time.process_time() - cpu_before,
        "stages_s": {names[i]: times[i + 1] - times[i] for i in range(len(names) - 1)},
        "vertices": int(len(mesh.vertices)),
        "faces": int(len(mesh.faces)),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "torch_threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        result["cuda_peak_allocated_bytes"] = torch.cuda.max_memory_allocated()
        result["cuda_peak_reserved_bytes"] = torch.cuda.max_memory_reserved()
        result["gpu"] = torch.cuda.get_device_name()
    if args.mesh_out:
        import numpy as np

        np.savez(args.mesh_out, vertices=mesh.vertices, faces=mesh.faces, colors=mesh.colors)
    return result


def run_child(command: list[str], out: Path) -> dict:
    done = subprocess.run(command, cwd=REPO)
    if done.returncode != 0:  # -9: killed, most often for memory
        return {"error": f"{Path(command[1]).name} exited with {done.returncode}"}
    return json.loads(out.read_text())


def compare_meshes(ours_npz: Path, reference_ply: str) -> dict:
    """Vertex and face counts and nearest-neighbour distances (frame W) between the meshes."""
    import numpy as np
    import trimesh

    ours = np.load(ours_npz)
    theirs = trimesh.load(reference_ply, process=False)
    found = {"reference_vertices": int(len(theirs.vertices)), "reference_faces": int(len(theirs.faces))}
    try:
        from scipy.spatial import cKDTree
    except ImportError:
        return found
    distance, _ = cKDTree(np.asarray(theirs.vertices)).query(ours["vertices"])
    found.update(nearest_p99=float(np.percentile(distance, 99)), nearest_max=float(distance.max()))
    return found


def table(rows: list[tuple]) -> str:
    lines = ["| implementation | device | volume | mesh | seconds (reconstruction) | peak memory | vertices |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--checkpoint", help="ckpt_215000.pth or its folder (default: seeded random weights)")
    parser.add_argument("--inputs", help="an input folder in the official layout (default: synthetic, polar 60)")
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--volume", type=int, default=96, help="voxels per axis (the demo conf: 96)")
    parser.add_argument("--reference-env", type=Path, help="DIR of bench/one2345_reference_env.sh (venv/, src/)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads for both implementations (0: torch's default); 1 makes CPU seconds "
                             "a fair measure of the work on a busy machine")
    parser.add_argument("--tiny", action="store_true", help="volume 32, mesh 32: a seconds-long check of this script")
    parser.add_argument("--json", type=Path, default=Path("one2345_recon_bench.json"))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--mesh-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.tiny:
        args.volume, args.resolution = 32, 32
    if args.worker:
        args.worker_out.write_text(json.dumps(run_ours(args)))
        return

    scratch = Path(tempfile.mkdtemp(prefix="o2345_bench_"))
    try:
        from backend.test_models.one2345 import make_input_folder, make_test_checkpoint

        if args.checkpoint is None:
            args.checkpoint = str(make_test_checkpoint(scratch / "ckpt_215000.pth", seed=0))
        inputs = scratch / "inputs"
        if args.inputs:
            shutil.copytree(args.inputs, inputs)  # the reference writes mesh.ply into it
        else:
            make_input_folder(inputs, polar=60)
        args.inputs = str(inputs)
        setting = {"device": args.device, "volume": args.volume, "resolution": args.resolution, "threads": args.threads,
                   "checkpoint": args.checkpoint, "machine": platform.processor() or platform.machine()}
        if args.device == "cuda":
            ours = run_ours(args)
        else:
            command = [sys.executable, __file__, "--worker", "--worker-out", str(scratch / "ours.json"),
                       "--mesh-out", str(scratch / "ours.npz"), "--device", "cpu", "--checkpoint", args.checkpoint,
                       "--inputs", args.inputs, "--resolution", str(args.resolution), "--volume", str(args.volume),
                       "--threads", str(args.threads)]
            ours = run_child(command, scratch / "ours.json")
            if "error" in ours:
                raise SystemExit(ours["error"])
        memory = ours.get("cuda_peak_allocated_bytes", ours["peak_rss_bytes"])
        rows = [("ours (dense 3-D convolutions)", args.device, f"{args.volume}^3", args.resolution,
                 f"{ours['reconstruct_s']:.1f}", f"{memory / GIB:.2f} GiB", ours["vertices"])]
        report = {"setting": setting, "ours": ours}
        print(table(rows), flush=True)  # now, in case the reference's run fails
        if args.reference_env:
            if args.volume != 96:
                raise SystemExit("--reference-env runs the demo conf (96^3): leave --volume at 96")
            env = args.reference_env.resolve()
            command = [str(env / "venv" / "bin" / "python"), str(REPO / "bench" / "one2345_reference_driver.py"),
                       "--src", str(env / "src"), "--inputs", args.inputs, "--checkpoint", args.checkpoint,
                       "--resolution", str(args.resolution), "--threads", str(args.threads),
                       "--out", str(scratch / "reference.json")]
            reference = run_child(command, scratch / "reference.json")
            report["reference"] = reference
            if "error" in reference:
                print(f"the reference's run failed: {reference['error']}")
                args.json.write_text(json.dumps(report, indent=1))
                return
            if reference.get("mesh"):
                reference.update(compare_meshes(scratch / "ours.npz", reference["mesh"]))
            report["reference"] = reference
            report["speedup"] = reference["export_mesh_s"] / ours["reconstruct_s"]
            if "reconstruct_cpu_s" in ours and "export_mesh_cpu_s" in reference:
                report["speedup_cpu_time"] = reference["export_mesh_cpu_s"] / ours["reconstruct_cpu_s"]
            rows.append(("One-2-3-45 (torchsparse 1.4, inplace-abn)", "cpu", "96^3", args.resolution,
                         f"{reference['export_mesh_s']:.1f}", f"{reference['peak_rss_bytes'] / GIB:.2f} GiB",
                         reference.get("reference_vertices", "?")))
        if len(rows) > 1:
            print(table(rows))
        print("\nours by stage (s): " + ", ".join(f"{k} {v:.1f}" for k, v in ours["stages_s"].items()))
        if "speedup" in report:
            print(f"speed-up over the reference in the same run: {report['speedup']:.1f}x (wall), "
                  f"{report.get('speedup_cpu_time', float('nan')):.1f}x (CPU time: steadier on a shared machine)")
        args.json.write_text(json.dumps(report, indent=1))
        print(f"wrote {args.json}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
