"""The views with their poses, and writing them as One-2-3-45's input folder.

write_views(result, out_dir) writes the layout the reconstruction reads (SPEC.md section
2): pose.json, stage1_8/<id>.png (8 views) and stage2_8/<id>.png (32 views), plus
views.json (each view's polar, azimuth, elevation and camera) and contact_sheet.png.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..bridge.views_files import write_folder
from .plan import ViewPose, intrinsics, pose_json

TILE = 128


@dataclass
class View:
    pose: ViewPose
    picture: np.ndarray  # uint8 (256, 256, 3)
    camera_to_world: np.ndarray  # float32 (4, 4), x right, y up, looking along -z

    @property
    def view_id(self) -> str:
        return self.pose.view_id


@dataclass
class ViewsResult:
    input_picture: np.ndarray  # uint8 (256, 256, 3): what Zero123 saw
    polar: float  # the input's polar angle (degrees from +z)
    polar_estimated: bool  # False: given by the user, or the fallback after a failed estimate
    stage1: list[View]  # 8, pose.json order
    stage2: list[View]  # 32, pose.json order
    seed: int = 0
    timings: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    @property
    def elevation(self) -> float:
        """Degrees above the horizon: 90 - polar."""
        return 90.0 - self.polar

    @property
    def views(self) -> list[View]:
        return self.stage1 + self.stage2

    def pose_json(self) -> dict:
        return pose_json([v.pose for v in self.views])

    def summary(self) -> dict:
        """views.json: the plan and each view's pose, readable without One-2-3-45's conventions."""
        return {
            "polar": self.polar, "elevation": self.elevation, "polar_estimated": self.polar_estimated,
            "seed": self.seed, "intrinsics": intrinsics(), "notes": list(self.notes),
            "views": [{"id": v.view_id, "stage": v.pose.stage, "polar": v.pose.polar, "azimuth": v.pose.azimuth,
                       "elevation": 90.0 - v.pose.polar, "source": v.pose.source,
                       "camera_to_world": v.camera_to_world.tolist()} for v in self.views],
        }


def contact_sheet(result: ViewsResult, tile: int = TILE) -> np.ndarray:
    """One row per stage-1 view: the view, then its 4 nearby views; the input on top."""
    columns = 5
    sheet = Image.new("RGB", (columns * tile, (1 + len(result.stage1)) * tile), "white")
    draw = ImageDraw.Draw(sheet)

    def put(picture, column, row, label):
        sheet.paste(Image.fromarray(picture).resize((tile, tile), Image.Resampling.LANCZOS), (column * tile, row * tile))
        draw.text((column * tile + 3, row * tile + 2), label, fill=(90, 90, 90))

    put(result.input_picture, 0, 0, "input")
    draw.text((tile + 8, tile // 3), f"polar {result.polar:g} ({'estimated' if result.polar_estimated else 'given'})",
              fill=(0, 0, 0))
    nearby = {v.view_id: v for v in result.stage2}
    for row, view in enumerate(result.stage1, start=1):
        put(view.picture, 0, row, f"{view.view_id}  p{view.pose.polar:g} a{view.pose.azimuth:g}")
        for k in range(4):
            child = nearby[f"{view.view_id}_{k}"]
            put(child.picture, 1 + k, row, child.view_id)
    return np.asarray(sheet)


def transfer_parts(result: ViewsResult) -> tuple[dict, dict]:
    """(fields, arrays) of the views as the protocol's views_result carries them."""
    fields = {"view_ids": [v.view_id for v in result.views], "poses": result.summary(),
              "pose_json": result.pose_json(), "polar": float(result.polar),
              "polar_estimated": bool(result.polar_estimated), "notes": list(result.notes),
              "timings": dict(result.timings)}
    arrays = {"views": np.ascontiguousarray(np.stack([v.picture for v in result.views]), dtype=np.uint8),
              "contact_sheet": np.ascontiguousarray(contact_sheet(result), dtype=np.uint8),
              "input_picture": np.ascontiguousarray(result.input_picture, dtype=np.uint8)}
    return fields, arrays


def write_views(result: ViewsResult, out_dir) -> Path:
    """Write the views as One-2-3-45's input folder (and views.json, contact_sheet.png,
    input.png; bridge/views_files.py); pose.json last, so a folder with it is complete."""
    fields, arrays = transfer_parts(result)
    return write_folder(out_dir, fields["view_ids"], arrays["views"], fields["poses"], fields["pose_json"],
                        arrays["contact_sheet"], arrays["input_picture"])
