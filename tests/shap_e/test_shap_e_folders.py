"""Folder checks without torch: family detection and clear errors for wrong or incomplete folders."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from backend.bridge.errors import CheckpointError, ModelNotFoundError, WrongModelError
from backend.model_folder import check_model_dir, detect_family, family_of_model, foreign_folder_message
from backend.shap_e.declaration import SHAP_E
from backend.triposr.declaration import TRIPOSR

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def copy_of(tmp_path):
    def copy(folder):
        target = tmp_path / folder.name
        shutil.copytree(folder, target)
        return target
    return copy


def test_detects_each_family(text_dir, image_dir, triposr_dir, tmp_path):
    assert (detect_family(text_dir).family, detect_family(text_dir).task) == (SHAP_E, "text")
    assert (detect_family(image_dir).family, detect_family(image_dir).task) == (SHAP_E, "image")
    assert (detect_family(triposr_dir).family, detect_family(triposr_dir).task) == (TRIPOSR, "image")
    assert detect_family(tmp_path).family == "unknown"


def test_hub_ids_name_their_family():
    for model, expected in [("openai/shap-e", (SHAP_E, "text")), ("openai/shap-e-img2img", (SHAP_E, "image")),
                            ("stabilityai/TripoSR", (TRIPOSR, "image"))]:
        kind = family_of_model(model)
        assert (kind.family, kind.task) == expected


def test_good_folders_pass(text_dir, image_dir):
    assert check_model_dir(text_dir, SHAP_E, "text") == text_dir
    assert check_model_dir(image_dir, SHAP_E, "image") == image_dir


def test_missing_folder(tmp_path):
    with pytest.raises(ModelNotFoundError, match="does not exist.*openai/shap-e"):
        check_model_dir(tmp_path / "nowhere", SHAP_E, "text")


def test_empty_folder(tmp_path):
    with pytest.raises(CheckpointError, match="model_index.json is not readable"):
        check_model_dir(tmp_path, SHAP_E, "text")


def test_triposr_folder_given_to_shap_e(triposr_dir):
    with pytest.raises(WrongModelError, match="TripoSR model folder") as caught:
        check_model_dir(triposr_dir, SHAP_E, "image")
    assert caught.value.code == "wrong_model"


def test_shap_e_folder_given_to_triposr(text_dir, image_dir, triposr_dir, tmp_path):
    with pytest.raises(WrongModelError) as caught:
        check_model_dir(text_dir)  # TripoSR's check, as every TripoSR job makes it
    assert caught.value.message.endswith(
        "is a Shap-E text-to-3D folder (openai/shap-e), not TripoSR: choose the Shap-E model family for it")
    assert "image-to-3D folder (openai/shap-e-img2img)" in foreign_folder_message(image_dir, TRIPOSR)
    assert foreign_folder_message(triposr_dir, TRIPOSR) is None
    assert foreign_folder_message(tmp_path, TRIPOSR) is None  # nothing recognisable: TripoSR's own message


def test_text_folder_used_for_images(text_dir):
    with pytest.raises(WrongModelError, match="text-to-3D model .*openai/shap-e.*needs openai/shap-e-img2img"):
        check_model_dir(text_dir, SHAP_E, "image")


def test_image_folder_used_for_text(image_dir):
    with pytest.raises(WrongModelError, match="image-to-3D model .*needs openai/shap-e$"):
        check_model_dir(image_dir, SHAP_E, "text")


def test_other_diffusers_pipeline(tmp_path):
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "KandinskyV22Pipeline"}))
    with pytest.raises(WrongModelError, match="KandinskyV22Pipeline, not Shap-E"):
        check_model_dir(tmp_path, SHAP_E, "text")
    # Stable Diffusion's is another family's model (Make-It-3D's), and named so
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    with pytest.raises(WrongModelError, match=r"is a Stable Diffusion 2 \(base\) folder .*choose the Make-It-3D model"):
        check_model_dir(tmp_path, SHAP_E, "text")


def test_unreadable_index(tmp_path):
    (tmp_path / "model_index.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not readable JSON"):
        check_model_dir(tmp_path, SHAP_E, "text")


def test_missing_component(text_dir, copy_of):
    folder = copy_of(text_dir)
    shutil.rmtree(folder / "tokenizer")
    with pytest.raises(CheckpointError, match="tokenizer lacks"):
        check_model_dir(folder, SHAP_E, "text")


def test_missing_weights(image_dir, copy_of):
    folder = copy_of(image_dir)
    (folder / "prior" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="prior lacks its weights"):
        check_model_dir(folder, SHAP_E, "image")


def test_pickled_weights_are_refused(text_dir, copy_of):
    folder = copy_of(text_dir)
    (folder / "text_encoder" / "model.safetensors").unlink()
    (folder / "text_encoder" / "pytorch_model.bin").write_bytes(b"a pickle would run code")
    with pytest.raises(CheckpointError, match=r"only pickled weights \(pytorch_model.bin\).*never loaded"):
        check_model_dir(folder, SHAP_E, "text")


def test_unexpected_component_class_is_refused(text_dir, copy_of):
    folder = copy_of(text_dir)
    index = json.loads((folder / "model_index.json").read_text())
    index["prior"] = ["my_module", "MyPrior"]  # diffusers would import my_module.py from the folder
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="component 'prior'"):
        check_model_dir(folder, SHAP_E, "text")


def test_checks_need_no_torch(text_dir):
    code = ("import sys; from backend.model_folder import check_model_dir; "
            f"check_model_dir({str(text_dir)!r}, 'SHAP_E', 'text'); "
            "assert 'torch' not in sys.modules and 'diffusers' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)
