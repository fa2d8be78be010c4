"""The refine stage on a synthetic scene: a sphere seen by the reference camera, whose
picture is a known colour gradient. Where the reference view sees the surface the
texture must hold the picture's colours; elsewhere SDS changes it."""

import numpy as np
import pytest
import torch

from backend.bridge.settings import GenerateSettings
from backend.make_it_3d.cameras import reference_camera
from backend.make_it_3d.guidance import StableDiffusionGuidance
from backend.make_it_3d.job import reference_for
from backend.make_it_3d.mesh_view import face_normals, rasterize_mesh, render_textured
from backend.make_it_3d.monitor import IterationMonitor
from backend.make_it_3d.texture import project_picture, refine_texture, texel_rows
from backend.mesh.asset.stage import make_asset
from backend.mesh.coordinates import blender_to_model

SIZE = 64  # the picture's and the refine renders' size


@pytest.fixture(scope="module")
def scene(sphere_mesh, tiny_options):
    """The sphere through the mesh stage (grey texture), and a picture of it: colour
    gradient (red across, green down) inside its silhouette from the reference camera."""
    vertices, faces = sphere_mesh
    grey = lambda points: torch.full((points.shape[0], 3), 0.5)  # noqa: E731
    asset = make_asset(vertices, faces, GenerateSettings(max_faces=600, texture_size=128), grey)
    camera = reference_camera(tiny_options, SIZE)
    model_vertices = blender_to_model(torch.from_numpy(asset.vertices).float())
    view = rasterize_mesh(model_vertices, torch.from_numpy(asset.faces).long(), camera)
    mask = torch.zeros(SIZE * SIZE)
    mask[view.pixel] = 1.0
    rows, columns = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    picture = torch.stack(((columns + 0.5) / SIZE, (rows + 0.5) / SIZE, torch.full((SIZE, SIZE), 0.3)), dim=-1)
    return asset, camera, picture.float(), mask.view(SIZE, SIZE)


@pytest.fixture(scope="module")
def refined(scene, m3d_models, tiny_options):
    asset, _, picture, mask = scene
    options = tiny_options.with_changes(refine_render_size=SIZE, refine_iterations=4)
    rgba = np.concatenate((picture.numpy(), mask.numpy()[..., None]), axis=2)
    reference = reference_for(m3d_models, (rgba * 255).round().astype(np.uint8), options, torch.device("cpu"))
    guidance = StableDiffusionGuidance(m3d_models, "a colourful ball")
    monitor = IterationMonitor("texture", options.refine_iterations)
    base_color, colors, stats = refine_texture(asset, m3d_models, guidance, reference, picture, mask, options,
                                               torch.Generator().manual_seed(0), monitor)
    return base_color, colors, stats, monitor.history, options


def test_seen_texels_hold_the_pictures_colours(scene, refined):
    asset, camera, picture, mask = scene
    base_color, _, stats, _, options = refined
    vertices = blender_to_model(torch.from_numpy(asset.vertices).float())
    faces = torch.from_numpy(asset.faces).long()
    uvs = torch.from_numpy(asset.corner_uvs)
    projection = project_picture(vertices, faces, uvs, 128, camera, picture, mask, options.min_facing)
    seen = projection.seen
    share = float(seen.float().mean())
    assert 0.25 < share < 0.45  # the cap facing the camera by at least min_facing: (1 - 0.2) / 2 at most
    assert stats == {"texels": int(seen.numel()), "texels_from_picture": int(seen.sum())}
    texels = torch.from_numpy(base_color).float().reshape(-1, 3) / 255
    got = texels[texel_rows(projection.texel[seen], 128)]
    torch.testing.assert_close(got, projection.colour[seen], atol=0.5 / 255 + 1e-6, rtol=0)


def test_reference_view_of_the_texture_reproduces_the_picture(scene, refined):
    """Seen from the reference camera, the refined texture is the picture wherever the
    surface faces the camera; the grey texture it started from is not."""
    asset, camera, picture, _ = scene
    base_color = refined[0]
    vertices = blender_to_model(torch.from_numpy(asset.vertices).float())
    faces = torch.from_numpy(asset.faces).long()
    uvs = torch.from_numpy(asset.corner_uvs)
    view = rasterize_mesh(vertices, faces, camera)
    towards = torch.nn.functional.normalize(camera.position - vertices[faces[view.face]].mean(1), dim=1)
    facing = (face_normals(vertices, faces)[view.face] * towards).sum(1) > 0.4
    pixels = view.pixel[facing]
    expected = picture.reshape(-1, 3)[pixels]
    for texture, close in ((base_color, True), (asset.base_color, False)):
        image = render_textured(view, uvs, torch.from_numpy(texture).float() / 255, torch.zeros(3))
        error = (image.reshape(-1, 3)[pixels] - expected).abs()
        if close:
            assert float(error.mean()) < 0.02 and float(error.max()) < 0.1
        else:
            assert float(error.mean()) > 0.15


def test_unseen_texels_were_optimised(scene, refined):
    asset = scene[0]
    base_color, colors, _, history, options = refined
    assert len(history) == options.refine_iterations
    assert all(("sds" in h) != ("clip" in h) and "keep" in h for h in history)
    changed = np.abs(base_color.astype(int) - asset.base_color.astype(int)).max(axis=2) > 0
    assert changed.mean() > 0.5  # the seen cap (< 45 %) and the SDS-refined rest
    assert colors.shape == (len(asset.vertices), 4) and colors.dtype == np.uint8 and (colors[:, 3] == 255).all()
