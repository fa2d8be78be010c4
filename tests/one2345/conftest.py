"""One-2-3-45 reconstruction fixtures: a random-weight test model and its input
(the reference cases are in one2345_cases.py)."""

import pytest


@pytest.fixture(scope="session")
def test_model_files(tmp_path_factory) -> dict:
    """A seeded full-layout random checkpoint and a synthetic 32-view input folder."""
    from backend.test_models.one2345 import make_input_folder, make_test_checkpoint

    root = tmp_path_factory.mktemp("one2345_test_model")
    return {"checkpoint": make_test_checkpoint(root / "ckpt_215000.pth", seed=0),
            "views": make_input_folder(root / "views", polar=60)}


@pytest.fixture(scope="session")
def small_model(test_model_files):
    """The test model with a 32^3 volume (the demo's 96^3 takes minutes on 2 cores)."""
    from backend.one2345.checkpoint import load_reconstruction

    return load_reconstruction(test_model_files["checkpoint"], "cpu", volume_size=32)


@pytest.fixture(scope="session")
def synthetic_views(test_model_files):
    from backend.one2345.views import read_input_folder

    return read_input_folder(test_model_files["views"])
