"""One-2-3-45's view plan and camera poses (run.py, utils/zero123_utils.py, utils/utils.py).

Polar angles are degrees from the +z axis (90 = level with the object); the input picture
is taken to be at azimuth 30 and the estimated (or given) polar angle P.

Stage 1 draws views of the input at relative poses (d_polar, d_azimuth):
  index 0..3:  (0, 0 / 90 / 180 / 270)            - the input's own elevation
  index 4..7:  (+30, 30 / 120 / 210 / 300)        - below it, used when P <= 75
  index 8..11: (-30, 30 / 120 / 210 / 300)        - above it, used when P > 75
Stage 2 draws 4 nearby views of each stage-1 view i (id "i_k") at (-10, 0), (+10, 0),
(0, -10), (0, +10) relative to it; positive d_polar moves the camera down.
"""

from dataclasses import dataclass

import numpy as np
import torch

STAGE2_DELTAS = ((-10, 0), (10, 0), (0, -10), (0, 10))
INPUT_AZIMUTH = 30
RING_OFFSET = 30
SPLIT_POLAR = 75  # P <= 75: the second ring is below the input's; otherwise above
RADIUS = 1.2
FOCAL = 280.0
SIZE = 256
NEAR_FAR = (RADIUS - 0.7, RADIUS + 0.6)


def stage1_relative(index: int) -> tuple[int, int]:
    """(d_polar, d_azimuth) of stage-1 view `index` (0..11) relative to the input."""
    if not 0 <= index < 12:
        raise ValueError(f"stage-1 views are 0..11, not {index}")
    ring, k = divmod(index, 4)
    if ring == 0:
        return 0, 90 * k
    return (RING_OFFSET if ring == 1 else -RING_OFFSET), 30 + 90 * k


def second_ring(polar: float) -> list[int]:
    return list(range(4, 8)) if polar <= SPLIT_POLAR else list(range(8, 12))


def stage1_indices(polar: float) -> list[int]:
    """The 8 stage-1 views of the plan, in pose.json order."""
    return list(range(4)) + second_ring(polar)


@dataclass(frozen=True)
class ViewPose:
    view_id: str  # "3" (stage 1) or "3_1" (stage 2)
    stage: int
    polar: float  # degrees from +z
    azimuth: float  # degrees; 0 puts the camera on -y, 90 on +x
    source: str  # the view it is drawn from: "input" or a stage-1 id
    d_polar: float  # relative to the source
    d_azimuth: float


def plan(polar: float) -> list[ViewPose]:
    """All 40 views (8 of stage 1, then 32 of stage 2) in pose.json order."""
    views = []
    for index in stage1_indices(polar):
        d_polar, d_azimuth = stage1_relative(index)
        views.append(ViewPose(str(index), 1, polar + d_polar, INPUT_AZIMUTH + d_azimuth, "input", d_polar, d_azimuth))
    for parent in list(views):
        for k, (d_polar, d_azimuth) in enumerate(STAGE2_DELTAS):
            views.append(ViewPose(f"{parent.view_id}_{k}", 2, parent.polar + d_polar, parent.azimuth + d_azimuth,
                                  parent.view_id, d_polar, d_azimuth))
    return views


def camera_to_world(polars, azimuths, radius: float = RADIUS) -> np.ndarray:
    """(N, 4, 4) float32 camera-to-world matrices (x right, y up, looking along -z towards
    the origin), computed with float32 torch in the order of One-2-3-45's calc_pose so
    that pose.json comes out the same to the last bit."""
    def normalize(v):
        return v / (torch.norm(v, dim=-1, keepdim=True) + 1e-10)

    phis = torch.FloatTensor(np.radians(np.asarray(polars, dtype=np.float64)))
    thetas = torch.FloatTensor(np.radians(np.asarray(azimuths, dtype=np.float64)))
    size = len(phis)
    centers = torch.stack([radius * torch.sin(thetas) * torch.sin(phis),
                           -radius * torch.cos(thetas) * torch.sin(phis),
                           radius * torch.cos(phis)], dim=-1)
    forward = normalize(centers).squeeze(0)
    up = torch.FloatTensor([0, 0, 1]).unsqueeze(0).repeat(size, 1)
    right = normalize(torch.cross(up, forward, dim=-1))
    if right.pow(2).sum() < 0.01:  # the reference's test is over all views at once
        right = torch.FloatTensor([0, 1, 0]).unsqueeze(0).repeat(size, 1)
    up = normalize(torch.cross(forward, right, dim=-1))
    poses = torch.eye(4, dtype=torch.float).unsqueeze(0).repeat(size, 1, 1)
    poses[:, :3, :3] = torch.stack((right, up, forward), dim=-1)
    poses[:, :3, 3] = centers
    return poses.numpy()


def intrinsics() -> list[list[float]]:
    return [[FOCAL, 0, SIZE / 2], [0, FOCAL, SIZE / 2], [0, 0, 1]]


def pose_json(views: list[ViewPose]) -> dict:
    """pose.json as One-2-3-45's gen_poses writes it (keys "<id>.png", pose.json order)."""
    poses = camera_to_world([v.polar for v in views], [v.azimuth for v in views])
    c2ws = {}
    for view, pose in zip(views, poses):
        rows = pose.tolist()
        c2ws[f"{view.view_id}.png"] = [rows[0], rows[1], rows[2], [0, 0, 0, 1]]
    return {"intrinsics": intrinsics(), "near_far": list(NEAR_FAR), "c2ws": c2ws}


def quantise(picture: np.ndarray) -> np.ndarray:
    """A stage-1 view as stage 2 sees it: saved as 8-bit PNG, read back, values >= 253 made
    255 (infer_stage_2). The picture is already uint8, so the PNG round trip is exact."""
    picture = np.asarray(picture, dtype=np.uint8).copy()
    picture[picture >= 253] = 255
    return picture
