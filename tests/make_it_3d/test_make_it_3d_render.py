"""The volume renderer and the mesh rasteriser against direct computations."""

import math

import numpy as np
import pytest
import torch

from backend.make_it_3d.cameras import Camera
from backend.make_it_3d.field import empty_field
from backend.make_it_3d.mesh_view import rasterize_mesh, render_textured, uv_at
from backend.make_it_3d.render import composite, normals, ray_box, render, sample_pdf


class BallField:
    """Density `inside` within a ball, 0 outside; colour red right of x = 0 (model +y)."""

    radius = 0.87

    def __init__(self, centre=(0.0, 0.0, 0.0), size=0.3, inside=50.0):
        self.centre, self.size, self.inside = torch.tensor(centre), size, inside

    def density_and_color(self, points):
        inside = ((points - self.centre).norm(dim=1) < self.size).float()
        rgb = torch.stack((torch.ones_like(inside), 0.5 * torch.ones_like(inside), torch.zeros_like(inside)), dim=1)
        return self.inside * inside, rgb


def test_composite_matches_a_loop():
    sigma = torch.tensor([[0.5, 2.0, 0.0, 7.0]])
    z = torch.tensor([[1.0, 1.2, 1.5, 1.6]])
    far = torch.tensor([1.9])
    weights = composite(sigma, z, far)[0]
    transmittance, expected = 1.0, []
    deltas = [0.2, 0.3, 0.1, 0.3]
    for s, d in zip(sigma[0].tolist(), deltas):
        alpha = 1 - math.exp(-s * d)
        expected.append(alpha * transmittance)
        transmittance *= 1 - alpha
    torch.testing.assert_close(weights, torch.tensor(expected), atol=1e-6, rtol=1e-5)


def test_ray_box():
    origins = torch.tensor([[2.0, 0.0, 0.0], [2.0, 2.0, 0.0]])
    directions = torch.tensor([[-1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]])
    near, far, hit = ray_box(origins, directions, 0.5)
    assert hit.tolist() == [True, False]
    assert (float(near[0]), float(far[0])) == pytest.approx((1.5, 2.5))


def test_sample_pdf_draws_where_the_weight_is():
    z = torch.linspace(0, 1, 33)[None]
    weights = torch.zeros(1, 33)
    weights[0, 20] = 1.0
    drawn = sample_pdf(z, weights, 500, torch.Generator().manual_seed(0))
    inside = ((drawn > z[0, 19]) & (drawn < z[0, 21])).float().mean()
    assert float(inside) > 0.95


def test_render_of_a_ball_is_opaque_where_it_is_and_coloured():
    camera = Camera(0.0, 0.0, 1.9, 40.0, 32)
    background = torch.tensor([0.0, 0.0, 1.0])
    out = render(BallField((0.0, 0.3, 0.0), 0.2), camera, background, torch.Generator().manual_seed(0), 64, 32)
    right, left = out.opacity[:, 20:].max(), out.opacity[:, :12].max()
    assert float(right) > 0.99 and float(left) < 1e-6  # model +y is the image's right
    centre = out.image[16, 23]
    torch.testing.assert_close(centre, torch.tensor([1.0, 0.5, 0.0]), atol=1e-3, rtol=0)
    torch.testing.assert_close(out.image[16, 2], background)
    # where that pixel's ray enters the ball, plus about the mean free path inside (1 / 50)
    origins, directions = camera.rays()
    o, d = origins[16 * 32 + 23], directions[16 * 32 + 23]
    offset = o - torch.tensor([0.0, 0.3, 0.0])
    b = float(offset @ d)
    entry = -b - math.sqrt(b * b - float(offset @ offset) + 0.2**2)
    assert float(out.depth[16, 23]) == pytest.approx(entry + 1 / 50, abs=0.01)


def test_checkpointing_changes_no_gradient():
    generator = torch.Generator().manual_seed(0)
    field = empty_field(generator, "cpu", channels=4, resolution=8, width=16)
    camera = Camera(30.0, 10.0, 1.9, 40.0, 12)
    grads = []
    for use_checkpoint in (False, True):
        field.zero_grad()
        out = render(field, camera, torch.tensor([0.5, 0.5, 0.5]), torch.Generator().manual_seed(1), 16, 8,
                     use_checkpoint=use_checkpoint)
        (out.image.sum() + out.depth.mean()).backward()
        grads.append(field.planes.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])
    assert float(grads[0].abs().sum()) > 0


def test_normals_of_a_radial_density_point_outward():
    class Radial:
        def density_and_color(self, points):
            return torch.exp(-(points**2).sum(1) * 4), torch.zeros_like(points)

    points = torch.tensor([[0.3, 0.0, 0.0], [0.0, -0.2, 0.1]])
    torch.testing.assert_close(normals(Radial(), points), torch.nn.functional.normalize(points, dim=1), atol=1e-3,
                               rtol=0)


def _quad(depth_x, half=0.4):
    """Two triangles of a square facing +x at x = depth_x (model frame)."""
    v = torch.tensor([[depth_x, -half, -half], [depth_x, half, -half], [depth_x, half, half], [depth_x, -half, half]])
    return v, torch.tensor([[0, 1, 2], [0, 2, 3]])


def test_rasteriser_keeps_the_nearest_face_and_interpolates_in_perspective():
    far_v, far_f = _quad(-0.3)
    near_v, near_f = _quad(0.2, half=0.1)
    vertices = torch.cat((far_v, near_v))
    faces = torch.cat((far_f, near_f + 4))
    camera = Camera(0.0, 0.0, 1.9, 40.0, 48)
    view = rasterize_mesh(vertices, faces, camera)
    depth = view.depth_image()
    assert float(depth[24, 24]) == pytest.approx(1.7, abs=1e-4)  # the near square in the middle
    assert float(depth[24, 14]) == pytest.approx(2.2, abs=1e-4)  # the far one around it
    assert torch.isinf(depth[0, 0])  # nothing in the corner
    # uv = (y, z) mapped to [0, 1] over the far square: exact at every pixel's ray hit
    corner_uvs = torch.stack([(vertices[f][:, 1:] / 0.8 + 0.5) for f in faces])
    uv = uv_at(view, corner_uvs)
    far = view.face < 2
    rows, columns = view.pixel // 48, view.pixel % 48
    origins, directions = camera.rays()
    hit = origins[view.pixel] + directions[view.pixel] * ((-0.3 - 1.9) / directions[view.pixel, :1])
    torch.testing.assert_close(uv[far], hit[far][:, 1:] / 0.8 + 0.5, atol=1e-4, rtol=0)
    assert rows.numel() == columns.numel() == view.face.numel()


def test_textured_render_looks_up_the_texture():
    vertices, faces = _quad(0.0, half=0.6)
    corner_uvs = torch.stack([(vertices[f][:, 1:] / 1.2 + 0.5) for f in faces])
    texture = torch.zeros(8, 8, 3)
    texture[:4] = torch.tensor([1.0, 0.0, 0.0])  # top half red (v > 0.5: model +z)
    texture[4:] = torch.tensor([0.0, 1.0, 0.0])
    camera = Camera(0.0, 0.0, 1.9, 40.0, 32)
    image = render_textured(rasterize_mesh(vertices, faces, camera), corner_uvs, texture, torch.tensor([0.0, 0, 1]))
    np.testing.assert_allclose(image[10, 16].numpy(), [1, 0, 0], atol=1e-5)
    np.testing.assert_allclose(image[22, 16].numpy(), [0, 1, 0], atol=1e-5)
    texture.requires_grad_()
    render_textured(rasterize_mesh(vertices, faces, camera), corner_uvs, texture, torch.zeros(3)).sum().backward()
    assert float(texture.grad.abs().sum()) > 0
