"""`python -m backend serve`: the model server's arguments and its start-up order.

Order matters for safety and for clear failures:
1. the token (a file only the user can read) and the HTTP socket are ready first, so a
   wrong token file or a port in use fails in a second, before Ray starts;
2. for a one-machine server, Ray's environment is set before Ray is imported (loopback);
3. Ray, Serve (no HTTP proxy) and the model replicas; then the HTTP front serves.
On exit (Ctrl-C, SIGTERM) the front stops, running jobs are cancelled, and the local
Ray - or, on a cluster, our Serve application - is shut down.
"""

import argparse
import asyncio
import logging
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path

from ..bridge.errors import BackendError
from ..bridge.options import PRECISIONS
from ..families.registry import slots
from . import API_VERSION, SERVER_VERSION
from .auth import TokenFileError, load_or_create_token

DEFAULT_PORT = 8765
DEFAULT_MAX_UPLOAD_MB = 100
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")

log = logging.getLogger("image_to_3d.server")


def add_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("--model", required=True, action="append",
                        help="model folder or hub id; repeat it to serve several, one per family and input: "
                             + ", ".join(f"{slot.label} ({slot.hub_repo})" for _, _, slot in slots()))
    parser.add_argument("--host", default="127.0.0.1", help="address the HTTP API listens on (default %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="HTTP port; 0 picks a free one (default %(default)s)")
    parser.add_argument("--token-file", type=Path,
                        help="file holding the bearer token (created with a new token if missing); "
                             "default: a new token in ~/.local/state/image_to_3d/server-token at every start")
    parser.add_argument("--address", help="join this Ray cluster (host:port of `ray start --head`) instead of "
                                          "starting a local, loopback-only Ray")
    parser.add_argument("--replicas", default="auto", help="model replicas: 'auto' = one per GPU, or one CPU replica")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="where replicas run the model: auto = one replica per GPU, else the CPU")
    parser.add_argument("--cpus-per-replica", type=int, default=None,
                        help="CPU replicas: cores each one uses (default: the replicas share all cores)")
    parser.add_argument("--precision", default="float32", choices=PRECISIONS, help="the networks' precision (see README)")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="jobs one replica runs at once, so that their CPU and GPU work overlap (default: 2 on "
                             "a GPU, 1 on the CPU; at least --max-batch)")
    parser.add_argument("--max-batch", type=int, default=1,
                        help="the most images a replica encodes in one batch (default %(default)s: no batching, "
                             "results equal the in-process job's bit for bit)")
    parser.add_argument("--max-jobs", type=int, default=64, help="unfinished jobs the server holds before answering busy")
    parser.add_argument("--max-upload-mb", type=int, default=DEFAULT_MAX_UPLOAD_MB, help="largest request body")
    parser.add_argument("--result-ttl", type=float, default=600.0, help="seconds a finished job's result is kept")
    parser.add_argument("--max-result-mb", type=int, default=2048, help="memory for kept results; oldest go first")
    parser.add_argument("--job-timeout", type=float, default=600.0, help="seconds a job may go without progress")
    parser.add_argument("--retries", type=int, default=1, choices=(0, 1, 2), help="re-runs of a job whose replica died")
    parser.add_argument("--tls-cert", type=Path, help="serve HTTPS with this certificate (PEM; chain allowed)")
    parser.add_argument("--tls-key", type=Path, help="the certificate's private key (PEM)")
    parser.add_argument("--verbose", action="store_true", help="Ray's and the replicas' logs on this terminal, access log")


def check_arguments(args) -> str | None:
    """A sentence for the first argument that cannot work, or None."""
    if (args.tls_cert is None) != (args.tls_key is None):
        return "--tls-cert and --tls-key go together"
    for path in (args.tls_cert, args.tls_key):
        if path is not None and not path.is_file():
            return f"{path} does not exist"
    if args.max_batch < 1 or args.max_jobs < 1 or args.max_upload_mb < 1:
        return "--max-batch, --max-jobs and --max-upload-mb must be at least 1"
    if args.concurrency is not None and args.concurrency < args.max_batch:
        return "--concurrency must be at least --max-batch (a batch is made of jobs running at once)"
    if not 0 <= args.port <= 65535:
        return f"--port must be between 0 and 65535, got {args.port}"
    return None


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto given explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP,
    # and without it a response's second write waits ~40 ms for the client's delayed ACK
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror} (another server running? try another --port)") from None
    sock.listen(2048)
    sock.set_inheritable(False)  # Ray's processes must not hold our port
    return sock


def serve_command(args) -> int:
    """Run the server until Ctrl-C or SIGTERM; 0 then, 2 when it cannot start."""
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    problem = check_arguments(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        token, token_path, created = load_or_create_token(args.token_file)
        sock = bind_socket(args.host, args.port)
    except (TokenFileError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"access token {'written to' if created else 'read from'} {token_path} (give this file to clients)", flush=True)
    if args.host not in LOOPBACK_HOSTS and args.tls_cert is None:
        print("warning: listening beyond this machine without TLS: the token and the images travel in clear "
              "text; use --tls-cert/--tls-key or a TLS proxy (docs: 'TLS')", file=sys.stderr, flush=True)
    local = not args.address
    secret_dir = Path(tempfile.mkdtemp(prefix="image_to_3d_ray_")) if local else None
    signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM takes Ctrl-C's way out: through the clean-up
    try:
        return run_server(args, token, token_path, sock, local, secret_dir)
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
        return 0
    finally:
        sock.close()
        if secret_dir is not None:
            shutil.rmtree(secret_dir, ignore_errors=True)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def run_server(args, token: str, token_path: Path, sock: socket.socket, local: bool, secret_dir: Path | None) -> int:
    from . import ray_setup

    try:
        if local:
            ray_setup.prepare_local_environment(secret_dir)
            model = local_models(args.model)  # no torch: a wrong folder fails in a second
        else:
            ray_setup.prepare_environment()
            model = list(args.model)  # resolved by each replica on its own node
        print("starting Ray" if local else f"joining the Ray cluster at {args.address}", flush=True)
        resources = ray_setup.start_ray(args.address, args.verbose)
        if not args.verbose:
            import ray.serve  # noqa: F401 (importing it sets its logger to INFO; quiet it after)

            logging.getLogger("ray.serve").setLevel(logging.WARNING)
        plan = ray_setup.plan_replicas(args.replicas, args.device, resources, args.cpus_per_replica)
        print(f"loading the model on {plan.count} {plan.device} replica(s)", flush=True)
        # on a GPU two jobs at once overlap one's CPU work with the other's GPU work
        args.concurrency = args.concurrency or max(args.max_batch, 2 if plan.device == "cuda" else 1)
        handle = ray_setup.deploy(plan, model, args.precision, args.concurrency, args.max_batch, args.verbose)
        return serve_http(args, token, token_path, sock, handle, plan)
    except Exception as exc:  # re-raised unless it is a start-up failure with a sentence
        if isinstance(exc, (ray_setup.SetupError, BackendError)):
            print(f"error: {getattr(exc, 'message', exc)}", file=sys.stderr)
            return 2
        raise
    finally:
        # a second Ctrl-C or SIGTERM (service managers send one to every process) must not cut the clean-up short
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        ray_setup.shut_down(local)


def local_models(models: list) -> list:
    """Each --model as a checked local folder (a hub id is fetched now); one per family
    (or extra job: the views') and input. A job that needs several folders keeps the
    folder that holds them."""
    from ..families.registry import declared
    from ..model_folder import job_slots, model_kind, resolve_model_dir, resolve_model_folders

    folders, seen = [], {}
    for model in models:
        family, task = model_kind(model)
        if (family, task) in seen:
            raise BackendError(f"--model {seen[family, task]} and --model {model} are both {declared(family).label} "
                               f"for {task}s: give one model per family and input")
        seen[family, task] = model
        if len(job_slots(family, task)) > 1:  # a folder holding the model folders (Make-It-3D's four, the views' two)
            resolve_model_folders(model, family, task)
            folders.append(str(Path(model).expanduser().resolve()))
        else:
            folders.append(str(resolve_model_dir(model, family, task)))
    return folders


def serve_http(args, token, token_path, sock, handle, plan) -> int:
    import ray
    import uvicorn

    from ..bridge import wire
    from .api import create_app
    from .guard import Limits, raise_open_file_limit, uvicorn_config
    from .jobs import JobTable
    from .ray_setup import replica_counter
    from .runner import ReplicaPool

    pool = ReplicaPool(handle, retries=args.retries, idle_timeout=args.job_timeout)
    model_info = handle.describe.remote().result()
    version_info = {"server": SERVER_VERSION, "api": API_VERSION, "protocol": wire.VERSION,
                    "ray": ray.__version__,
                    "model": {k: model_info[k] for k in ("model", "models", "device", "precision", "torch", "torch_threads")},
                    "replicas": plan.count, "max_batch": args.max_batch, "concurrency": args.concurrency}
    table = JobTable(args.max_jobs, args.result_ttl, args.max_result_mb << 20)
    limits = Limits(max_requests=4 * args.max_jobs + 64)  # the connection bounds and timeouts: guard.py
    raise_open_file_limit(limits.max_waiting + limits.max_requests + 256)
    app = create_app(table=table, pool=pool, token=token, version_info=version_info,
                     replica_status=replica_counter(plan), max_upload_bytes=args.max_upload_mb << 20, limits=limits)
    config = uvicorn_config(
        app, limits, log_level="info" if args.verbose else "warning", access_log=args.verbose,
        ssl_certfile=str(args.tls_cert) if args.tls_cert else None,
        ssl_keyfile=str(args.tls_key) if args.tls_key else None,
    )
    host, port = sock.getsockname()[:2]
    scheme = "https" if args.tls_cert else "http"
    shown = f"[{host}]" if ":" in host else host
    print(f"image_to_3d server ready at {scheme}://{shown}:{port} (token file {token_path})", flush=True)
    signal.signal(signal.SIGTERM, _interrupt)  # again: ray.init installed its own (sys.exit(15))
    asyncio.run(uvicorn.Server(config).serve(sockets=[sock]))
    return 0
