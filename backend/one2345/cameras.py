"""From the views' poses to the cameras of the normalised volume frame (One-2-3-45's
data loader, SPEC section 3), in the same precisions: float64 poses, float32 frustum
corners and bounding box, float32 cameras.

Frames: W (pose.json's world), R (the OpenCV camera frame of the input view, pose.json
entry 0), N (the reconstruction volume [-1, 1]^3: p_N = (p_R - c) / s).
"""

from dataclasses import dataclass

import numpy as np
import torch

from .views import IMAGE_SIZE, ViewSet

# Blender/OpenGL camera axes -> OpenCV's (x right, y down, z forward)
_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])
_BOX_MARGIN = 1.1


@dataclass(frozen=True)
class VolumeCameras:
    """The 32 source views in N (OpenCV axes), float32 tensors on the CPU."""

    w2cs: torch.Tensor  # (32, 4, 4)
    intrinsics: torch.Tensor  # (32, 3, 3)
    affine_mats: torch.Tensor  # (32, 4, 4): K @ w2c[:3], the back-projection matrices
    query_c2w: torch.Tensor  # (4, 4): the input view in N
    scale_mat: torch.Tensor  # (4, 4): p_R = s p_N + c
    trans_mat: np.ndarray  # (4, 4) float64: p_W = T p_R

    def to_world(self, points_n: np.ndarray) -> np.ndarray:
        """Points in N (float64) -> W, as the reference's mesh export does it (float64)."""
        scale = self.scale_mat.numpy()
        points_r = points_n * scale[0, 0] + scale[:3, 3][None]
        return points_r @ self.trans_mat[:3, :3].T + self.trans_mat[:3, 3]

    def world_to_volume(self) -> np.ndarray:
        """(4, 4) float64: p_N = M p_W, the inverse of to_world."""
        scale = self.scale_mat.numpy().astype(np.float64)
        n_to_r = np.eye(4)
        n_to_r[:3, :3] *= scale[0, 0]
        n_to_r[:3, 3] = scale[:3, 3]
        return np.linalg.inv(self.trans_mat @ n_to_r)


def _frustum_corners(intrinsics: np.ndarray, near: float, far: float) -> torch.Tensor:
    """The 8 corners of a view's frustum in its camera frame (3, 8): pixels 0 and 256
    (not 255), depths near and far, computed in float64 and kept as float32."""
    k = torch.tensor(intrinsics, dtype=torch.float64)
    depth = torch.tensor([near] * 4 + [far] * 4, dtype=torch.float64)
    xs = torch.tensor([0, 0, IMAGE_SIZE, IMAGE_SIZE] * 2, dtype=torch.float64)
    ys = torch.tensor([0, IMAGE_SIZE, 0, IMAGE_SIZE] * 2, dtype=torch.float64)
    corners = torch.stack([(xs - k[0, 2]) * depth / k[0, 0], (ys - k[1, 2]) * depth / k[1, 1], depth])
    return corners.float()


def _volume_box(w2cs_rel: np.ndarray, intrinsics: np.ndarray, near: float, far: float) -> tuple[np.ndarray, np.float32]:
    """Centre c and half size s of the box around every view's frustum (float32)."""
    corners = _frustum_corners(intrinsics, near, far)
    homogeneous = torch.cat([corners, torch.ones(1, 8)])
    lows = torch.full((3,), float("inf"))
    highs = torch.full((3,), float("-inf"))
    for w2c in w2cs_rel:
        c2w = torch.inverse(torch.from_numpy(w2c)).float()
        points = (c2w @ homogeneous)[:3]
        lows = torch.minimum(lows, points.min(dim=1).values)
        highs = torch.maximum(highs, points.max(dim=1).values)
    centre = (highs + lows) / 2
    half = (highs - lows).max() / 2 * _BOX_MARGIN
    return centre.numpy(), np.float32(half.item())


def _givens(c: float, s: float) -> tuple[float, float]:
    """Normalised (c, s); (1, 0) when s is negligible (as OpenCV's RQDecomp3x3)."""
    if abs(s) <= np.finfo(np.float64).eps:
        return 1.0, 0.0
    z = 1.0 / np.sqrt(c * c + s * s)
    return c * z, s * z


def _rq_rotation(m: np.ndarray) -> np.ndarray:
    """The orthogonal factor Q of m = R Q (R upper triangular, positive diagonal) by the
    Givens rotations of OpenCV's RQDecomp3x3, which decomposeProjectionMatrix uses. The
    poses in pose.json are orthonormal to float32 precision only; this orthogonalises
    them the way the reference does (a rotation kept as is differs by ~1e-8)."""
    c, s = _givens(m[2, 2], m[2, 1])
    qx = np.array([[1.0, 0, 0], [0, c, s], [0, -s, c]])
    r = m @ qx
    r[2, 1] = 0.0
    c, s = _givens(r[2, 2], -r[2, 0])
    qy = np.array([[c, 0, -s], [0, 1.0, 0], [s, 0, c]])
    r = r @ qy
    r[2, 0] = 0.0
    c, s = _givens(r[1, 1], r[1, 0])
    qz = np.array([[c, s, 0], [-s, c, 0], [0, 0, 1.0]])
    r = r @ qz
    if r[0, 0] < 0 and r[1, 1] < 0:  # turn 180 degrees about z
        qz[:2, :2] *= -1
    elif r[0, 0] < 0:  # about y
        qz = qz.T
        qy[[0, 0, 2, 2], [0, 2, 0, 2]] *= -1
    elif r[1, 1] < 0:  # about x
        qz, qy = qz.T, qy.T
        qx[1:, 1:] *= -1
    return qz.T @ qy.T @ qx.T


def volume_cameras(views: ViewSet) -> VolumeCameras:
    """The loader's cameras for the 32 source views (and the input view's, for the frame)."""
    target = views.target_c2w @ _TO_OPENCV
    trans_mat = np.linalg.inv(np.linalg.inv(target))  # the reference's w2c_ref_inv
    c2ws = np.concatenate([target[None], views.source_c2ws @ _TO_OPENCV])
    w2cs_rel = np.linalg.inv(c2ws) @ trans_mat  # 33 views, frame R
    centre, half = _volume_box(w2cs_rel, views.intrinsics, *views.near_far)
    scale_mat = np.diag([half, half, half, np.float32(1.0)]).astype(np.float32)
    scale_mat[:3, 3] = centre

    # the reference rebuilds each camera by decomposing P = K [R|t] S with OpenCV
    k = views.intrinsics
    k4 = np.eye(4)
    k4[:3, :3] = k
    poses = np.tile(np.eye(4, dtype=np.float32), (len(c2ws), 1, 1))
    for pose, w2c in zip(poses, w2cs_rel):
        projection = (k4 @ w2c @ scale_mat)[:3]
        pose[:3, :3] = _rq_rotation(projection[:, :3]).T
        pose[:3, 3] = np.linalg.solve(projection[:, :3], -projection[:, 3])  # the camera centre in N
    w2cs = np.linalg.inv(poses)  # float32, as the reference inverts its float32 pose
    affine = np.tile(np.eye(4), (len(c2ws), 1, 1))
    affine[:, :3, :4] = k @ w2cs[:, :3, :4]
    return VolumeCameras(
        w2cs=torch.from_numpy(w2cs[1:].astype(np.float32)),
        intrinsics=torch.from_numpy(np.tile(k, (len(c2ws) - 1, 1, 1)).astype(np.float32)),
        affine_mats=torch.from_numpy(affine[1:].astype(np.float32)),
        query_c2w=torch.from_numpy(poses[0]),
        scale_mat=torch.from_numpy(scale_mat),
        trans_mat=trans_mat,
    )
