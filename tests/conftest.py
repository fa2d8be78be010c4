"""Shared fixtures: the tiny reference checkpoint, the full-size reference case, and the
example pictures (drawn by tests/pictures.py: the suite needs nothing beside the checkout)."""

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY_MODEL_DIR = REPO_ROOT / "tests" / "data" / "tiny"
FULLSIZE_DATA_DIR = REPO_ROOT / "tests" / "data" / "fullsize"


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """Folder with the tiny checkpoint (config.yaml + model.ckpt) and reference.npz."""
    return TINY_MODEL_DIR


@pytest.fixture(scope="session")
def fullsize_data_dir() -> Path:
    """The official config and checkpoint keys, the checkpoint maker, and the full-size
    reference numbers (copied from ../shared/triposr, see its SOURCE.md)."""
    return FULLSIZE_DATA_DIR


@pytest.fixture(scope="session")
def examples_dir(tmp_path_factory) -> Path:
    """A folder of drawn pictures (tests/pictures.py), named after the TripoSR examples they
    stand in for: flamingo, chair, horse, robot (RGBA on transparency); house, teapot,
    marble (opaque, need background removal)."""
    from pictures import write_pictures

    return write_pictures(tmp_path_factory.mktemp("examples"))


@pytest.fixture(scope="session")
def flamingo_path(examples_dir) -> Path:
    """The suite's usual input: a drawn flamingo, RGBA with soft edges, 512 x 512."""
    return examples_dir / "flamingo.png"


@pytest.fixture(scope="session")
def model_server(tmp_path_factory, tiny_model_dir, shap_e_dirs, one2345_models):
    """`python -m backend serve` with the tiny checkpoint, the tiny Shap-E text model and
    the tiny One-2-3-45 models,
    two CPU replicas (two jobs each, encoder batching on) on loopback, started once per
    session (~30 s on 2 cores) by the first test that asks for it.

    At the end it is stopped as a service manager would (SIGTERM), and the test fails if
    it does not exit 0 or leaves a process behind.
    """
    pytest.importorskip("ray.serve")
    from model_server import start_model_server, stop_model_server

    server = start_model_server(tmp_path_factory.mktemp("model_server"), tiny_model_dir, shap_e_dirs["text"],
                                one2345_models)
    yield server
    stop_model_server(server)


@pytest.fixture(scope="session")
def shap_e_dirs(tmp_path_factory) -> dict:
    """Tiny random-weight Shap-E folders, made once per session (a few seconds):
    {"text": a tiny openai/shap-e, "image": a tiny openai/shap-e-img2img}."""
    from backend.test_models.shap_e import make_test_models

    return make_test_models(tmp_path_factory.mktemp("shap_e_tiny"))


@pytest.fixture(scope="session")
def disc_picture():
    """An RGBA picture for Shap-E's image model: a coloured disc on a transparent background."""
    import numpy as np

    size = 64
    yy, xx = np.mgrid[:size, :size]
    inside = (xx - size / 2) ** 2 + (yy - size / 2) ** 2 < (size / 3) ** 2
    rgba = np.zeros((size, size, 4), dtype=np.uint8)
    rgba[inside] = (200, 60, 40, 255)
    return rgba


# ---------------------------------------------------------------- the views job (Zero123-XL)


@pytest.fixture(scope="session")
def views_models(tmp_path_factory) -> Path:
    """A folder holding tiny random Zero123-XL and LoFTR folders, as `make-test-model
    zero123 OUT` writes it (zero123_xl/, loftr/indoor_ds_new.ckpt)."""
    from backend.families.registry import VIEWS

    out = tmp_path_factory.mktemp("views_models")
    VIEWS.test_models(out, "tiny", 0)
    return out


@pytest.fixture(scope="session")
def views_picture(tmp_path_factory) -> Path:
    """A cut-out PNG (an orange box with a darker band on a transparent background)."""
    import numpy as np
    from PIL import Image

    rgba = np.zeros((160, 120, 4), np.uint8)
    rgba[20:140, 20:100] = (220, 120, 40, 255)
    rgba[60:80, 20:100, :3] = (90, 40, 20)
    path = tmp_path_factory.mktemp("views_picture") / "box.png"
    Image.fromarray(rgba, "RGBA").save(path)
    return path


@pytest.fixture(scope="session")
def views_reference(views_models, views_picture):
    """The views job in this process (CPU, float32) for VIEWS_TEST_SETTINGS: what every
    entry point must give for the same picture."""
    from views_common import VIEWS_TEST_SETTINGS

    from backend.bridge.settings import ViewsSettings
    from backend.zero123.job import load_views, run_views

    loaded = load_views(views_models, "cpu")
    return run_views(loaded, views_picture, ViewsSettings(**VIEWS_TEST_SETTINGS))


# ---------------------------------------------------------------- One-2-3-45 (issue 21)

@pytest.fixture(scope="session")
def one2345_settings() -> dict:
    """A One-2-3-45 job's settings for the tests: the views as VIEWS_TEST_SETTINGS, then
    the reconstruction's mesh at 32 (the tiny test model's cost volume is 32^3): 20-40 s
    a job on 2 cores."""
    from views_common import VIEWS_TEST_SETTINGS

    return {"family": "ONE2345", **VIEWS_TEST_SETTINGS, "one2345_resolution": 32}


@pytest.fixture(scope="session")
def one2345_models(tmp_path_factory) -> Path:
    """A folder holding tiny random Zero123-XL, LoFTR and SparseNeuS folders, as
    `make-test-model one2345 OUT` writes it."""
    from backend.families.registry import FAMILIES_BY_NAME

    out = tmp_path_factory.mktemp("one2345_models")
    FAMILIES_BY_NAME["ONE2345"].test_models(out, "tiny", 0)
    return out


@pytest.fixture(scope="session")
def one2345_reference(one2345_models, one2345_settings, views_picture):
    """The One-2-3-45 job in this process (CPU) for one2345_settings: what every entry
    point must give for the same picture and seed."""
    from backend.bridge.settings import GenerateSettings
    from backend.pipeline import generate_mesh, load_model

    loaded = load_model(one2345_models, "cpu", family="ONE2345")
    return generate_mesh(loaded, views_picture, GenerateSettings(**one2345_settings))
