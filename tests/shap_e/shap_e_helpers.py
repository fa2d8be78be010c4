"""Small shared checks for the Shap-E tests."""

import numpy as np
import trimesh


def signed_volume(vertices, faces) -> float:
    return float(trimesh.Trimesh(vertices, faces, process=False).volume)


def is_watertight(vertices, faces) -> bool:
    return trimesh.Trimesh(vertices, faces, process=False).is_watertight


def linear_to_srgb(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return np.where(values <= 0.0031308, 12.92 * values, 1.055 * np.clip(values, 0.0031308, None) ** (1 / 2.4) - 0.055)
