"""Cameras (which way the image looks) and the progressive schedule (how it widens)."""

import pytest
import torch

from backend.make_it_3d.cameras import Camera, camera_for, half_width, is_reference, novel_camera, reference_camera
from backend.make_it_3d.options import RefineOptions


def test_schedule_widens_as_specified():
    options = RefineOptions(front_iterations=100, widen_iterations=200, front_half_width=45.0)
    assert half_width(0, options) == 45.0
    assert half_width(99, options) == 45.0
    assert half_width(100, options) == 45.0
    assert half_width(200, options) == pytest.approx(45.0 + 135.0 / 2)  # halfway through the widening
    assert half_width(300, options) == 180.0
    assert half_width(10_000, options) == 180.0
    widths = [half_width(i, options) for i in range(400)]
    assert all(b >= a for a, b in zip(widths, widths[1:]))  # never narrows


def test_paper_schedule_jumps_to_the_full_circle():
    paper = RefineOptions.paper()
    assert (paper.coarse_iterations, paper.front_iterations, paper.refine_iterations) == (7000, 2000, 3000)
    assert half_width(1999, paper) == 45.0 and half_width(2000, paper) == 180.0


def test_novel_cameras_stay_within_the_schedule():
    options = RefineOptions(front_iterations=10, widen_iterations=10)
    generator = torch.Generator().manual_seed(0)
    for iteration, width in ((0, 45.0), (15, 112.5), (40, 180.0)):
        azimuths = [novel_camera(iteration, options, generator).azimuth for _ in range(300)]
        assert max(abs(a) for a in azimuths) <= width
        assert max(abs(a) for a in azimuths) > 0.9 * width  # and reach its edge
    cameras = [novel_camera(0, options, generator) for _ in range(300)]
    assert all(-20 <= c.elevation <= 20 and 1.9 <= c.distance <= 2.85 and 30 <= c.fov <= 50 for c in cameras)


def test_every_fourth_iteration_is_the_reference_view():
    options = RefineOptions()
    generator = torch.Generator().manual_seed(0)
    assert [is_reference(i, options) for i in range(8)] == [True, False, False, False] * 2
    camera, at_reference = camera_for(8, options, generator)
    assert at_reference and camera == reference_camera(options)
    assert (camera.azimuth, camera.elevation, camera.distance, camera.fov) == (0.0, 0.0, 1.9, 40.0)


def test_image_axes_follow_the_model_frame():
    """The picture's camera is on +x: the model's +y is the image's right, +z its top."""
    camera = Camera(0.0, 0.0, 1.9, 40.0, 64)
    column, row, depth = camera.project(torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.3, 0.0], [0.0, 0.0, 0.3]]))
    assert column[0] == pytest.approx(32) and row[0] == pytest.approx(32) and depth[0] == pytest.approx(1.9)
    assert column[1] > 40 and row[1] == pytest.approx(32)
    assert row[2] < 24 and column[2] == pytest.approx(32)


def test_rays_go_through_the_pixels_they_are_for():
    camera = Camera(37.0, 12.0, 2.3, 35.0, 16)
    origins, directions = camera.rays()
    column, row, _ = camera.project(origins + 1.7 * directions)
    centres = torch.arange(16, dtype=torch.float32) + 0.5
    torch.testing.assert_close(column.view(16, 16), centres.expand(16, 16), atol=1e-4, rtol=0)
    torch.testing.assert_close(row.view(16, 16), centres[:, None].expand(16, 16), atol=1e-4, rtol=0)
