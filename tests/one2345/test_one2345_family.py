"""One-2-3-45 as a model family (backend/one2345/declaration.py, engine.py): its place in
the registry, its model folders and their messages, the engine's stages, frames, colours
and cancel on the reconstruction (with drawn views standing in for Zero123's, so these
run in seconds), the CPU estimate, and one real job on the tiny random models."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from one2345_cases import REPO_ROOT

from backend.bridge.errors import Cancelled, CheckpointError, DeviceError, ModelNotFoundError, WrongModelError
from backend.bridge.settings import GenerateSettings, job_stages
from backend.families.engine_api import JobInput, StageClock
from backend.families.registry import FAMILIES_BY_NAME, VIEWS, job_needing
from backend.model_folder import detect_family, resolve_model_folders
from backend.one2345 import engine
from backend.one2345.budget import CpuBudget, view_steps
from backend.one2345.checkpoint import load_reconstruction
from backend.one2345.declaration import CPU_LIMIT, ONE2345, SPARSENEUS
from backend.one2345.frames import world_to_blender
from backend.one2345.reconstruct import reconstruct
from backend.one2345.views import read_input_folder
from backend.test_models.one2345 import make_test_checkpoint, render_spheres
from backend.zero123.declaration import LOFTR, VIEWS_OPTIONS, ZERO123_XL
from backend.zero123.plan import camera_to_world, plan
from backend.zero123.result import View, ViewsResult
from backend.zero123.result import write_views as write_views_folder

FAMILY = FAMILIES_BY_NAME[ONE2345]


@pytest.fixture(scope="module")
def settings(one2345_settings):
    return GenerateSettings(**one2345_settings)


def test_the_family_is_registered_with_the_views_jobs_very_slots_and_options(settings):
    assert FAMILY.slots_for("image") == (ZERO123_XL, LOFTR, SPARSENEUS)
    assert FAMILY.slots_for("image")[0] is VIEWS.slots_for("image")[0]  # one folder, one preference for both
    views_options = [option for option in FAMILY.options if option.name.startswith("views_")]
    assert [o.name for o in views_options] == [o.name for o in VIEWS_OPTIONS]
    assert all(option.families == (ONE2345,) for option in FAMILY.options)
    assert FAMILY.stage_names() == ("prepare", "views", "reconstruction", "surface")
    assert job_needing({"zero123_xl", "loftr", "sparseneus"}) == (FAMILY, "image")
    assert job_needing({"zero123_xl", "loftr"}) == (VIEWS, "image")
    assert job_stages(settings) == ("prepare", "views", "reconstruction", "surface", "colors")


def test_the_declaration_and_registry_import_no_torch():
    code = ("import sys; sys.modules['torch'] = None; from backend.families.registry import FAMILIES_BY_NAME; "
            "import backend.one2345.declaration; print(FAMILIES_BY_NAME['ONE2345'].label)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "One-2-3-45", done.stderr


def test_a_folder_of_its_three_model_folders_is_one2345s(one2345_models):
    assert detect_family(one2345_models).family == ONE2345
    folders = resolve_model_folders(one2345_models, ONE2345, "image")
    assert folders == {"zero123_xl": one2345_models / "zero123_xl", "loftr": one2345_models / "loftr",
                       "sparseneus": one2345_models / "sparseneus"}
    views = resolve_model_folders(one2345_models, VIEWS.identifier, "image")  # the views job takes its two
    assert set(views) == {"zero123_xl", "loftr"}
    assert (one2345_models / "sparseneus" / "sparseneus.json").is_file()  # the tiny model's 32^3 volume


def test_one_download_of_the_hub_repository_serves_loftr_and_the_reconstruction(one2345_models, tmp_path):
    """LoFTR's weights and the checkpoint live in the same hub repository (One-2-3-45/code):
    a snapshot holding both, at their repository paths, is each slot's folder."""
    import shutil

    from backend.one2345.folders import HUB_PATH
    from backend.zero123.folders import LOFTR_HUB_PATH

    snapshot = tmp_path / "snapshot"
    for source, path in ((one2345_models / "loftr" / "indoor_ds_new.ckpt", LOFTR_HUB_PATH),
                         (one2345_models / "sparseneus" / "ckpt_215000.pth", HUB_PATH)):
        (snapshot / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, snapshot / path)
    assert SPARSENEUS.hub_files() == ([HUB_PATH], []) and SPARSENEUS.hub_repo == LOFTR.hub_repo
    folders = resolve_model_folders({"zero123_xl": str(one2345_models / "zero123_xl"), "loftr": str(snapshot),
                                     "sparseneus": str(snapshot)}, ONE2345, "image")
    assert folders["loftr"] == folders["sparseneus"] == snapshot
    assert load_reconstruction(snapshot, "cpu").volume_size == 96  # no sparseneus.json: the demo's volume


def test_a_missing_or_foreign_reconstruction_folder_says_what_to_do(one2345_models, tmp_path):
    folders = {slot: str(one2345_models / slot) for slot in ("zero123_xl", "loftr")}
    with pytest.raises(ModelNotFoundError, match="lacks ckpt_215000.pth .*One-2-3-45/code"):
        resolve_model_folders({**folders, "sparseneus": str(tmp_path)}, ONE2345, "image")
    with pytest.raises(ModelNotFoundError, match="missing: SparseNeuS model"):
        resolve_model_folders(folders, ONE2345, "image")
    with pytest.raises(WrongModelError, match="is a TripoSR model folder .* not One-2-3-45"):
        resolve_model_folders({**folders, "sparseneus": str(REPO_ROOT / "tests" / "data" / "tiny")}, ONE2345, "image")
    bad = tmp_path / "bad"
    make_test_checkpoint(bad / "ckpt_215000.pth")
    (bad / "sparseneus.json").write_text('{"volume_size": 7}')
    with pytest.raises(CheckpointError, match="volume_size must be a whole number from 16 to 128"):
        resolve_model_folders({**folders, "sparseneus": str(bad)}, ONE2345, "image")


def test_a_mis_keyed_checkpoint_is_refused_by_the_familys_load_naming_the_keys(one2345_models, tmp_path):
    from backend.pipeline import load_model

    state = torch.load(one2345_models / "sparseneus" / "ckpt_215000.pth", weights_only=True)
    rendering = state["rendering_network_lod0"]
    rendering["base_fc.0.weight_renamed"] = rendering.pop("base_fc.0.weight")
    state["sdf_network_lod0"]["sdf_layer.lin0.bias"] = torch.zeros(7)
    (tmp_path / "sparseneus").mkdir()
    torch.save(state, tmp_path / "sparseneus" / "ckpt_215000.pth")
    folders = {"zero123_xl": one2345_models / "zero123_xl", "loftr": one2345_models / "loftr",
               "sparseneus": tmp_path / "sparseneus"}
    with pytest.raises(CheckpointError) as caught:
        load_model(folders, "cpu", family=ONE2345)
    message = caught.value.message
    assert "does not match One-2-3-45's reconstruction network" in message
    assert "rendering_network_lod0.base_fc.0.weight" in message and "base_fc.0.weight_renamed" in message
    assert "sdf_network_lod0.sdf_layer.lin0.bias: checkpoint (7,), model (128,)" in message


# ---- the engine on drawn views (Zero123 stood in for: seconds, not a minute)

def drawn_views(polar: float = 60.0) -> ViewsResult:
    """A views result as the views job returns it, its pictures drawn spheres at its poses."""
    poses = plan(polar)
    cameras = camera_to_world([p.polar for p in poses], [p.azimuth for p in poses])
    made = [View(pose, render_spheres(camera.astype(np.float64)), camera) for pose, camera in zip(poses, cameras)]
    return ViewsResult(made[0].picture, polar, False, made[:8], made[8:], seed=0)


@pytest.fixture(scope="module")
def drawn():
    return drawn_views()


@pytest.fixture(scope="module")
def stand_in(one2345_models):
    """The family's loaded model with the reconstruction only (the views are handed in)."""
    folders = {slot: one2345_models / slot for slot in ("zero123_xl", "loftr", "sparseneus")}
    model = load_reconstruction(folders["sparseneus"], "cpu")
    return engine.LoadedOne2345(None, model, folders, "cpu", "float32")


def run_on(loaded, result, monkeypatch, settings, should_cancel=None, progress=None):
    def fake_views(views, image, views_settings, report, cancel):
        report("prepare", 0.0)
        report("prepare", 1.0)
        for step in range(4):
            if cancel is not None and cancel():
                raise Cancelled()
            report("views", step / 4)
        return result

    monkeypatch.setattr(engine.views_job, "run_views", fake_views)
    clock = StageClock(progress, should_cancel)
    return engine.run(loaded, JobInput(np.zeros((8, 8, 3), np.uint8)), settings, clock), clock


def test_the_surface_is_the_reconstructions_in_blenders_frame_with_its_colours(stand_in, drawn, monkeypatch,
                                                                               settings, tmp_path):
    seen = []
    surface, clock = run_on(stand_in, drawn, monkeypatch, settings, progress=lambda stage, fraction: seen.append(stage))
    # the same as the reconstruction of the folder the views job writes (One-2-3-45's input layout)
    write_views_folder(drawn, tmp_path / "views")
    reference = reconstruct(stand_in.reconstruction, read_input_folder(tmp_path / "views"), resolution=32)
    vertices, faces = world_to_blender(reference.vertices, reference.faces)
    assert np.array_equal(surface.vertices, vertices) and np.array_equal(surface.faces, faces)
    colours = surface.vertex_colors()
    assert colours.shape == (len(vertices), 4) and (colours[:, 3] == 255).all()
    assert np.array_equal(colours[:, :3], reference.colors)
    # the mesh stage's colour field: the same network, at any point (here the vertices, moved
    # by float32 rounding through Blender's frame: ~4e-8). Where a vertex sits exactly on a
    # voxel face of the cost volume (at 32 the grid and the volume's lattice coincide), the
    # reference's visibility mask flips with such a move: a few vertices differ there.
    at = surface.color_at(torch.from_numpy(surface.vertices)).numpy()
    assert np.mean(np.abs(at * 255 - colours[:, :3]).max(axis=1) <= 1.0) > 0.98
    assert surface.prepared_image.shape == (9 * 128, 5 * 128, 3)  # the views' contact sheet, the input on top
    assert list(dict.fromkeys(seen)) == ["prepare", "views", "reconstruction", "surface", "colors"]
    assert set(clock.timings) >= {"prepare", "views", "reconstruction", "surface"}


def test_cancel_during_the_reconstruction_stops_it_within_a_step(stand_in, drawn, monkeypatch, settings):
    reports = []

    def should_cancel():
        return any(stage == "reconstruction" and fraction > 0 for stage, fraction in reports)

    with pytest.raises(Cancelled):
        run_on(stand_in, drawn, monkeypatch, settings, should_cancel=should_cancel,
               progress=lambda stage, fraction: reports.append((stage, fraction)))
    after = reports[[i for i, (stage, f) in enumerate(reports) if stage == "reconstruction" and f > 0][0] + 1:]
    assert all(stage == "reconstruction" for stage, _ in after) and len(after) <= 1  # no surface


def test_a_given_elevation_with_the_estimate_on_is_noted(one2345_settings):
    given = GenerateSettings(**one2345_settings)  # the estimate off: the elevation is used
    estimating = GenerateSettings(**{**one2345_settings, "views_estimate_elevation": True})
    assert engine.elevation_notes(given) == [] and engine.elevation_notes(GenerateSettings(family=ONE2345)) == []
    assert "--no-estimate-elevation" in engine.elevation_notes(estimating)[0]


# ---- the CPU estimate

class FakeClock:
    def __init__(self, step_seconds):
        self.now, self.step = 0.0, step_seconds

    def __call__(self):
        self.now += self.step
        return self.now


def test_the_cpu_estimate_refuses_a_job_over_the_limit_saying_how_long_and_what_to_do():
    settings = GenerateSettings(family=ONE2345, one2345_cpu_minutes=60.0)  # 75 steps: 2,176 view steps
    assert view_steps(settings) == 8 * 76 + 32 * 49
    budget = CpuBudget(settings, "cpu", "One-2-3-45", CPU_LIMIT, clock=FakeClock(16.0))  # 4 s per view and step
    budget.watch("first_views", 0.0)
    budget.watch("first_views", 1 / 125)
    with pytest.raises(DeviceError) as caught:
        budget.watch("first_views", 2 / 125)
    assert budget.estimate_minutes == pytest.approx(4.0 * 2176 / 60)
    message = caught.value.message
    assert "about 2.4 hours on this CPU" in message and "4.0 s per view and step, 2,176 view steps" in message
    assert "set the CPU Time Limit to 0, no limit (--cpu-minutes 0)" in message


@pytest.mark.parametrize("device, limit", [("cpu", 0.0), ("cuda", 1.0), ("cpu", 200.0)])
def test_no_limit_a_gpu_or_a_job_within_the_limit_runs(device, limit):
    settings = GenerateSettings(family=ONE2345, one2345_cpu_minutes=limit, views_estimate_elevation=False)
    budget = CpuBudget(settings, device, "One-2-3-45", CPU_LIMIT, clock=FakeClock(8.0))  # 1 s per view (8 a batch)
    for step in range(5):
        budget.watch("views", step / 125)
    assert budget.estimate_minutes == (None if device == "cuda" else pytest.approx(2176 / 60))


def test_the_views_progress_is_told_in_steps_and_after_the_estimate_in_minutes_left():
    settings = GenerateSettings(family=ONE2345)  # 75 steps, the elevation estimated: 2 x (76 + 49) UNet steps
    told = []
    clock = StageClock(None, None, detail=lambda stage, fraction, text: told.append((stage, round(fraction, 3), text)))
    budget = CpuBudget(settings, "cpu", "One-2-3-45", CPU_LIMIT, clock=FakeClock(4.0))  # 1 s per view and step
    progress = engine._ViewsProgress(clock, budget, settings)
    progress("prepare", 0.0)
    clock.start("prepare")
    progress("prepare", 1.0)
    for step in range(3):
        progress("first_views", step / 125)
    progress("views", 0.5)
    assert told[0] == ("views", 0.0, "views 0/250 steps") and told[1] == ("views", 0.004, "views 1/250 steps")
    minutes = 2176 / 60  # the whole views' estimate; half of it is left halfway
    assert told[2][2] == f"views 2/250 steps, about {round(minutes * (1 - 2 / 250))} min left"
    assert told[-1] == ("views", 0.75, f"views 188/250 steps, about {round(minutes * 0.25)} min left")


# ---- the real job on the tiny random models

def test_the_job_makes_a_coloured_object_and_keeps_the_views(one2345_reference):
    result = one2345_reference
    assert len(result.vertices) > 100 and result.faces.max() < len(result.vertices)
    assert result.colors.shape == (len(result.vertices), 4)
    assert result.prepared_image.shape == (9 * 128, 5 * 128, 3)
    assert set(result.timings) >= {"prepare", "views", "reconstruction", "surface", "colors"}


def test_cancel_during_the_views_stops_between_unet_steps(one2345_models, views_picture, one2345_settings):
    from backend.pipeline import generate_mesh, load_model

    loaded = load_model(one2345_models, "cpu", family=ONE2345)
    reports = []

    def should_cancel():
        return any(stage == "views" and fraction > 0 for stage, fraction in reports)

    settings = GenerateSettings(**{**one2345_settings, "views_steps": 60})
    with pytest.raises(Cancelled):
        generate_mesh(loaded, views_picture, settings, lambda s, f: reports.append((s, f)), should_cancel)
    stepped = [f for s, f in reports if s == "views" and f > 0]
    assert len(stepped) == 1 and stepped[0] < 0.05  # one UNet step, then the cancel before the next
    assert "reconstruction" not in [s for s, _ in reports]


def test_make_test_model_writes_one_folder_per_slot(tmp_path):
    done = subprocess.run([sys.executable, "-m", "backend", "make-test-model", "one2345", str(tmp_path)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for slot, label in (("zero123_xl", "Zero123-XL model"), ("loftr", "LoFTR matcher"),
                        ("sparseneus", "SparseNeuS model")):
        assert f"random-weight {label}" in done.stdout and Path(tmp_path / slot).is_dir()
    assert detect_family(tmp_path).family == ONE2345
