"""Make-It-3D as a model family, in this process: its declaration in the registry, its model
folders, and a job through the one job function (backend.pipeline) with tiny models:
the finished mesh, progress in words, previews, cancel, the refusals."""

import dataclasses
import re

import numpy as np
import pytest

from backend.bridge.errors import Cancelled, DeviceError, PromptError
from backend.bridge.settings import GenerateSettings, job_stages
from backend.families.registry import FAMILIES_BY_NAME
from backend.make_it_3d.declaration import FAMILY, MAKE_IT_3D
from backend.triposr.declaration import MODEL as TRIPOSR_MODEL

PROMPT = "a red and blue disc"
DETAIL = re.compile(r"^(coarse|texture) (\d+)/(\d+), loss (-?[0-9.e+-]+|nan|inf)$")


def test_the_family_is_registered_with_its_four_model_folders():
    family = FAMILIES_BY_NAME[MAKE_IT_3D]
    assert family.tasks == ("image",) and family.prompt_with_image and family.finishes_mesh
    slots = family.slots_for("image")
    assert slots[0] is TRIPOSR_MODEL  # TripoSR's own slot: one folder, one preference for both families
    assert [slot.preference for slot in slots] == ["model_path", "sd2_model_path", "clip_model_path", "dpt_model_path"]
    assert [slot.hub_repo for slot in slots[1:]] == ["stabilityai/stable-diffusion-2-base",
                                                     "openai/clip-vit-large-patch14", "Intel/dpt-hybrid-midas"]
    assert slots[3].hub_revision == "refs/pr/7" and slots[1].hub_revision is None
    assert all(option.name.startswith("m3d_") and option.families == (MAKE_IT_3D,) for option in family.options)
    assert family.seed_option == "m3d_seed" and family.resolution_option == "m3d_resolution"
    weights = {stage.name: stage.weight for stage in family.stages + family.finishing_stages}
    assert weights["coarse"] > 10 * weights["bake"] and weights["texture"] > 10 * weights["bake"]


def test_a_job_reports_the_mesh_stage_it_runs_itself():
    stages = job_stages(GenerateSettings(family=MAKE_IT_3D))  # whatever the mesh options: a texture is made
    assert stages == ("prepare", "encode", "depth", "coarse", "surface", "cleanup", "decimate", "colors", "unwrap",
                      "bake", "texture")


def test_a_folder_of_its_model_folders_is_recognised(m3d_family_dir, m3d_dirs):
    from backend.model_folder import detect_family, resolve_model_folders

    assert detect_family(m3d_family_dir).family == MAKE_IT_3D
    folders = resolve_model_folders(str(m3d_family_dir), MAKE_IT_3D, "image")
    assert set(folders) == {"triposr", "stable_diffusion", "clip", "depth"}
    assert folders["clip"].resolve() == m3d_dirs["clip"].resolve()
    # TripoSR's folder is TripoSR's and also Make-It-3D's start, never "another family's"
    assert detect_family(m3d_family_dir / "triposr").family == "TRIPOSR"
    assert resolve_model_folders({**{k: str(v) for k, v in folders.items()}}, MAKE_IT_3D, "image") == folders


def test_options_become_the_job_s(m3d_models):
    from backend.make_it_3d.engine import native_size, refine_options

    settings = GenerateSettings(family=MAKE_IT_3D, m3d_coarse_iterations=800, m3d_seed=5, m3d_render_size=64,
                                m3d_cpu_minutes=0.0)
    options = refine_options(settings, m3d_models)
    assert (options.coarse_iterations, options.front_iterations, options.widen_iterations) == (800, 200, 400)
    assert options.seed == 5 and options.render_size == 64 and options.cpu_limit_minutes == 0.0
    assert options.sd_size == options.refine_render_size == native_size(m3d_models) == 32  # the tiny SD's own size
    empty = refine_options(dataclasses.replace(settings, m3d_start="EMPTY", m3d_coarse_iterations=7000), m3d_models)
    assert (empty.front_iterations, empty.widen_iterations, empty.diffusion_start) == (2000, 0, 400)  # the paper's


def test_a_texture_is_forced_and_said_so():
    from backend.make_it_3d.engine import FORCED_FACES, FORCED_TEXTURE, mesh_settings

    notes = []
    raw = mesh_settings(GenerateSettings(family=MAKE_IT_3D), notes)
    assert (raw.texture_size, raw.max_faces) == (FORCED_TEXTURE, FORCED_FACES) and "refines a texture" in notes[0]
    notes = []
    given = GenerateSettings(family=MAKE_IT_3D, texture_size=256, max_faces=500, smooth_iterations=2)
    assert mesh_settings(given, notes) is given and notes == []


def test_previews_are_made_small():
    from backend.make_it_3d.engine import PREVIEW_SIDE, small

    image = np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    shrunk = small(image)
    assert shrunk.shape == (PREVIEW_SIDE, PREVIEW_SIDE, 3) and shrunk.dtype == np.uint8
    expected = image[:2, :2].reshape(4, 3).mean(axis=0).round()
    np.testing.assert_array_equal(shrunk[0, 0], expected)  # block means
    assert small(image[:100, :80]).shape == (100, 80, 3)


def test_the_clock_words_and_previews_fall_back():
    from backend.families.engine_api import StageClock

    heard = []
    plain = StageClock(lambda stage, fraction: heard.append((stage, fraction)), None)
    plain.tell("coarse", 0.5, "coarse 2/4, loss 1")
    plain.show(np.zeros((2, 2, 3), np.uint8), "coarse", 2)  # nobody listens: nothing happens
    assert heard == [("coarse", 0.5)]
    words, shown = [], []
    listening = StageClock(lambda *a: heard.append(a), None, detail=lambda *a: words.append(a),
                           preview=lambda image, stage, iteration: shown.append((image.shape, stage, iteration)))
    listening.tell("coarse", 0.75, "coarse 3/4, loss 1")
    listening.show(np.zeros((2, 2, 3), np.uint8), "coarse", 3)
    assert words == [("coarse", 0.75, "coarse 3/4, loss 1")] and shown == [((2, 2, 3), "coarse", 3)]
    assert len(heard) == 1  # words go instead of plain progress


def test_finishing_stages_are_checked():
    from backend.families.contract import Stage
    from backend.families.registry import FamilyDeclarationError, _checked

    mine = dataclasses.replace(FAMILY, identifier="OTHER", options=(), resolution_option=None, seed_option=None)
    clash = dataclasses.replace(mine, finishing_stages=(Stage("coarse", 1.0),))  # one of its own stages
    with pytest.raises(FamilyDeclarationError, match="finishing stages"):
        _checked(clash, [])
    assert _checked(mine, []).finishes_mesh


@pytest.fixture(scope="module")
def loaded(m3d_family_dir):
    from backend.pipeline import load_model

    return load_model(str(m3d_family_dir), "cpu", family=MAKE_IT_3D, task="image")


@pytest.fixture(scope="module")
def job(loaded, disc_rgba, m3d_fast):
    from backend.pipeline import generate_mesh

    plain, words, previews = [], [], []
    result = generate_mesh(loaded, disc_rgba, GenerateSettings(**m3d_fast), prompt=PROMPT,
                           progress=lambda stage, fraction: plain.append((stage, fraction)),
                           detail=lambda stage, fraction, text: words.append((stage, fraction, text)),
                           preview=lambda image, stage, iteration: previews.append((image, stage, iteration)))
    return result, plain, words, previews


def test_the_job_gives_a_textured_mesh(job, m3d_fast):
    result = job[0]
    assert 4 <= len(result.faces) <= m3d_fast["max_faces"] and result.vertices.dtype == np.float32
    assert result.uvs.shape == (len(result.faces), 3, 2)
    assert result.base_color.shape == result.normal_map.shape == (128, 128, 3)
    assert result.colors.shape == (len(result.vertices), 4) and result.prepared_image.shape[2] == 3
    assert {"encode", "depth", "coarse", "texture", "bake_color"} <= set(result.timings)
    assert any("comes from the picture" in note for note in result.notes)


def test_the_job_reports_its_stages_in_order_with_the_loss(job, m3d_fast):
    _, plain, words, _ = job
    seen = []
    for stage in [event[0] for event in _in_call_order(plain, words)]:
        if not seen or seen[-1] != stage:
            seen.append(stage)
    assert seen == list(job_stages(GenerateSettings(**m3d_fast)))
    for stage, total in (("coarse", m3d_fast["m3d_coarse_iterations"]), ("texture", m3d_fast["m3d_refine_iterations"])):
        said = [DETAIL.match(text) for name, _, text in words if name == stage]
        assert all(said) and [int(m[2]) for m in said] == list(range(1, total + 1))
        assert all(int(m[3]) == total and m[1] == stage for m in said)
    assert all(np.isfinite(float(DETAIL.match(text)[4])) for _, _, text in words)


def _in_call_order(plain, words):
    """Both callbacks' events in the order they were made: words only come between a
    stage's plain start (0) and end (1), so they slot in before that stage's end."""
    merged, pending = [], list(words)
    for event in plain:
        if event[1] >= 1.0:
            merged += [w for w in pending if w[0] == event[0]]
            pending = [w for w in pending if w[0] != event[0]]
        merged.append(event)
    return merged + pending


def test_the_job_shows_previews_every_few_iterations(job, m3d_fast):
    previews = job[3]
    assert [(stage, iteration) for _, stage, iteration in previews] == [
        ("coarse", 2), ("coarse", 4), ("coarse", 6), ("texture", 2), ("texture", 3)]
    for image, stage, _ in previews:
        side = m3d_fast["m3d_render_size"] if stage == "coarse" else 32  # the coarse render; the tiny SD's size
        assert image.shape == (side, side, 3) and image.dtype == np.uint8


def test_cancel_stops_within_an_iteration(loaded, disc_rgba, m3d_fast):
    from backend.pipeline import generate_mesh

    words = []
    with pytest.raises(Cancelled):
        generate_mesh(loaded, disc_rgba, GenerateSettings(**{**m3d_fast, "m3d_coarse_iterations": 50}), prompt=PROMPT,
                      detail=lambda stage, fraction, text: words.append(text),
                      should_cancel=lambda: len(words) >= 3)
    assert [text.split(", loss")[0] for text in words] == ["coarse 1/50", "coarse 2/50", "coarse 3/50"]


def test_a_prompt_is_required(loaded, disc_rgba, m3d_fast):
    from backend.pipeline import generate_mesh

    with pytest.raises(PromptError, match="Make-It-3D needs a prompt"):
        generate_mesh(loaded, disc_rgba, GenerateSettings(**m3d_fast), prompt="   ")


def test_a_cpu_run_that_takes_too_long_is_refused_saying_how_to_run_it_anyway(loaded, disc_rgba, m3d_fast):
    from backend.pipeline import generate_mesh

    settings = GenerateSettings(**{**m3d_fast, "m3d_cpu_minutes": 1e-6})
    with pytest.raises(DeviceError) as refused:
        generate_mesh(loaded, disc_rgba, settings, prompt=PROMPT)
    message = refused.value.message
    assert message.startswith("Make-It-3D needs a GPU: about 1 minute on this CPU")
    assert "--cpu-minutes 0" in message and "CPU Time Limit" in message


def test_the_cli_takes_a_prompt_with_images_only_for_the_family_that_asks(m3d_family_dir, disc_rgba, tmp_path, capsys):
    from PIL import Image

    from backend.cli import main

    picture = tmp_path / "disc.png"
    Image.fromarray(disc_rgba, "RGBA").save(picture)
    out = ["--out", str(tmp_path / "out")]
    tiny_triposr = str(m3d_family_dir / "triposr")
    assert main(["generate", str(picture), "--prompt", "a disc", "--model", tiny_triposr, *out]) == 2
    assert "TripoSR jobs take exactly one of an image or a prompt, not both" in capsys.readouterr().err
    # the family comes from the folder of its four model folders
    assert main(["generate", str(picture), "--model", str(m3d_family_dir), *out]) == 2
    assert "Make-It-3D needs a prompt with the image: describe the object it shows (--prompt TEXT)" in \
        capsys.readouterr().err
    assert main(["generate", str(picture), "--prompt", "a", "--prompt", "b", "--model", str(m3d_family_dir), *out]) == 2
    assert "images take at most one --prompt" in capsys.readouterr().err
    assert main(["generate", str(picture), "--prompt", "a disc", "--model", str(m3d_family_dir), "--threshold", "3",
                 *out]) == 2
    assert "--threshold: not used by Make-It-3D image jobs" in capsys.readouterr().err
