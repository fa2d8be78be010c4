"""The Shap-E job through the one job function: determinism, progress, cancel, inputs and errors."""

import numpy as np
import pytest
from shap_e_helpers import is_watertight, signed_volume

from backend.bridge.errors import Cancelled, InputImageError, PromptError, WrongModelError
from backend.bridge.settings import GenerateSettings, job_stages
from backend.pipeline import generate_mesh
from backend.shap_e.declaration import SHAP_E

FAST = dict(family=SHAP_E, steps=6, shap_e_resolution=40)
STAGES = job_stages(GenerateSettings(**FAST))  # prepare, encode, diffusion, field, surface, colors
CHAIR = "a red wooden chair"


def settings(**changes) -> GenerateSettings:
    return GenerateSettings(**{**FAST, **changes})


def text_job(model, prompt=CHAIR, **changes):
    return generate_mesh(model, None, settings(**changes), prompt=prompt)


def test_result_types(text_model):
    result = text_job(text_model)
    assert result.vertices.dtype == np.float32 and result.vertices.shape[1] == 3
    assert result.faces.dtype == np.int32 and result.faces.shape[1] == 3
    assert result.colors.dtype == np.uint8 and result.colors.shape == (len(result.vertices), 4)
    assert (result.colors[:, 3] == 255).all() and result.colors[:, :3].std() > 5  # coloured, opaque
    assert result.faces.min() == 0 and result.faces.max() == len(result.vertices) - 1
    assert np.abs(result.vertices).max() <= 1.0  # inside Shap-E's [-1, 1] box
    assert result.prepared_image.shape == (0, 0, 3) and result.notes == []  # no picture for a prompt
    assert set(result.timings) == set(STAGES)


def test_mesh_is_closed_and_wound_outward(text_model):
    result = text_job(text_model, shap_e_resolution=48)
    assert is_watertight(result.vertices, result.faces)
    assert signed_volume(result.vertices, result.faces) > 0


def test_same_seed_same_mesh(text_model):
    first, second = text_job(text_model, seed=7), text_job(text_model, seed=7)
    assert np.array_equal(first.vertices, second.vertices)
    assert np.array_equal(first.faces, second.faces)
    assert np.array_equal(first.colors, second.colors)


def test_other_seed_or_prompt_other_mesh(text_model):
    base = text_job(text_model, seed=7)
    for other in (text_job(text_model, seed=8), text_job(text_model, "a blue teapot", seed=7)):
        assert len(other.vertices) != len(base.vertices) or not np.array_equal(other.vertices, base.vertices)


def test_resolution_is_the_decoder_grid(text_model):
    coarse, fine = text_job(text_model, shap_e_resolution=24), text_job(text_model, shap_e_resolution=48)
    assert len(fine.faces) > 2 * len(coarse.faces)


def test_progress_reports_every_prior_evaluation(text_model):
    events = []
    generate_mesh(text_model, None, settings(steps=5), progress=lambda stage, fraction: events.append((stage, fraction)),
                  prompt=CHAIR)
    assert [s for s, f in events if f == 0.0] == list(STAGES)  # each stage opens, in order
    assert [s for s, f in events if f == 1.0] == list(STAGES)  # and closes
    diffusion = [f for s, f in events if s == "diffusion"]
    # Heun evaluates the prior twice per step except on the last: 2 * 5 - 1
    assert diffusion[1:-1] == pytest.approx([i / 9 for i in range(1, 9)])
    assert diffusion == sorted(diffusion)


class CancelAfter:
    """should_cancel() that turns True once the prior has run `calls` times."""

    def __init__(self, model, calls):
        self.count, self.calls = 0, calls
        self.handle = model.pipeline.prior.register_forward_hook(self._seen)

    def _seen(self, *args):
        self.count += 1

    def __call__(self):
        return self.count >= self.calls


def test_cancel_mid_diffusion(text_model):
    cancel = CancelAfter(text_model, calls=3)
    try:
        with pytest.raises(Cancelled) as caught:
            generate_mesh(text_model, None, settings(steps=8), should_cancel=cancel, prompt=CHAIR)
    finally:
        cancel.handle.remove()
    assert cancel.count == 3  # stopped between steps: no further prior evaluation
    assert caught.value.code == "cancelled"
    assert "progress_bar" not in vars(text_model.pipeline)  # the hook is gone


def test_a_cancelled_job_leaves_the_model_as_it_was(text_model):
    before = text_job(text_model, seed=3)
    cancel = CancelAfter(text_model, calls=2)
    try:
        with pytest.raises(Cancelled):
            generate_mesh(text_model, None, settings(seed=3), should_cancel=cancel, prompt=CHAIR)
    finally:
        cancel.handle.remove()
    after = text_job(text_model, seed=3)
    assert np.array_equal(before.vertices, after.vertices) and np.array_equal(before.colors, after.colors)


def test_cancel_while_decoding(text_model):
    stages = []
    with pytest.raises(Cancelled):
        generate_mesh(text_model, None, settings(shap_e_resolution=64), progress=lambda s, f: stages.append(s),
                      should_cancel=lambda: "field" in stages, chunk_size=4096, prompt=CHAIR)
    assert "surface" not in stages


@pytest.mark.parametrize("prompt", ["", "   ", "\n\t"])
def test_empty_prompt(text_model, prompt):
    with pytest.raises(PromptError, match="the prompt is empty") as caught:
        text_job(text_model, prompt)
    assert caught.value.code == "bad_prompt"


LONG = "a tall red wooden chair with four legs and a round seat " * 12


def test_long_prompt_is_truncated_with_a_note(text_model):
    (note,) = text_job(text_model, LONG).notes
    assert "reads 75" in note and "this end was ignored" in note and "round seat" in note


def test_the_encoder_reads_the_first_77_tokens(text_model):
    seen = []
    hook = text_model.pipeline.text_encoder.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    try:
        text_job(text_model, LONG)
    finally:
        hook.remove()
    tokenizer = text_model.pipeline.tokenizer
    ids = tokenizer(" ".join(LONG.split())).input_ids
    assert seen[0].tolist() == [ids[:76] + [tokenizer.eos_token_id]]  # start marker, 75 tokens, end marker


def test_prompt_at_the_limit_has_no_note(text_model):
    prompt = " ".join(["chair"] * 75)
    assert len(text_model.pipeline.tokenizer(prompt).input_ids) == 77
    assert text_job(text_model, prompt).notes == []


def test_image_job(image_model, disc_picture):
    result = generate_mesh(image_model, disc_picture, settings())
    assert len(result.faces) > 0
    prepared = result.prepared_image
    assert prepared.shape == (64, 64, 3) and tuple(prepared[0, 0]) == (255, 255, 255)  # transparent -> white
    again = generate_mesh(image_model, disc_picture, settings())
    assert np.array_equal(result.vertices, again.vertices)


def test_image_job_errors(image_model, tmp_path):
    with pytest.raises(InputImageError, match="no image"):
        generate_mesh(image_model, None, settings())
    (tmp_path / "not.png").write_text("text")
    with pytest.raises(InputImageError, match="not an image file"):
        generate_mesh(image_model, tmp_path / "not.png", settings())
    with pytest.raises(InputImageError, match="fully transparent"):
        generate_mesh(image_model, np.zeros((8, 8, 4), np.uint8), settings())


def test_job_must_match_the_loaded_model(text_model, image_model, disc_picture):
    with pytest.raises(WrongModelError, match="needs openai/shap-e-img2img"):
        generate_mesh(text_model, disc_picture, settings())
    with pytest.raises(WrongModelError, match="needs openai/shap-e$"):
        text_job(image_model)
    with pytest.raises(WrongModelError, match="the loaded model is Shap-E, but this job asks for TripoSR"):
        generate_mesh(text_model, disc_picture, GenerateSettings())


def test_the_mesh_stage_works_on_shap_e_s_surface(text_model):
    raw = text_job(text_model, shap_e_resolution=48)
    events = []
    settings_in = settings(shap_e_resolution=48, max_faces=1000, texture_size=256, smooth_iterations=1)
    asset = generate_mesh(text_model, None, settings_in, progress=lambda s, f: events.append(s), prompt=CHAIR)
    assert len(asset.faces) <= 1000 < len(raw.faces)
    assert asset.uvs.shape == (len(asset.faces), 3, 2) and asset.base_color.shape == (256, 256, 3)
    assert asset.normal_map.shape == (256, 256, 3) and asset.colors.shape == (len(asset.vertices), 4)
    assert list(dict.fromkeys(events)) == list(job_stages(settings_in))
    assert "diffusion" in events and "bake" in events
    # the texture holds the model's colours: its mean is near the raw mesh's vertex colours' mean
    assert abs(asset.base_color.reshape(-1, 3).mean(0) - raw.colors[:, :3].mean(0)).max() < 40
