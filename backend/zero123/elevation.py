"""The input's elevation from the 4 nearby views of stage-1 view 0, as One-2-3-45
estimates it (elevation_estimate/utils/elev_est_api.py).

Matches between each pair of the views "0_0".."0_3" are kept where both pictures show the
object (not all channels above 245; the first picture is looked up at the second one's x,
a quirk kept as it is). For a candidate polar angle c the four views are put at (c - 10,
30), (c + 10, 30), (c, 20), (c, 40) (polar, azimuth), points are triangulated from one pair
and reprojected into the other views; the error is the confidence-weighted reprojection
error summed over three rotations of the view order. The search tries c = 30, 40, ...,
140, then c* - 10 .. c* + 9 in steps of 1. The answer is a whole number of degrees; when a
pair has no match at all, One-2-3-45 (and so this) assumes 90 (level).
"""

from dataclasses import dataclass

import numpy as np

from .loftr import MATCH_SIZE, match_pair, matcher_input
from .plan import FOCAL, SIZE, camera_to_world

FALLBACK_POLAR = 90
BACKGROUND_LEVEL = 245
COARSE = np.arange(30, 150, 10)
HYPOTHESIS_POSES = ((-10, 30), (10, 30), (0, 20), (0, 40))  # (d_polar, azimuth) of views 0_0..0_3
NEAREST_MATCH = 1.0  # pixels: a match of the reference pair is found again in another pair


@dataclass
class ElevationEstimate:
    polar: int  # degrees from +z
    estimated: bool  # False: the fallback after a failure
    note: str = ""


def camera_matrix() -> np.ndarray:
    return np.array([[FOCAL, 0, SIZE / 2], [0, FOCAL, SIZE / 2], [0, 0, 1]], dtype=np.float32)


def foreground(picture: np.ndarray) -> np.ndarray:
    return ~(picture > BACKGROUND_LEVEL).all(axis=-1)


def view_matches(matcher, pictures, device) -> dict:
    """{(i, j): (M, 5) float32 [x_i, y_i, x_j, y_j, confidence]} in the 256-pixel frame for
    each pair i < j of the 4 nearby views, and the reversed (j, i)."""
    inputs = [matcher_input(p, device) for p in pictures]
    masks = [foreground(p) for p in pictures]
    matches = {}
    for i in range(4):
        for j in range(i + 1, 4):
            p0, p1, conf = match_pair(matcher, inputs[i], inputs[j])
            h, w = pictures[i].shape[:2]
            p0[:, 0], p0[:, 1] = p0[:, 0] * w / MATCH_SIZE, p0[:, 1] * h / MATCH_SIZE
            p1[:, 0], p1[:, 1] = p1[:, 0] * w / MATCH_SIZE, p1[:, 1] * h / MATCH_SIZE
            keep = masks[i][p0[:, 1].astype(int), p1[:, 0].astype(int)] & masks[j][p1[:, 1].astype(int), p1[:, 0].astype(int)]
            pair = np.concatenate([p0[keep], p1[keep], conf[keep, None]], axis=1).astype(np.float32)
            matches[i, j] = pair
            matches[j, i] = pair[:, [2, 3, 0, 1, 4]]
    return matches


def hypothesis_poses(polar: float) -> np.ndarray:
    """(4, 4, 4) camera-to-world matrices with OpenCV axes for the nearby views at polar `polar`."""
    polars = [polar] + [polar + d for d, _ in HYPOTHESIS_POSES]
    azimuths = [30] + [a for _, a in HYPOTHESIS_POSES]
    poses = camera_to_world(polars, azimuths)[1:]  # the first only takes part in calc_pose's degenerate test
    poses[..., 1] *= -1
    poses[..., 2] *= -1
    return poses


def triangulate(proj0: np.ndarray, proj1: np.ndarray, pts0: np.ndarray, pts1: np.ndarray) -> np.ndarray:
    """(N, 3) points from two views by the linear (DLT) method of cv2.triangulatePoints."""
    rows = np.stack([pts0[:, :1] * proj0[2] - proj0[0], pts0[:, 1:2] * proj0[2] - proj0[1],
                     pts1[:, :1] * proj1[2] - proj1[0], pts1[:, 1:2] * proj1[2] - proj1[1]], axis=1)
    homogeneous = np.linalg.svd(rows.astype(np.float64))[2][:, -1].astype(np.float32)
    return homogeneous[:, :3] / homogeneous[:, 3:]


def _project(K: np.ndarray, points: np.ndarray, world_to_camera: np.ndarray) -> np.ndarray:
    camera = np.concatenate([points, np.ones((len(points), 1), np.float32)], axis=1) @ world_to_camera.T
    camera = camera[:, :3] / camera[:, 3:]
    image = camera @ K.T
    return image[:, :2] / image[:, 2:]


def reprojection_error(K: np.ndarray, matches: list, poses: list) -> float:
    """One-2-3-45's ba_error_general: points from matches[0] (views 0 and 1) reprojected
    into views 2 and 3 through the matches of view 0 with them."""
    proj0 = K @ np.linalg.inv(poses[0])[:3, :4]
    proj1 = K @ np.linalg.inv(poses[1])[:3, :4]
    reference = matches[0]
    points = triangulate(proj0, proj1, reference[:, :2], reference[:, 2:4])
    error = 0.0
    for match, pose in zip(matches[1:], poses[2:]):
        if len(reference) == 0 or len(match) == 0:
            continue
        dist = np.linalg.norm(reference[:, None, :2] - match[None, :, :2], axis=-1)
        nearest = dist.argmin(axis=1)
        keep = dist[np.arange(len(reference)), nearest] < NEAREST_MATCH
        if keep.any():
            projected = _project(K, points[keep], np.linalg.inv(pose).astype(np.float32))
            found = match[nearest][keep]
            distance = np.linalg.norm(found[:, 2:4] - projected, axis=-1)
            error += float((distance * found[:, 4]).sum() / found[:, 4].sum())
    return error


def hypothesis_error(matches: dict, polar: float, K: np.ndarray) -> float:
    poses = hypothesis_poses(polar)
    total = 0.0
    for start in range(3):
        order = [(start + k) % 4 for k in range(4)]
        pairs = [matches[start, (start + k + 1) % 4] for k in range(3)]
        total += reprojection_error(K, pairs, [poses[i] for i in order])
    return total


def search(matches: dict, K: np.ndarray | None = None) -> int:
    """The polar angle (whole degrees) whose poses explain the matches best."""
    K = camera_matrix() if K is None else K
    coarse = int(COARSE[int(np.argmin([hypothesis_error(matches, c, K) for c in COARSE]))])
    fine = np.arange(coarse - 10, coarse + 10, 1)
    return int(fine[int(np.argmin([hypothesis_error(matches, c, K) for c in fine]))])


def estimate_polar(matcher, nearby_pictures, device) -> ElevationEstimate:
    """The input's polar angle from the pictures of views 0_0..0_3 (uint8 (256, 256, 3))."""
    matches = view_matches(matcher, nearby_pictures, device)
    empty = [f"0_{i} and 0_{j}" for (i, j), m in matches.items() if i < j and len(m) == 0]
    if empty:
        return ElevationEstimate(FALLBACK_POLAR, False, f"the elevation could not be estimated (no feature "
                                 f"matches between views {', '.join(empty)}); assumed level (polar {FALLBACK_POLAR})")
    return ElevationEstimate(search(matches), True)
