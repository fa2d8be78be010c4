"""Run One-2-3-45's own reconstruction (export_mesh, lod0, the demo conf) once, timed, in
its reference environment (bench/one2345_reference_env.sh), for one2345_recon_bench.py.

    DIR/venv/bin/python bench/one2345_reference_driver.py --src DIR/src --inputs CASE \
        --checkpoint ckpt_215000.pth --resolution 256 --out result.json

It builds the reference's Runner the way its __main__ does for --mode export_mesh, with a
copy of confs/one2345_lod0_val_demo.conf whose base_exp_dir holds a link to the checkpoint,
and calls runner.export_mesh(resolution). Prints nothing of its own but the JSON result:
seconds for building and loading, seconds (wall and CPU) for export_mesh, peak resident memory, and where
the mesh was written.
"""

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", required=True, help="the patched One-2-3-45 checkout")
    parser.add_argument("--inputs", required=True, help="input folder: pose.json, stage1_8/, stage2_8/")
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    started = time.perf_counter()
    inputs = str(Path(args.inputs).resolve())
    checkpoint = str(Path(args.checkpoint).resolve())
    reconstruction = os.path.join(args.src, "reconstruction")
    sys.path.insert(0, reconstruction)
    os.chdir(reconstruction)
    work = tempfile.mkdtemp(prefix="o2345_refbench_")
    os.makedirs(os.path.join(work, "checkpoints"))
    os.symlink(checkpoint, os.path.join(work, "checkpoints", "ckpt_215000.pth"))
    conf = Path("confs/one2345_lod0_val_demo.conf").read_text().replace("base_exp_dir = exp/lod0", f"base_exp_dir = {work}")
    conf_path = os.path.join(work, "run.conf")
    Path(conf_path).write_text(conf)

    import exp_runner_generic_blender_val as reference
    import torch

    torch.set_default_dtype(torch.float32)
    if args.threads:
        torch.set_num_threads(args.threads)
    reference.args = argparse.Namespace(specific_dataset_name=inputs, resolution=args.resolution)
    runner = reference.Runner(conf_path, "export_mesh", False, False, False, 0)
    loaded = time.perf_counter()
    cpu_before = time.process_time()
    runner.export_mesh(resolution=args.resolution)
    done = time.perf_counter()
    cpu = time.process_time() - cpu_before
    meshes = [p for p in (Path(inputs) / "mesh.ply", Path(work) / "mesh.ply") if p.is_file()]
    result = {
        "load_s": loaded - started,
        "export_mesh_s": done - loaded,
        "export_mesh_cpu_s": cpu,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "mesh": str(meshes[0]) if meshes else None,
        "torch_threads": torch.get_num_threads(),
    }
    Path(args.out).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
