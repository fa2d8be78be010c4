"""The views job (registry.VIEWS, backend/zero123/job.py) and its command line, on tiny
random weights: the declaration in the registry, make-test-model, the model folders, the
protocol's messages, the job function and `python -m backend views`.
The worker and the server: test_views_worker.py, test_views_server.py."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from views_common import VIEWS_TEST_SETTINGS

from backend.bridge import protocol, wire
from backend.bridge.errors import BadRequest, ModelNotFoundError, WrongModelError
from backend.bridge.settings import ViewsSettings
from backend.families import registry
from backend.model_folder import check_slot_folder, resolve_model_folders
from backend.zero123 import declaration

REPO = Path(__file__).resolve().parents[1]
VIEWS = registry.VIEWS


def run_cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "backend", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


# the declaration and the registry

def test_the_views_slots_are_listed_for_preferences_downloads_and_test_models():
    listed = {slot.identifier: (owner, slot) for owner, slot in registry.unique_slots()}
    # listed once, under the first that declares them: One-2-3-45 (families come before
    # extra jobs), whose views are the views job's
    one2345 = registry.FAMILIES_BY_NAME["ONE2345"]
    assert listed["zero123_xl"] == (one2345, declaration.ZERO123_XL)
    assert listed["loftr"] == (one2345, declaration.LOFTR)
    assert {declaration.ZERO123_XL, declaration.LOFTR} <= set(VIEWS.all_slots())
    assert declaration.ZERO123_XL.preference == "zero123_model_path"
    assert declaration.LOFTR.preference == "loftr_model_path"
    assert registry.slot_for_repo("bennyguo/zero123-xl-diffusers")[2] is declaration.ZERO123_XL
    assert registry.slot_for_repo("One-2-3-45/code")[2] is declaration.LOFTR
    assert declaration.LOFTR.hub_files() == (["elevation_estimate/utils/weights/indoor_ds_new.ckpt"], [])
    assert registry.declared("VIEWS") is VIEWS and VIEWS not in registry.FAMILIES  # no mesh family
    assert [stage.name for stage in VIEWS.stages] == ["prepare", "first_views", "elevation", "views"]


def test_a_family_may_share_the_views_slots_but_not_declare_them_differently():
    import dataclasses

    from backend.families.contract import ExtraJob

    other = dataclasses.replace(declaration.ZERO123_XL, label="another Zero123")
    clash = dataclasses.replace(VIEWS, slots={"image": (other,)})
    families = registry.FAMILIES + (dataclasses.replace(registry.FAMILIES[0], identifier="SHARER",
                                                          slots={"image": (declaration.ZERO123_XL,)}, options=()),)
    assert isinstance(registry._checked_extra_job(VIEWS, families), ExtraJob)  # the very same slot: fine
    with pytest.raises(registry.FamilyDeclarationError, match="zero123_xl"):
        registry._checked_extra_job(clash, families)


def test_make_test_model_zero123_writes_both_folders(tmp_path, capsys):
    from backend.cli import main

    assert main(["make-test-model", "zero123", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "Zero123-XL model" in printed and "LoFTR" in printed
    assert declaration.ZERO123_XL.holds(tmp_path / "zero123_xl")
    assert (tmp_path / "loftr" / "indoor_ds_new.ckpt").is_file() and declaration.LOFTR.holds(tmp_path / "loftr")
    assert (tmp_path / "zero123_xl" / "RANDOM_WEIGHTS_TEST_MODEL.txt").is_file()


# model folders

def test_the_views_folders_resolve_from_a_parent_each_alone_or_by_slot(views_models, tmp_path):
    zero123, loftr = views_models / "zero123_xl", views_models / "loftr"
    both = {"zero123_xl": zero123, "loftr": loftr}
    assert resolve_model_folders(views_models, "VIEWS", "image") == both
    assert resolve_model_folders({k: str(v) for k, v in both.items()}, "VIEWS", "image") == both
    assert resolve_model_folders(str(zero123), "VIEWS", "image") == {"zero123_xl": zero123}  # LoFTR may be left out
    lone = tmp_path / "only_zero123"
    lone.mkdir()
    (lone / "zero123_xl").symlink_to(zero123, target_is_directory=True)
    assert resolve_model_folders(lone, "VIEWS", "image") == {"zero123_xl": lone / "zero123_xl"}
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        resolve_model_folders(tmp_path / "nowhere", "VIEWS", "image")


def test_wrong_folders_are_named(views_models, tiny_model_dir):
    with pytest.raises(WrongModelError, match="is a TripoSR model folder .*, not Views's: give a Zero123-XL folder"):
        check_slot_folder(tiny_model_dir, declaration.ZERO123_XL, "VIEWS")
    with pytest.raises(WrongModelError, match="is a Zero123-XL folder .*, not TripoSR: choose the One-2-3-45 model family"):
        check_slot_folder(views_models / "zero123_xl", registry.FAMILIES[0].slots_for("image")[0], "TRIPOSR")
    with pytest.raises(WrongModelError, match="a folder of Views's model folders, not TripoSR: it is for the views"):
        check_slot_folder(views_models, registry.FAMILIES[0].slots_for("image")[0], "TRIPOSR")


# settings and the protocol

def test_views_settings_check_their_options():
    assert ViewsSettings().views_steps == 75 and ViewsSettings().views_estimate_elevation is True
    assert declaration.nearby_steps(75) == 50 and declaration.nearby_steps(3) == 2
    with pytest.raises(ValueError, match="views_elevation must be in"):
        ViewsSettings(views_elevation=85.0)
    with pytest.raises(ValueError, match="unknown settings: resolution"):
        ViewsSettings.from_dict({"resolution": 32})


def _round_trip(message, table):
    import io

    stream = io.BytesIO()
    protocol.send(stream, message)
    stream.seek(0)
    return protocol.parse(wire.FrameReader(stream).read(), table)


def test_generate_views_and_views_result_cross_the_wire(views_reference):
    from backend.bridge.job_client import views_job_result, views_request
    from backend.zero123.result import transfer_parts

    request = views_request(VIEWS_TEST_SETTINGS, image_pixels=np.zeros((8, 8, 4), np.uint8))
    request.model = {"zero123_xl": "/somewhere"}
    back = _round_trip(request, protocol.REQUESTS)
    assert isinstance(back, protocol.GenerateViews) and back.job_settings() == ViewsSettings(**VIEWS_TEST_SETTINGS)
    fields, arrays = transfer_parts(views_reference)
    event = _round_trip(protocol.ViewsResult(job_id="j", device="cpu", **fields, **arrays), protocol.EVENTS)
    result = views_job_result(event)
    assert result.views.shape == (40, 256, 256, 3) and result.view_ids[:2] == ["0", "1"] and result.view_ids[8] == "0_0"
    assert np.array_equal(result.views[8], views_reference.stage2[0].picture)
    assert result.pose_json == json.loads(json.dumps(views_reference.pose_json()))
    assert result.elevation == pytest.approx(20.0) and result.polar_estimated is False


@pytest.mark.parametrize("change, message", [
    (dict(settings={"views_steps": 1}), "bad views settings"),
    (dict(image_path="/a.png"), "exactly one of image_path, image_bytes, image_pixels"),
    (dict(image_pixels=None), "exactly one of"),
    (dict(model={"zero123_xl": 3}), "model"),
])
def test_bad_generate_views_requests_are_refused(change, message):
    request = protocol.GenerateViews(job_id="j", settings={}, image_pixels=np.zeros((4, 4, 3), np.uint8))
    for name, value in change.items():
        setattr(request, name, value)
    with pytest.raises(BadRequest, match=message):
        _round_trip(request, protocol.REQUESTS)


def test_a_views_result_with_misshaped_views_is_refused():
    event = protocol.ViewsResult(job_id="j", device="cpu", timings={}, view_ids=["0"], poses={}, pose_json={},
                                 polar=60.0, polar_estimated=False, views=np.zeros((2, 4, 4, 3), np.uint8),
                                 contact_sheet=np.zeros((4, 4, 3), np.uint8), input_picture=np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(BadRequest, match="view_ids must name the 2 views"):
        _round_trip(event, protocol.EVENTS)


# the job function

def test_estimating_without_loftr_says_what_to_do(views_models, views_picture):
    import torch

    from backend.zero123 import job

    loaded = job.load({"zero123_xl": views_models / "zero123_xl"}, "image", torch.device("cpu"), "auto")
    assert loaded.matcher is None and loaded.precision == "float32"
    with pytest.raises(ModelNotFoundError, match="LoFTR folder.*--elevation"):
        job.run_views(loaded, views_picture, ViewsSettings(views_steps=3))


def test_precisions_are_checked(views_models):
    import torch

    from backend.bridge.errors import DeviceError
    from backend.zero123 import job

    with pytest.raises(DeviceError, match="float16 views need a GPU"):
        job.load({"zero123_xl": views_models / "zero123_xl"}, "image", torch.device("cpu"), "float16")
    with pytest.raises(DeviceError, match="unknown precision 'bfloat16'"):
        job.load({"zero123_xl": views_models / "zero123_xl"}, "image", torch.device("cpu"), "bfloat16")


def test_the_elevation_estimate_runs_with_loftr_through_the_job(views_models, views_picture):
    """The four passes with the tiny LoFTR: its random matches decide little, but the job
    runs them, reports the stages in order and says how the elevation was found."""
    from backend.zero123.job import load_views, run_views

    events = []
    result = run_views(load_views(views_models, "cpu"), views_picture, ViewsSettings(views_steps=3),
                       lambda stage, fraction: events.append(stage))
    assert [s for i, s in enumerate(events) if i == 0 or s != events[i - 1]] == list(declaration.job_stages(
        ViewsSettings()))
    assert len(result.views) == 40 and 0 < result.polar < 180
    assert result.polar_estimated or result.notes  # the fallback says why


# the command line

def test_the_cli_writes_the_views_of_the_job_function(views_models, views_picture, views_reference, tmp_path):
    done = run_cli("views", views_picture, "--model", views_models, "--out", tmp_path, "--elevation", 20, "--steps", 3,
                   "--seed", 5, "--device", "cpu")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "40 views, elevation 20 degrees (given), seed 5" in done.stdout
    for view in views_reference.views:
        folder = "stage2_8" if view.pose.stage == 2 else "stage1_8"
        assert np.array_equal(np.asarray(Image.open(tmp_path / folder / f"{view.view_id}.png")), view.picture), view.view_id
    assert json.loads((tmp_path / "pose.json").read_text()) == json.loads(json.dumps(views_reference.pose_json()))
    assert json.loads((tmp_path / "views.json").read_text())["polar_estimated"] is False
    sheet = np.asarray(Image.open(tmp_path / "contact_sheet.png"))
    assert sheet.shape == (9 * 128, 5 * 128, 3)


@pytest.mark.parametrize("args, message", [
    (["--elevation", "85"], "--elevation: views_elevation must be in [-70, 70]"),
    (["--steps", "1"], "--steps: views_steps must be in [2, 1000]"),
    (["--token-file", "t"], "--token-file and --ca-file go with --server"),
])
def test_cli_refuses_bad_arguments_before_loading(views_models, views_picture, tmp_path, args, message):
    done = run_cli("views", views_picture, "--model", views_models, "--out", tmp_path, *args, timeout=120)
    assert done.returncode == 2 and message in done.stderr, done.stderr


def test_cli_without_loftr_and_without_elevation_says_what_to_do(views_models, views_picture, tmp_path):
    done = run_cli("views", views_picture, "--model", views_models / "zero123_xl", "--out", tmp_path, "--steps", 3,
                   "--device", "cpu")
    assert done.returncode == 1 and "needs the LoFTR folder" in done.stderr, done.stderr
    assert not (tmp_path / "pose.json").exists()
