"""Loaded tiny Shap-E models (the folders come from tests/conftest.py) and a TripoSR look-alike."""

from pathlib import Path

import pytest

from backend.shap_e.declaration import SHAP_E


@pytest.fixture(scope="session")
def text_dir(shap_e_dirs) -> Path:
    return shap_e_dirs["text"]


@pytest.fixture(scope="session")
def image_dir(shap_e_dirs) -> Path:
    return shap_e_dirs["image"]


@pytest.fixture(scope="session")
def text_model(text_dir):
    from backend.pipeline import load_model

    return load_model(text_dir, "cpu", family=SHAP_E, task="text")


@pytest.fixture(scope="session")
def image_model(image_dir):
    from backend.pipeline import load_model

    return load_model(image_dir, "cpu", family=SHAP_E, task="image")


@pytest.fixture(scope="session")
def triposr_dir(tmp_path_factory) -> Path:
    """What a TripoSR folder looks like from outside (config.yaml + model.ckpt)."""
    folder = tmp_path_factory.mktemp("triposr")
    (folder / "config.yaml").write_text("cond_image_size: 512\n")
    (folder / "model.ckpt").write_bytes(b"not read by these tests")
    return folder
