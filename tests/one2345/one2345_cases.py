"""The reference cases of One-2-3-45's reconstruction, for the tests in this folder.

Cases (numbers computed by One-2-3-45's own code on a CPU; subsets of
../shared/one2345/reference kept in the repository, see each folder's SOURCE.md):
- "fast": tests/data/one2345_fast, a 32^3 volume (about 100x quieter: the tight checks);
- "official": tests/data/one2345_official, the demo's 96^3 volume (slow).
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
FAST_DIR = REPO_ROOT / "tests" / "data" / "one2345_fast"
OFFICIAL_DIR = REPO_ROOT / "tests" / "data" / "one2345_official"
CASE_DIRS = {"fast": FAST_DIR, "official": OFFICIAL_DIR}


@dataclass
class Case:
    name: str
    arrays: dict
    checkpoint: Path
    volume: int
    resolutions: tuple


def load_case(name: str) -> Case:
    folder = CASE_DIRS[name]
    checkpoint = folder / "ckpt_215000.pth"
    with np.load(folder / "reference.npz") as z:
        arrays = {k: z[k] for k in z.files}
    resolutions = tuple(sorted(int(k[1:-5]) for k in arrays if k.startswith("v") and k.endswith("_norm")))
    return Case(name, arrays, checkpoint, int(arrays["vol_dims"][0]), resolutions)


def write_input_folder(arrays: dict, folder: Path) -> Path:
    """The official input layout from a case's arrays (pose.json text, the 32 views)."""
    from PIL import Image

    (folder / "stage2_8").mkdir(parents=True, exist_ok=True)
    (folder / "pose.json").write_text(str(arrays["pose_json"]))
    ids = [str(i) for i in arrays["img_ids"]]
    for index, image in enumerate(arrays["images_src"]):
        Image.fromarray(image).save(folder / "stage2_8" / ids[8 + index])
    return folder


def nearest(reference: np.ndarray, points: np.ndarray, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Distance to, and index of, the nearest reference point for each point (float64)."""
    import torch

    ref = torch.from_numpy(np.asarray(reference, np.float64))
    distances, indices = [], []
    for start in range(0, len(points), chunk):
        part = torch.from_numpy(np.asarray(points[start : start + chunk], np.float64))
        d, i = torch.cdist(part, ref).min(dim=1)
        distances.append(d.numpy())
        indices.append(i.numpy())
    return np.concatenate(distances), np.concatenate(indices)
