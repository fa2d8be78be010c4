"""Stable Diffusion guidance, CLIP and DPT with the tiny random models."""

import numpy as np
import pytest
import torch

from backend.make_it_3d.guidance import StableDiffusionGuidance
from backend.make_it_3d.perception import clip_embedding, median_filter, picture_depth


@pytest.fixture(scope="module")
def guidance(m3d_models):
    return StableDiffusionGuidance(m3d_models, "a red chair", "blurry")


def test_sds_gradient_is_weighted_noise_residual(m3d_models, guidance):
    """For fixed t and noise, the gradient SDS puts on the latent is w(t) (eps_hat - eps),
    w(t) = 1 - alphas_cumprod[t], eps_hat the classifier-free-guided U-Net prediction
    (computed here directly with the U-Net and the prompts' embeddings)."""
    generator = torch.Generator().manual_seed(3)
    latents = torch.randn((1, 4, 16, 16), generator=generator).requires_grad_()
    noise = torch.randn((1, 4, 16, 16), generator=generator)
    t, scale = 537, 7.5
    step = guidance.sds(latents, t, noise, scale)
    step.loss.backward()

    tokenizer, encoder, unet = m3d_models.tokenizer, m3d_models.text_encoder, m3d_models.unet
    with torch.no_grad():
        a = m3d_models.alphas_cumprod[t]
        noisy = a.sqrt() * latents.detach() + (1 - a).sqrt() * noise
        predictions = []
        for text in ("blurry", "a red chair"):
            ids = tokenizer([text], padding="max_length", max_length=tokenizer.model_max_length, return_tensors="pt")
            context = encoder(ids.input_ids)[0]
            predictions.append(unet(noisy, torch.tensor(t), encoder_hidden_states=context).sample)
        eps_hat = predictions[0] + scale * (predictions[1] - predictions[0])
        expected = (1 - a) * (eps_hat - noise)
    # float32 rounding (a batch of two against two of one) only; the values are O(1)
    torch.testing.assert_close(latents.grad, expected, rtol=1e-4, atol=2e-5)
    assert float(expected.abs().mean()) > 0.1


def test_sds_reaches_the_image_through_the_vae(guidance):
    generator = torch.Generator().manual_seed(0)
    image = torch.rand((1, 3, 32, 32), generator=generator, requires_grad=True)
    latents = guidance.encode_images(image, generator)
    assert latents.shape == (1, 4, 16, 16)  # the tiny VAE halves the size
    guidance.sds(latents, 400, guidance.latent_noise(latents, generator), 11.0).loss.backward()
    assert image.grad is not None and float(image.grad.abs().sum()) > 0


def test_denoised_estimate_inverts_the_noise(m3d_models, guidance):
    """With the true noise as the prediction, the one-step estimate decodes the clean latent."""
    generator = torch.Generator().manual_seed(1)
    latents = torch.randn((1, 4, 16, 16), generator=generator)
    noise = torch.randn((1, 4, 16, 16), generator=generator)
    t = 300
    noisy = guidance.add_noise(latents, noise, t)
    got = guidance.denoised_images(noisy, noise, t)
    vae = m3d_models.vae
    with torch.no_grad():
        expected = (vae.decode(latents / vae.config.scaling_factor).sample / 2 + 0.5).clamp(0, 1)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_timesteps_stay_in_range(guidance):
    generator = torch.Generator().manual_seed(0)
    drawn = [guidance.sample_timestep((0.2, 0.6), generator) for _ in range(400)]
    assert min(drawn) >= 200 and max(drawn) <= 600
    assert min(drawn) < 230 and max(drawn) > 570


def test_clip_embedding_is_unit_and_differentiable(m3d_models):
    images = torch.rand((2, 3, 40, 40), requires_grad=True)
    embedding = clip_embedding(m3d_models, images)
    torch.testing.assert_close(embedding.norm(dim=1), torch.ones(2))
    embedding[0, 0].backward()
    assert float(images.grad.abs().sum()) > 0


def test_median_filter_matches_numpy():
    image = torch.tensor(np.random.default_rng(0).uniform(0, 1, (9, 7)), dtype=torch.float32)
    got = median_filter(image, 5)
    padded = np.pad(image.numpy(), 2, mode="edge")
    expected = np.array([[np.median(padded[y:y + 5, x:x + 5]) for x in range(7)] for y in range(9)])
    # torch's median of an even count would differ; 25 values have one middle
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=0)


def test_picture_depth_is_positive_and_sized(m3d_models):
    depth = picture_depth(m3d_models, torch.rand(3, 50, 50), 24)
    assert depth.shape == (24, 24) and float(depth.min()) >= 1.0 and float(depth.max()) <= 100.0
