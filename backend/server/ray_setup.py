"""Ray for the server: a loopback-only local instance or a cluster to join; the deployment.

Measured on Ray 2.60 (REPORT.md, question 1): with the node address left to Ray, its
gRPC servers (GCS, raylet, every worker) listen on all interfaces and its agents on the
machine's address. Setting RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 makes Ray use 127.0.0.1
as the node address, as it does on macOS and Windows; then every Ray socket is on
loopback except each Serve replica's internal gRPC server, which replica.py rebinds.
Ray reads these variables when it is imported, so prepare_local_environment must run
before anything imports ray.
"""

import asyncio
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from . import APP_NAME
from .auth import new_token, write_private_file

NAMESPACE = "image_to_3d"
DEPLOYMENT_NAME = "MeshModel"
EXTENSION_ROOT = str(Path(__file__).resolve().parents[2])  # the folder that holds backend/


class SetupError(Exception):
    """Ray or the deployment could not be set up; the message says why."""


def prepare_environment():
    """For every server, before `import ray`."""
    if "ray._private.ray_constants" in sys.modules:
        raise SetupError("internal: Ray was imported before its environment was set up")
    # Never start a Ray by accident: without this, a Serve thread that calls Ray after
    # its daemons died (SIGTERM to the whole process group) starts a new local Ray,
    # dashboard included, which then outlives us (seen once in experiments/group_sigterm.py).
    os.environ["RAY_ENABLE_AUTO_CONNECT"] = "0"
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"


def prepare_local_environment(secret_dir: Path):
    """Environment for a one-machine server, before `import ray` (child processes inherit it)."""
    prepare_environment()
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # node address 127.0.0.1: loopback only
    # Ray's own token auth, with a token of ours in a private folder: a local ray.init()
    # would otherwise create ~/.ray/auth_token (mode 0644) and keep it after we exit.
    os.environ["RAY_AUTH_MODE"] = "token"
    if not os.environ.get("RAY_AUTH_TOKEN"):
        token_path = secret_dir / "ray-token"
        write_private_file(token_path, new_token())
        os.environ["RAY_AUTH_TOKEN_PATH"] = str(token_path)
    # replicas are separate processes: they find the backend through PYTHONPATH
    current = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if EXTENSION_ROOT not in current:
        os.environ["PYTHONPATH"] = os.pathsep.join([*current, EXTENSION_ROOT])


def start_ray(address: str | None, verbose: bool):
    import ray

    common = {"namespace": NAMESPACE, "log_to_driver": verbose, "logging_level": "INFO" if verbose else "WARNING"}
    try:
        if address:
            ray.init(address=address, **common)
        else:
            ray.init(include_dashboard=False, dashboard_host="127.0.0.1", **common)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise SetupError(f"could not start or join {where}: {exc}") from None
    return ray.cluster_resources()


@dataclass(frozen=True)
class ReplicaPlan:
    count: int
    device: str  # "cuda" or "cpu", what each replica's load_model gets
    num_gpus: float
    num_cpus: float
    torch_threads: int | None  # CPU replicas share the cores between them


def plan_replicas(requested: str, device: str, resources: dict, cpus_per_replica: int | None = None) -> ReplicaPlan:
    """One replica per GPU (or N); CPU replicas when there is no GPU or the CPU is asked for.

    CPU replicas share all the cores, unless cpus_per_replica gives each a fixed number
    (leaving the rest free, or measuring how the server scales with replicas).
    """
    gpus = int(resources.get("GPU", 0))
    cpus = float(resources.get("CPU", 1))
    if requested != "auto" and (not requested.isdigit() or int(requested) < 1):
        raise SetupError(f"--replicas must be 'auto' or a whole number of at least 1, got {requested!r}")
    if device == "cuda" and gpus == 0:
        raise SetupError("--device cuda, but the Ray cluster has no GPU: add a GPU node or use --device cpu")
    if device in ("auto", "cuda") and gpus > 0:
        count = gpus if requested == "auto" else int(requested)
        if count > gpus and count % gpus:
            raise SetupError(f"{count} GPU replicas on {gpus} GPU(s): ask for one per GPU, or a multiple of {gpus} "
                             "(replicas then share each GPU)")
        # more replicas than GPUs share them (each holds its own copy of the model)
        return ReplicaPlan(count, "cuda", min(1.0, gpus / count), min(1.0, cpus / count), None)
    count = 1 if requested == "auto" else int(requested)
    if cpus_per_replica is not None:
        if cpus_per_replica < 1 or count * cpus_per_replica > cpus:
            raise SetupError(f"{count} CPU replica(s) of {cpus_per_replica} core(s) each need more than the "
                             f"{cpus:g} cores Ray has")
        return ReplicaPlan(count, "cpu", 0.0, float(cpus_per_replica), cpus_per_replica)
    share = cpus / count
    return ReplicaPlan(count, "cpu", 0.0, share, max(1, math.floor(share)))


def deploy(plan: ReplicaPlan, model: str | list, precision: str, concurrency: int, max_batch: int,
           verbose: bool = False):
    """Start Serve without its HTTP proxy and run the model deployment; returns its handle."""
    from ray import serve

    from .replica import MeshModel

    logging_config = {"log_level": "INFO" if verbose else "WARNING"}
    # no Serve HTTP proxy at all: the front in this process is the only HTTP listener
    serve.start(proxy_location="Disabled", logging_config=logging_config)
    deployment = serve.deployment(
        name=DEPLOYMENT_NAME,
        num_replicas=plan.count,
        max_ongoing_requests=concurrency,
        ray_actor_options={"num_cpus": plan.num_cpus, "num_gpus": plan.num_gpus},
        health_check_period_s=10,
        graceful_shutdown_timeout_s=10,
    )(MeshModel)
    try:
        return serve.run(deployment.bind(model, plan.device, precision, concurrency, max_batch, plan.torch_threads),
                         name=APP_NAME, route_prefix=None, logging_config=logging_config)
    except RuntimeError as exc:  # a replica's constructor failed (after Serve's retries)
        raise SetupError(f"the model replicas did not start: {first_line_of_cause(exc)}") from None


def first_line_of_cause(exc: BaseException) -> str:
    """The user-facing line of a failure that Serve wrapped in its own text."""
    text = str(exc)
    for marker in ("ModelNotFoundError", "WrongModelError", "CheckpointError", "DeviceError", "BackendError"):
        if marker in text:
            tail = text.rsplit(marker, 1)[1].lstrip(": ")
            return tail.splitlines()[0] if tail else text.splitlines()[0]
    return text.splitlines()[-1] if text else exc.__class__.__name__


def replica_counter(plan: ReplicaPlan):
    """async () -> {"running", "target"} from Serve's controller (a blocking call: in a thread)."""
    from ray import serve

    def count() -> dict:
        app = serve.status().applications.get(APP_NAME)
        states = app.deployments[DEPLOYMENT_NAME].replica_states if app else {}
        running = sum(n for state, n in states.items() if str(getattr(state, "value", state)) == "RUNNING")
        return {"running": running, "target": plan.count}

    async def replica_status() -> dict:
        return await asyncio.to_thread(count)

    return replica_status


def shut_down(local: bool):
    """Leave nothing behind: the whole local Ray, or just our application on a cluster.

    Locally, ray.shutdown() alone: it stops the node and with it every worker, replicas
    included, in about a second. serve.shutdown() first would wait up to 30 s for the
    controller, and forever-ish when a service manager has already killed Ray's daemons.
    """
    import ray

    if not ray.is_initialized():
        return
    try:
        if not local:
            from ray import serve

            serve.delete(APP_NAME)
    finally:
        ray.shutdown()
