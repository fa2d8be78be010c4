"""Each loss against a direct computation (numpy, plain loops) on fixed tensors."""

import math

import numpy as np
import pytest
import torch

from backend.make_it_3d import losses
from backend.make_it_3d.render import Rendering, regulariser_samples


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def test_reference_color_loss_is_the_masked_l1(rng):
    image, picture = rng.uniform(0, 1, (5, 6, 3)), rng.uniform(0, 1, (5, 6, 3))
    mask = (rng.uniform(0, 1, (5, 6)) > 0.4).astype(np.float64)
    mask[0, 0] = 0.5  # a soft edge pixel
    background = np.array([0.2, 0.7, 0.1])
    total = 0.0
    for y in range(5):
        for x in range(6):
            for c in range(3):
                target = picture[y, x, c] * mask[y, x] + background[c] * (1 - mask[y, x])
                total += abs(image[y, x, c] - target)
    got = losses.reference_color_loss(*(torch.tensor(a) for a in (image, picture, mask, background)))
    assert float(got) == pytest.approx(total / (5 * 6 * 3), rel=1e-12)


def test_depth_loss_is_one_minus_pearson_inside_the_mask(rng):
    depth, reference = rng.uniform(1, 3, (8, 8)), rng.uniform(1, 3, (8, 8))
    reference[:4] = 2 * depth[:4] + 1  # correlated where the mask is
    mask = np.zeros((8, 8))
    mask[:4] = 1
    expected = 1 - np.corrcoef(depth[:4].ravel(), reference[:4].ravel())[0, 1]
    got = losses.depth_loss(torch.tensor(depth), torch.tensor(reference), torch.tensor(mask))
    assert float(got) == pytest.approx(expected, abs=1e-9)
    assert float(got) == pytest.approx(0.0, abs=1e-9)  # a perfect (affine) match
    anti = losses.depth_loss(torch.tensor(depth), torch.tensor(-depth), torch.ones(8, 8, dtype=torch.float64))
    assert float(anti) == pytest.approx(2.0, abs=1e-9)


def test_depth_loss_with_too_few_pixels_is_zero_but_differentiable():
    depth = torch.ones(4, 4, requires_grad=True)
    loss = losses.depth_loss(depth, torch.ones(4, 4), torch.zeros(4, 4))
    loss.backward()
    assert float(loss.detach()) == 0.0 and depth.grad is not None


def test_opacity_and_entropy(rng):
    opacity = rng.uniform(0, 1, (4, 5))
    opacity[0, 0], opacity[0, 1] = 0.0, 1.0  # clamped to [1e-5, 1 - 1e-5]
    assert float(losses.opacity_loss(torch.tensor(opacity))) == pytest.approx((opacity**2).mean(), rel=1e-12)
    a = np.clip(opacity, 1e-5, 1 - 1e-5)
    entropy = np.mean([-p * math.log2(p) - (1 - p) * math.log2(1 - p) for p in a.ravel()])
    assert float(losses.entropy_loss(torch.tensor(opacity))) == pytest.approx(entropy, rel=1e-12)


def test_orientation_penalises_normals_facing_away(rng):
    normals = torch.tensor([[1.0, 0, 0], [-1.0, 0, 0], [0.6, 0.8, 0]])
    direction = torch.tensor([[1.0, 0, 0]] * 3)  # rays travelling along +x
    # facing away: n . d > 0 -> 1 and 0.6; facing the camera: 0
    expected = 0.5 * (1.0 + 0.0 + 0.36) / 3
    assert float(losses.orientation_loss(normals, direction, torch.tensor(0.5))) == pytest.approx(expected)


def test_orientation_estimate_from_drawn_samples_matches_the_full_sum(rng):
    """sum_k w_k max(0, n_k.d)^2 averaged over rays, computed directly, against the
    estimate from samples drawn in proportion to w (what the coarse stage uses)."""
    rays, samples = 6, 10
    weights = torch.tensor(rng.uniform(0, 0.2, (rays, samples)), dtype=torch.float32)
    points = torch.tensor(rng.normal(size=(rays, samples, 3)), dtype=torch.float32)
    directions = torch.nn.functional.normalize(torch.tensor(rng.normal(size=(rays, 3)), dtype=torch.float32), dim=1)
    normal_of = lambda p: torch.nn.functional.normalize(p, dim=-1)  # noqa: E731
    direct = sum(float(weights[r, k]) * max(0.0, float(normal_of(points[r, k]) @ directions[r])) ** 2
                 for r in range(rays) for k in range(samples)) / rays
    rendering = Rendering(torch.zeros(1, 1, 3), torch.zeros(1, 1), torch.zeros(1, 1), weights, points, directions)
    drawn = regulariser_samples(rendering, 200_000, torch.Generator().manual_seed(0))
    estimate = losses.orientation_loss(normal_of(drawn[0]), drawn[1], drawn[2])
    assert float(estimate) == pytest.approx(direct, rel=0.02)


def test_smoothness_and_clip(rng):
    a, b = rng.normal(size=(7, 3)), rng.normal(size=(7, 3))
    assert float(losses.smoothness_loss(torch.tensor(a), torch.tensor(b))) == pytest.approx(np.abs(a - b).mean())
    x, y = rng.normal(size=(2, 5)), rng.normal(size=(2, 5))
    cosine = [xi @ yi / np.linalg.norm(xi) / np.linalg.norm(yi) for xi, yi in zip(x, y)]
    assert float(losses.clip_loss(torch.tensor(x), torch.tensor(y))) == pytest.approx(-np.mean(cosine), rel=1e-12)


def test_sds_surrogate_has_the_given_gradient(rng):
    latents = torch.tensor(rng.normal(size=(1, 4, 3, 3)), requires_grad=True)
    gradient = torch.tensor(rng.normal(size=(1, 4, 3, 3)))
    loss = losses.sds_surrogate(latents, gradient)
    loss.backward()
    torch.testing.assert_close(latents.grad, gradient, rtol=0, atol=1e-12)
    assert float(loss.detach()) == pytest.approx(0.5 * float((gradient**2).sum()))
