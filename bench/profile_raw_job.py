"""Where one raw TripoSR job's time goes on a GPU: the job function's stage timings and
the top kernels by CUDA time, for one resolution (issue 23 asks for a profile of each
missed target; the raw job at 512 is the one gpu_asset_suite.py leaves unprofiled).

    python bench/profile_raw_job.py --model DIR --image PNG [--resolution 512] [--repeats 3]

The model loads as every entry point loads it (on a data-centre GPU: attention=flash).
Warm-up jobs first, then --repeats timed jobs (their median stages), then one profiled job.
"""

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from backend.bridge.settings import GenerateSettings  # noqa: E402
from backend.mesh import surface  # noqa: E402
from backend.pipeline import generate_mesh, load_model  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--image", type=Path, required=True)
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=20, help="kernels listed")
    parser.add_argument("--device", default="cuda", help="cuda (cpu: a check of this script)")
    parser.add_argument("--compare-host-copy", action="store_true",
                        help="also time the jobs with results copied to pageable memory (the copy before "
                             "surface.host_array), same run")
    args = parser.parse_args(argv)
    from torch.profiler import ProfilerActivity, profile

    loaded = load_model(args.model, args.device)
    cuda = loaded.device == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    pixels = np.asarray(Image.open(args.image).convert("RGBA"))
    settings = GenerateSettings(resolution=args.resolution, remove_background=False)
    for _ in range(2):
        generate_mesh(loaded, pixels, settings)
    kernels = getattr(loaded.model, "encoder_kernels", None) or "standard"
    variants = [("pinned host copies", surface.host_array)]
    if args.compare_host_copy:
        variants.append(("pageable host copies", lambda tensor: tensor.cpu().numpy()))
    for name, copy in variants * (2 if args.compare_host_copy else 1):  # A B A B
        surface.host_array = copy
        jobs = []
        for _ in range(args.repeats):
            sync()
            jobs.append(generate_mesh(loaded, pixels, settings).timings)
        stages = {stage: statistics.median(job[stage] for job in jobs) * 1000 for stage in jobs[0]}
        print(f"{torch.cuda.get_device_name() if cuda else 'cpu'}, resolution {args.resolution}, kernels {kernels}, "
              f"{name}; median of {args.repeats} (ms): total {sum(stages.values()):.1f}, "
              + ", ".join(f"{stage} {ms:.1f}" for stage, ms in stages.items()), flush=True)
    surface.host_array = variants[0][1]
    with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])) as prof:
        generate_mesh(loaded, pixels, settings)
        sync()
    if cuda:
        print(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=args.rows), flush=True)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
