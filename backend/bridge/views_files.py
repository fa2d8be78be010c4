"""A views job's result as the clients receive it, and its folder. Standard library, numpy
and (for writing) Pillow; no torch, so the CLI with --server and the Blender side use it.

The folder is One-2-3-45's input layout, which its reconstruction reads (pose.json,
stage1_8/<id>.png, stage2_8/<id>.png), with views.json (each view's pose in plain
words), contact_sheet.png and input.png beside it. pose.json is written last, so a
folder that has it is complete.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

STAGE_FOLDERS = {1: "stage1_8", 2: "stage2_8"}


@dataclass
class ViewsJobResult:
    views: np.ndarray  # (N, H, W, 3) uint8: the 8 first views, then the 32 nearby ones (pose.json's order)
    view_ids: list  # N ids: "0".."11" (first views), "<i>_<k>" (nearby views of view i)
    poses: dict  # views.json: polar, elevation, polar_estimated, seed, intrinsics, notes, views [{id, stage, ...}]
    pose_json: dict  # One-2-3-45's pose.json
    contact_sheet: np.ndarray  # (H, W, 3) uint8: the input, then one row per first view with its nearby views
    input_picture: np.ndarray  # (256, 256, 3) uint8: what Zero123 saw
    polar: float  # the input camera's polar angle, degrees from straight above
    polar_estimated: bool
    timings: dict = field(default_factory=dict)
    device: str = ""
    notes: list = field(default_factory=list)

    @property
    def elevation(self) -> float:
        """Degrees above the horizon of the input's camera: 90 - polar."""
        return 90.0 - self.polar


def _stage(view_id: str) -> int:
    return 2 if "_" in view_id else 1


def write_folder(out_dir, view_ids, views: np.ndarray, poses: dict, pose_json: dict, contact_sheet: np.ndarray,
                 input_picture: np.ndarray) -> Path:
    """Write a views result's files into `out_dir` (created); returns it."""
    from PIL import Image

    out = Path(out_dir)
    for name in STAGE_FOLDERS.values():
        (out / name).mkdir(parents=True, exist_ok=True)
    for view_id, picture in zip(view_ids, views):
        Image.fromarray(np.ascontiguousarray(picture), "RGB").save(out / STAGE_FOLDERS[_stage(view_id)] / f"{view_id}.png")
    Image.fromarray(np.ascontiguousarray(input_picture), "RGB").save(out / "input.png")
    Image.fromarray(np.ascontiguousarray(contact_sheet), "RGB").save(out / "contact_sheet.png")
    (out / "views.json").write_text(json.dumps(poses, indent=2), encoding="utf-8")
    (out / "pose.json").write_text(json.dumps(pose_json, indent=4), encoding="utf-8")
    return out


def write_result(result: ViewsJobResult, out_dir) -> Path:
    return write_folder(out_dir, result.view_ids, result.views, result.poses, result.pose_json, result.contact_sheet,
                        result.input_picture)
