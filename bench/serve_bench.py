"""Model server benchmark: images/s with 1, 4 and 16 clients, with and without encoder
batching, and what the server adds to one request's latency over an in-process job.

    python bench/serve_bench.py --model DIR [--device cuda] [--resolution 256]
        [--faces 0 --texture 0] [--clients 1 4 16] [--max-batch 1 4] [--concurrency 1 2 4] [--replicas auto]
        [--jobs 64] [--sequential 20]
        [--images IMG...]

Needs the server's packages (requirements/server.txt). Images: --images, else the example
images in $IMAGE_TO_3D_SHARED/examples (default ../shared/examples), else assets/example.png.

First it times generate_mesh in this process (the baseline, and the meshes every server
result is compared with), frees the GPU, then for each --max-batch value starts
`python -m backend serve` on 127.0.0.1 (a fresh token, one replica per GPU), runs
--sequential jobs from one client (latency; "adds" = its median minus the in-process
median), then for each --clients value N threads, each with its own ServerClient,
running jobs back to back until --jobs are done (images/s, p50/p95 latency). "exact"
counts results equal to the in-process mesh bit for bit. --replicas N [M ...] repeats
everything for each replica count (the scaling table; "auto" is one per GPU), and
--concurrency C [D ...] for each number of jobs a replica runs at once (the server's
default when not given; values below --max-batch are skipped), and where
nvidia-smi exists the mean GPU utilisation of each phase is sampled. Prints a table,
then one JSON line.
"""

import argparse
import itertools
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from backend.bridge.errors import ServerBusy  # noqa: E402
from backend.bridge.server_client import ServerClient  # noqa: E402

EXAMPLES = Path(os.environ.get("IMAGE_TO_3D_SHARED", REPO_ROOT.parent / "shared")) / "examples"
DEFAULT_IMAGES = ("flamingo.png", "chair.png", "horse.png", "robot.png", "hamburger.png", "unicorn.png")


def default_images() -> list[Path]:
    found = [EXAMPLES / name for name in DEFAULT_IMAGES if (EXAMPLES / name).is_file()]
    return found or [REPO_ROOT / "assets" / "example.png"]


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def job_settings(args) -> dict:
    """The jobs' options: the raw surface, or the mesh stage with --faces/--texture."""
    return {"resolution": args.resolution, "remove_background": args.remove_background,
            "max_faces": args.faces, "texture_size": args.texture}


def baseline(args, images) -> tuple[list, dict]:
    """In-process job times, and each image's mesh (the reference for "exact")."""
    import torch

    from backend.bridge.settings import GenerateSettings
    from backend.pipeline import generate_mesh, load_model

    loaded = load_model(args.model, args.device, "float32")
    settings = GenerateSettings(**job_settings(args))
    meshes = {image: generate_mesh(loaded, image, settings) for image in images}  # also the warm-up
    times = []
    for image in itertools.islice(itertools.cycle(images), args.sequential):
        started = time.perf_counter()
        generate_mesh(loaded, image, settings)
        times.append(time.perf_counter() - started)
    meshes = {image: (m.vertices, m.faces, m.colors) for image, m in meshes.items()}
    del loaded
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return times, meshes


def start_server(args, max_batch: int, replicas: str, concurrency: int | None,
                 folder: Path) -> tuple[subprocess.Popen, str, str]:
    token_file = folder / f"token-{max_batch}-{replicas}-{concurrency}"
    command = [sys.executable, "-m", "backend", "serve", "--model", args.model, "--port", "0",
               "--token-file", str(token_file), "--device", args.device, "--max-batch", str(max_batch),
               "--replicas", replicas, "--max-jobs", str(max(64, 2 * max(args.clients)))]
    if args.cpus_per_replica:
        command += ["--cpus-per-replica", str(args.cpus_per_replica)]
    if concurrency:
        command += ["--concurrency", str(concurrency)]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    for line in process.stdout:
        print("  server:", line.rstrip(), file=sys.stderr)
        match = re.search(r"server ready at (https?://\S+)", line)
        if match:
            print(f"  server start-up {time.perf_counter() - started:.1f} s", file=sys.stderr)
            threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()  # keep draining
            return process, match.group(1), token_file.read_text().strip()
    raise SystemExit(f"the server exited during start-up (code {process.wait()})")


def stop_server(process: subprocess.Popen):
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def one_job(client, image: Path, args, reference) -> tuple[float, bool]:
    """(latency, equal to the in-process mesh) of one job; retried while the server is busy."""
    settings = job_settings(args)
    while True:
        started = time.perf_counter()
        try:
            result = client.run(settings, image_path=image, timeout=600)
        except ServerBusy:
            time.sleep(0.05)
            continue
        latency = time.perf_counter() - started
        expected = reference[image]
        exact = all(np.array_equal(got, want) for got, want in zip((result.vertices, result.faces, result.colors), expected))
        return latency, exact


class GpuUtilisation:
    """Mean utilisation of every GPU while a phase runs, sampled from nvidia-smi (if any)."""

    def __init__(self):
        self.samples, self._stop = [], threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self):
        while not self._stop.wait(0.5):
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                                     capture_output=True, text=True, timeout=5).stdout
            except (OSError, subprocess.TimeoutExpired):
                return
            self.samples.append([float(value) for value in out.split()])

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def mean(self) -> list | None:
        return [round(statistics.mean(gpu), 1) for gpu in zip(*self.samples)] if self.samples else None


def concurrent(url, token, images, args, clients: int, reference) -> dict:
    counter, lock, samples, errors = itertools.count(), threading.Lock(), [], []
    jobs = max(args.jobs, 2 * clients)

    def worker():
        client = ServerClient(url, token)
        while True:
            with lock:
                index = next(counter)
            if index >= jobs:
                return
            try:
                samples.append(one_job(client, images[index % len(images)], args, reference))
            except Exception as exc:  # noqa: BLE001 - counted and shown, the others go on
                errors.append(repr(exc))

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    started = time.perf_counter()
    with GpuUtilisation() as utilisation:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    wall = time.perf_counter() - started
    if errors:
        print(f"  {len(errors)} jobs failed, the first: {errors[0]}", file=sys.stderr)
    latencies = [latency for latency, _ in samples]
    return {"clients": clients, "jobs": jobs, "images_per_s": round(len(samples) / wall, 2),
            "p50_ms": round(percentile(latencies, 0.5) * 1000, 1) if samples else None,
            "p95_ms": round(percentile(latencies, 0.95) * 1000, 1) if samples else None,
            "exact": sum(exact for _, exact in samples), "failed": len(errors), "gpu_util": utilisation.mean()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model folder (config.yaml + model.ckpt)")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--no-remove-bg", dest="remove_background", action="store_false",
                        help="images without transparency are then used as they are")
    parser.add_argument("--faces", type=int, default=0, help="the mesh stage's face budget (0: the raw surface)")
    parser.add_argument("--texture", type=int, default=0, help="the mesh stage's texture size (0: vertex colours)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--max-batch", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[None],
                        help="jobs each replica runs at once, to compare (default: the server's)")
    parser.add_argument("--replicas", nargs="+", default=["auto"], help="replica counts to compare (auto: one per GPU)")
    parser.add_argument("--cpus-per-replica", type=int, default=None,
                        help="CPU replicas: cores each (a fixed share, so more replicas means more cores)")
    parser.add_argument("--jobs", type=int, default=64, help="jobs per concurrent phase (at least 2 per client)")
    parser.add_argument("--sequential", type=int, default=20, help="jobs of the one-client latency phase")
    parser.add_argument("--images", type=Path, nargs="+", default=None)
    args = parser.parse_args(argv)
    images = args.images or default_images()

    times, reference = baseline(args, images)
    in_process = statistics.median(times)
    report = {"device": args.device, "resolution": args.resolution, "faces": args.faces, "texture": args.texture,
              "in_process_ms": round(in_process * 1000, 1),
              "runs": []}
    with tempfile.TemporaryDirectory(prefix="serve_bench_") as folder:
        for replicas, max_batch, concurrency in itertools.product(args.replicas, args.max_batch, args.concurrency):
            if concurrency is not None and concurrency < max_batch:
                continue  # the server refuses it: a batch is made of jobs running at once
            process, url, token = start_server(args, max_batch, replicas, concurrency, Path(folder))
            try:
                client = ServerClient(url, token)
                one_job(client, images[0], args, reference)  # warm-up
                pairs = [one_job(client, image, args, reference)
                         for image in itertools.islice(itertools.cycle(images), args.sequential)]
                sequential_ms = statistics.median(latency for latency, _ in pairs) * 1000
                run = {"replicas": replicas, "max_batch": max_batch, "concurrency": concurrency or "default",
                       "sequential_ms": round(sequential_ms, 1),
                       "adds_ms": round(sequential_ms - in_process * 1000, 1),
                       "sequential_exact": sum(exact for _, exact in pairs), "sequential_jobs": len(pairs),
                       "concurrent": [concurrent(url, token, images, args, n, reference) for n in args.clients]}
                report["runs"].append(run)
            finally:
                stop_server(process)

    stage = f", mesh stage {args.faces} faces, texture {args.texture}" if args.faces or args.texture else ""
    print(f"in-process generate_mesh, {args.device}, resolution {args.resolution}{stage}: median {in_process * 1000:.1f} ms")
    print("| replicas | max-batch | concurrency | clients | images/s | p50 ms | p95 ms | exact | failed | GPU util % |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for run in report["runs"]:
        for row in run["concurrent"]:
            print(f"| {run['replicas']} | {run['max_batch']} | {run['concurrency']} | {row['clients']} | {row['images_per_s']} | {row['p50_ms']} "
                  f"| {row['p95_ms']} | {row['exact']}/{row['jobs']} | {row['failed']} | {row['gpu_util'] or '-'} |")
    for run in report["runs"]:
        print(f"replicas {run['replicas']}, max-batch {run['max_batch']}, concurrency {run['concurrency']}: one client {run['sequential_ms']} ms per job, the server adds "
              f"{run['adds_ms']} ms over in-process ({run['sequential_exact']}/{run['sequential_jobs']} exact)")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
