"""Generate Views inside real Blender (the bpy wheel), with tiny random Zero123-XL and
LoFTR weights; see views_scenarios.py for what runs inside Blender. Its FAST settings are
tests/views_common.py's VIEWS_TEST_SETTINGS, so the sheet must be views_reference's."""

from pathlib import Path

import numpy as np
import pytest
from harness import NEEDS_BPY, blender_environment, run_scenario

pytestmark = [pytest.mark.blender, NEEDS_BPY]
SCENARIOS = Path(__file__).with_name("views_scenarios.py")


@pytest.fixture(scope="module")
def views_run(extension_zip, tiny_model_dir, views_models, views_picture, tmp_path_factory):
    work = tmp_path_factory.mktemp("views")
    env = blender_environment(work / "home", zip=extension_zip, model=tiny_model_dir, views_models=views_models,
                              picture=views_picture)
    return run_scenario("views", work, env, SCENARIOS), np.load(work / "views.npz")


def test_the_views_folders_are_preferences_with_downloads_and_readiness(views_run):
    facts, _ = views_run
    assert facts["preferences"] == [True, True]
    props = [args for name, args, _ in facts["preferences_drawn"] if name == "prop"]
    assert ["zero123_model_path"] in props and ["loftr_model_path"] in props
    assert "No Zero123-XL model folder" in facts["unset_error"]
    assert all(ready for ready, _ in facts["readiness_without_loftr"])  # the elevation given: no LoFTR needed
    assert [ready for ready, _ in facts["readiness_estimating_without_loftr"]] == [True, False]
    assert "No LoFTR matcher (elevation) folder" in facts["estimate_error"]
    assert all(ready for ready, _ in facts["readiness"])


def test_the_views_panel_has_its_options_and_button_for_image_sources(views_run):
    facts, _ = views_run
    drawn = facts["panel"]
    props = [args[0] for name, args, _ in drawn if name == "prop" and args]
    assert props == ["views_estimate_elevation", "views_elevation", "views_steps", "views_guidance", "views_seed",
                     "views_remove_background"]
    assert ["operator", ["image_to_3d.generate_views"], None] in drawn
    assert facts["panel_polls"] == {"IMAGE": True, "FILE": True, "TEXT": False}


def test_generate_views_shows_the_job_s_contact_sheet_as_a_packed_image(views_run, views_reference):
    facts, arrays = views_run
    assert facts["result"] == ["FINISHED"] and facts["status"]["running"] is False
    assert facts["sheet"]["new_images"] == ["box views"] and facts["status"]["last_views_image"] == "box views"
    assert facts["sheet"]["packed"] and facts["sheet"]["fake_user"] and facts["sheet"]["size"] == [5 * 128, 9 * 128]
    assert facts["sheet"]["elevation"] == pytest.approx(20.0) and facts["sheet"]["seed"] == 5
    from backend.zero123.result import contact_sheet

    np.testing.assert_array_equal(arrays["sheet"], contact_sheet(views_reference))
    assert "box views: 40 views, elevation 20 degrees (given)" in facts["status"]["last_result"]
    assert facts["again"]["seed"] == 6 and facts["again"]["images"].count("box views") == 1  # replaced, not added
    assert facts["editor"] == {"shows": "shown views", "made": "shown views", "size": [8, 16]}


def test_cancel_ends_the_views_within_a_step_and_makes_nothing(views_run):
    cancel = views_run[0]["cancel"]
    assert cancel["end"] == "cancelled" and cancel["unchanged"]
    assert cancel["seconds"] < cancel["step_seconds"] + 2.0


def test_a_failed_job_leaves_nothing_and_blender_never_imports_torch(views_run):
    facts, _ = views_run
    assert "image" in facts["bad_image_error"].lower() and facts["unchanged_after_error"]
    assert facts["torch_modules"] == []
