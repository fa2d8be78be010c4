"""Shared fixtures: the tiny reference checkpoint and the example images in ../shared."""

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY_MODEL_DIR = REPO_ROOT / "tests" / "data" / "tiny"
SHARED_DIR = Path(os.environ.get("IMAGE_TO_3D_SHARED", REPO_ROOT.parent / "shared"))
EXAMPLES_DIR = SHARED_DIR / "examples"


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """Folder with the tiny checkpoint (config.yaml + model.ckpt) and reference.npz."""
    return TINY_MODEL_DIR


@pytest.fixture(scope="session")
def shared_triposr_dir() -> Path:
    """../shared/triposr: the official config and keys, the checkpoint maker, references."""
    folder = SHARED_DIR / "triposr"
    if not (folder / "make_test_checkpoint.py").is_file():
        pytest.skip(f"{folder} not found (the shared/ folder beside the checkout)")
    return folder


@pytest.fixture(scope="session")
def examples_dir() -> Path:
    if not EXAMPLES_DIR.is_dir():
        pytest.skip(f"example images not found at {EXAMPLES_DIR} (the shared/ folder beside the checkout)")
    return EXAMPLES_DIR


@pytest.fixture(scope="session")
def flamingo_path(examples_dir) -> Path:
    """The RGBA input the tiny reference numbers were computed from."""
    return examples_dir / "flamingo.png"


@pytest.fixture(scope="session")
def model_server(tmp_path_factory, tiny_model_dir):
    """`python -m backend serve` with the tiny checkpoint and two CPU replicas (two jobs
    each, encoder batching on) on loopback, started once per session (~20 s on 2 cores)
    by the first test that asks for it.

    At the end it is stopped as a service manager would (SIGTERM), and the test fails if
    it does not exit 0 or leaves a process behind.
    """
    pytest.importorskip("ray.serve")
    from model_server import start_model_server, stop_model_server

    server = start_model_server(tmp_path_factory.mktemp("model_server"), tiny_model_dir)
    yield server
    stop_model_server(server)
