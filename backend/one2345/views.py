"""The reconstruction's input: 32 views with their cameras, as One-2-3-45's view stage
leaves them (a folder with pose.json, stage1_8/ and stage2_8/), or as arrays.

Frame: One-2-3-45's world frame W (z up, object at the origin); cameras as camera-to-world
matrices with Blender/OpenGL camera axes (x right, y up, looking along -z), the way
pose.json stores them.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..bridge.errors import InputImageError

VIEW_COUNT = 32
IMAGE_SIZE = 256
# One-2-3-45's gen_poses: focal 280 px, principal point at the centre of 256 x 256 views
INTRINSICS = ((280.0, 0.0, 128.0), (0.0, 280.0, 128.0), (0.0, 0.0, 1.0))
NEAR_FAR = (0.5, 1.8)
POSE_FILE = "pose.json"


@dataclass(frozen=True)
class ViewSet:
    """images: (32, 256, 256, 3) uint8, the second-stage views in pose.json order;
    source_c2ws: (32, 4, 4) their camera-to-world matrices; target_c2w: (4, 4) the input
    view's (pose.json entry 0: it fixes the reconstruction's frame, its pixels are not used);
    intrinsics (3, 3) and near_far (the depth range that bounds the volume)."""

    images: np.ndarray
    source_c2ws: np.ndarray
    target_c2w: np.ndarray
    intrinsics: np.ndarray
    near_far: tuple

    @classmethod
    def from_arrays(cls, images, source_c2ws, target_c2w, intrinsics=INTRINSICS, near_far=NEAR_FAR) -> "ViewSet":
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.shape != (VIEW_COUNT, IMAGE_SIZE, IMAGE_SIZE, 3):
            raise InputImageError(
                f"the reconstruction takes {VIEW_COUNT} RGB views of {IMAGE_SIZE} x {IMAGE_SIZE} as uint8 "
                f"(an array of shape ({VIEW_COUNT}, {IMAGE_SIZE}, {IMAGE_SIZE}, 3)); got {images.dtype} {images.shape}")
        source_c2ws = np.asarray(source_c2ws, np.float64)
        target_c2w = np.asarray(target_c2w, np.float64)
        intrinsics = np.asarray(intrinsics, np.float64)
        if source_c2ws.shape != (VIEW_COUNT, 4, 4) or target_c2w.shape != (4, 4) or intrinsics.shape != (3, 3):
            raise InputImageError(
                f"camera arrays of the wrong shape: source poses {source_c2ws.shape} (expected ({VIEW_COUNT}, 4, 4)), "
                f"target pose {target_c2w.shape} (expected (4, 4)), intrinsics {intrinsics.shape} (expected (3, 3))")
        every = np.concatenate([source_c2ws.reshape(-1), target_c2w.reshape(-1), intrinsics.reshape(-1)])
        if not np.all(np.isfinite(every)):
            raise InputImageError("the camera poses or intrinsics hold a value that is not a finite number")
        near, far = (float(x) for x in near_far)
        if not 0 < near < far:
            raise InputImageError(f"near/far must satisfy 0 < near < far; got {near}, {far}")
        return cls(images, source_c2ws, target_c2w, intrinsics, (near, far))


def parse_pose_json(meta, where: str) -> tuple[list[str], np.ndarray, np.ndarray, tuple]:
    """pose.json's contents -> (image ids in file order, c2ws (40, 4, 4), intrinsics, near_far)."""
    try:
        ids = list(meta["c2ws"].keys())
        c2ws = np.array([meta["c2ws"][i] for i in ids], np.float64)
        intrinsics = np.array(meta["intrinsics"], np.float64)
        near_far = tuple(float(x) for x in meta["near_far"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputImageError(f"{where} is not a readable One-2-3-45 pose file ({type(exc).__name__}: {exc})") from None
    if len(ids) != 8 + VIEW_COUNT or c2ws.shape != (8 + VIEW_COUNT, 4, 4) or len(near_far) != 2:
        raise InputImageError(f"{where} must list 8 first-stage and {VIEW_COUNT} second-stage poses (4 x 4 each) "
                              f"and a near/far pair; it has {len(ids)} poses")
    return ids, c2ws, intrinsics, near_far


def read_pose_file(path: Path) -> tuple[list[str], np.ndarray, np.ndarray, tuple]:
    """pose.json -> (image ids in file order, c2ws (40, 4, 4), intrinsics, near_far)."""
    try:
        meta = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InputImageError(f"{path} is not a readable One-2-3-45 pose file ({type(exc).__name__}: {exc})") from None
    return parse_pose_json(meta, str(path))


def view_set_from_views(pose_json: dict, stage2_pictures) -> ViewSet:
    """The reconstruction's input from the views job's result (zero123.result.ViewsResult:
    its pose_json() and its 32 stage-2 pictures in that order), exactly as
    read_input_folder reads the folder write_views makes of it."""
    ids, c2ws, intrinsics, near_far = parse_pose_json(pose_json, "the views' poses")
    return ViewSet.from_arrays(np.stack([np.asarray(p, np.uint8) for p in stage2_pictures]), c2ws[8:], c2ws[0],
                               intrinsics, near_far)


def read_view_image(path: Path) -> np.ndarray:
    """A PNG as uint8 (H, W, 3), or (H, W, 4) when it has alpha."""
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            array = np.asarray(img.convert("RGBA") if mode in ("RGBA", "LA", "P") else img.convert("RGB"))
    except (OSError, ValueError) as exc:
        raise InputImageError(f"{path} cannot be read as an image: {exc}") from None
    if array.shape[:2] != (IMAGE_SIZE, IMAGE_SIZE):
        raise InputImageError(f"{path} is {array.shape[1]} x {array.shape[0]}; the views must be {IMAGE_SIZE} x {IMAGE_SIZE}")
    return array


def read_input_folder(folder) -> ViewSet:
    """The official layout: <folder>/pose.json, stage1_8/<id> (entry 0 only is used, for
    its pose), stage2_8/<id> for the 32 source views (pose.json entries 8..39)."""
    folder = Path(folder)
    ids, c2ws, intrinsics, near_far = read_pose_file(folder / POSE_FILE)
    views = []
    for image_id in ids[8:]:
        path = folder / "stage2_8" / image_id
        if not path.is_file():
            raise InputImageError(f"{path} is missing: the folder must hold the {VIEW_COUNT} second-stage views of {POSE_FILE}")
        views.append(read_view_image(path))
    # RGBA views (Zero123 writes RGB): composited on white and rounded to uint8, at most
    # half a level from the reference's float composite
    images = np.stack([v if v.shape[2] == 3 else _on_white(v) for v in views])
    return ViewSet.from_arrays(images, c2ws[8:], c2ws[0], intrinsics, near_far)


def _on_white(rgba: np.ndarray) -> np.ndarray:
    """rgb * a + (1 - a) with a in [0, 1], rounded back to uint8 (exact where a is 0 or 255)."""
    rgb = rgba[..., :3].astype(np.float32) / 255.0
    alpha = rgba[..., 3:].astype(np.float32) / 255.0
    return np.round((rgb * alpha + (1.0 - alpha)) * 255.0).astype(np.uint8)
