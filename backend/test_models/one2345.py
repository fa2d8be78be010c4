"""A seeded random checkpoint in the layout of One-2-3-45's reconstruction checkpoint
(ckpt_215000.pth), and a synthetic input folder (pose.json, stage1_8/, stage2_8/) at the
poses One-2-3-45's view stage uses, for tests, demos and benchmarks.

The layout fixes every shape (the official file is 1.8 MB of weights), so the test model is
full size; only the values are random. The SDF layer starts from the usual geometric
initialisation (an SDF close to |p| - radius), calibrated for volume features of typical
size, so marching cubes finds a closed blob that the views shape a little.

    python -m backend.test_models.one2345 OUT_DIR [--seed 0]

writes OUT_DIR/ckpt_215000.pth and OUT_DIR/views/ (a 32-view input at polar angle 60).
make_test_folder writes the family's model folder (`make-test-model one2345 OUT` puts it
in OUT/sparseneus beside the views' random Zero123-XL and LoFTR folders).
"""

import argparse
import json
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..one2345.folders import SETTINGS_NAME
from ..one2345.model import SparseNeuS
from ..one2345.sdf import FREQUENCIES, HIDDEN, LATENT

CHECKPOINT_NAME = "ckpt_215000.pth"
_TYPICAL_LATENT = 0.6  # regularised volume features are ReLU outputs of about this size
_RADIUS = 0.4
_OPTIMIZED_TENSORS = 100  # the parameters the reference's optimizer holds
MARKER_NAME = "RANDOM_WEIGHTS_TEST_MODEL.txt"
TEST_VOLUME_SIZES = {"tiny": 32, "full": None}  # None: the demo's 96 (no sparseneus.json)


def _softplus(x):
    return np.logaddexp(0.0, 100.0 * x) / 100.0


def _encode(p):
    parts = [p]
    for k in range(FREQUENCIES):
        parts += [np.sin(p * 2.0**k), np.cos(p * 2.0**k)]
    return np.concatenate(parts, -1)


def _sdf_layers(rng, radius=_RADIUS):
    """Effective (weight, bias) of lin0..lin2 with sdf ~ |p| - radius for typical latents."""
    d_encoded = 3 * (1 + 2 * FREQUENCIES)
    w0 = np.zeros((HIDDEN, d_encoded))
    w0[:, :3] = rng.standard_normal((HIDDEN, 3)) * np.sqrt(2.0 / HIDDEN)
    w0[:, 3:] = rng.standard_normal((HIDDEN, d_encoded - 3)) * 0.01
    w1 = np.concatenate([rng.standard_normal((HIDDEN, HIDDEN)) * np.sqrt(2.0 / HIDDEN),
                         rng.standard_normal((HIDDEN, LATENT)) * 0.01], 1)
    w2 = np.concatenate([rng.standard_normal((HIDDEN, HIDDEN)) * np.sqrt(2.0 / HIDDEN),
                         rng.standard_normal((HIDDEN, LATENT)) * 0.05], 1)
    w2[0, :HIDDEN] = np.sqrt(np.pi / HIDDEN) + rng.standard_normal(HIDDEN) * 1e-4
    w2[0, HIDDEN:] = rng.standard_normal(LATENT) * 0.02
    b0, b1, b2 = (rng.standard_normal(HIDDEN) * s for s in (0.01, 0.01, 0.05))

    directions = rng.standard_normal((256, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    latent = np.full((len(directions), LATENT), _TYPICAL_LATENT)

    def row0(r):  # the SDF row without its bias, on a sphere of radius r
        h = _softplus(_encode(directions * r) @ w0.T + b0)
        h = _softplus(np.concatenate([h, latent], 1) @ w1.T + b1)
        return np.concatenate([h, latent], 1) @ w2[0]

    slope = float(np.mean(row0(radius + 0.1) - row0(radius - 0.1)) / 0.2)
    w2[0] /= slope
    b2[0] = -float(np.mean(row0(radius)))
    return [(w0, b0), (w1, b1), (w2, b2)]


def make_state_dicts(seed: int = 0) -> dict:
    """{network: state dict} with the official names and shapes, seeded values."""
    rng = np.random.default_rng(seed)
    model = SparseNeuS()
    states = {}
    for network in SparseNeuS.NETWORKS:
        state = OrderedDict()
        for name, tensor in getattr(model, network).state_dict().items():
            shape = tuple(tensor.shape)
            leaf = name.rsplit(".", 1)[-1]
            norm = ".bn." in name or ".net.1." in name
            if tensor.dtype == torch.int64:
                value = np.array(int(rng.integers(1000, 100000)))
            elif leaf == "running_mean":
                value = rng.standard_normal(shape) * 0.1
            elif leaf == "running_var":
                value = rng.uniform(0.5, 1.5, shape)
            elif norm and leaf == "weight":  # InPlaceABN uses |w| + eps: some negative on purpose
                value = rng.uniform(0.5, 1.5, shape) * np.where(rng.random(shape) < 0.25, -1.0, 1.0)
            elif leaf == "bias":
                value = rng.standard_normal(shape) * (0.1 if norm else 0.05)
            elif leaf == "kernel":
                value = rng.standard_normal(shape) * np.sqrt(2.0 / (shape[0] * shape[1]))
            elif leaf == "weight":  # conv (out, in, k, k) or linear (out, in)
                value = rng.standard_normal(shape) * np.sqrt(2.0 / int(np.prod(shape[1:])))
            elif name == "s":
                value = np.array(-0.7)  # the reference uses |s|
            else:  # variance, and the SDF layer (filled below)
                value = np.full(shape, 0.3)
            state[name] = torch.from_numpy(np.asarray(value)).to(tensor.dtype).reshape(shape)
        states[network] = state
    sdf_state = states["sdf_network_lod0"]
    for i, (weight, bias) in enumerate(_sdf_layers(rng)):
        scale = rng.uniform(0.5, 2.0, (weight.shape[0], 1))  # weight_v != weight: g carries the norm
        sdf_state[f"sdf_layer.lin{i}.weight_v"] = torch.from_numpy((weight * scale).astype(np.float32))
        sdf_state[f"sdf_layer.lin{i}.weight_g"] = torch.from_numpy(np.linalg.norm(weight, axis=1, keepdims=True).astype(np.float32))
        sdf_state[f"sdf_layer.lin{i}.bias"] = torch.from_numpy(bias.astype(np.float32))
    return states


def make_test_checkpoint(out: Path, seed: int = 0) -> Path:
    """Write a checkpoint file as the reference's Runner saves it (plain data only)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # a fresh Adam's state, as the reference's Runner saves it (loaded in a try/except, never used)
    group = {"lr": 2e-4, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0, "amsgrad": False, "maximize": False,
             "foreach": None, "capturable": False, "differentiable": False, "fused": None,
             "decoupled_weight_decay": False, "params": list(range(_OPTIMIZED_TENSORS))}
    checkpoint = {"optimizer": {"state": {}, "param_groups": [group]}, "iter_step": 215000, "val_step": 0}
    checkpoint.update(make_state_dicts(seed))
    torch.save(checkpoint, out)
    return out


def make_test_folder(out: Path, size: str = "tiny", seed: int = 0) -> Path:
    """A SparseNeuS model folder with a random checkpoint; `tiny` asks for a 32^3 cost
    volume in sparseneus.json (quicker; the weights are the same shapes at any size)."""
    out = Path(out)
    make_test_checkpoint(out / CHECKPOINT_NAME, seed)
    volume = TEST_VOLUME_SIZES[size]
    if volume is not None:
        (out / SETTINGS_NAME).write_text(json.dumps({"volume_size": volume}) + "\n")
    (out / MARKER_NAME).write_text(f"Random weights ({size}, seed {seed}) made by backend/test_models/one2345.py: "
                                   "its meshes are blobs. Not One-2-3-45's checkpoint.\n")
    return out


# ---- a synthetic input folder at One-2-3-45's view poses ----

def camera_pose(polar_deg: float, azimuth_deg: float, radius: float = 1.2) -> np.ndarray:
    """calc_pose of One-2-3-45's utils: camera-to-world (Blender camera axes), z up,
    azimuth 0 on -y, 90 on +x, looking at the origin."""
    phi, theta = np.radians(polar_deg), np.radians(azimuth_deg)
    centre = radius * np.array([np.sin(theta) * np.sin(phi), -np.cos(theta) * np.sin(phi), np.cos(phi)])
    forward = centre / np.linalg.norm(centre)
    right = np.cross([0.0, 0.0, 1.0], forward)
    right /= np.linalg.norm(right)
    up = np.cross(forward, right)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([right, up, forward], axis=1)
    pose[:3, 3] = centre
    return pose


def view_plan(polar: int) -> tuple[list[str], list[tuple[float, float]]]:
    """pose.json's 40 ids and (polar, azimuth) in its order (gen_poses' two branches)."""
    other = polar + 30 if polar <= 75 else polar - 30
    stage1 = list(range(8)) if polar <= 75 else [0, 1, 2, 3, 8, 9, 10, 11]
    angles = [(polar, 30 + 90 * k) for k in range(4)] + [(other, 60 + 90 * k) for k in range(4)]
    nearby = [(p + dp, a + da) for p, a in angles for dp, da in ((-10, 0), (10, 0), (0, -10), (0, 10))]
    ids = [f"{i}.png" for i in stage1] + [f"{i}_{k}.png" for i in stage1 for k in range(4)]
    return ids, angles + nearby


_SPHERES = (((0.0, 0.0, 0.05), 0.3, (0.85, 0.25, 0.2)), ((0.2, -0.15, -0.18), 0.15, (0.15, 0.35, 0.9)),
            ((-0.2, 0.12, -0.16), 0.13, (0.2, 0.75, 0.25)))


def render_spheres(c2w: np.ndarray, size: int = 256, focal: float = 280.0) -> np.ndarray:
    """Shaded coloured spheres on white, ray-cast through the view's pixels (uint8 RGB)."""
    c2w = c2w @ np.diag([1.0, -1.0, -1.0, 1.0])  # OpenCV axes: pixel (u, v) -> ((u - c) / f, (v - c) / f, 1)
    v, u = np.meshgrid(np.arange(size, dtype=np.float64), np.arange(size, dtype=np.float64), indexing="ij")
    rays = np.stack([(u - size / 2) / focal, (v - size / 2) / focal, np.ones_like(u)], -1) @ c2w[:3, :3].T
    rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
    origin = c2w[:3, 3]
    nearest = np.full(u.shape, np.inf)
    rgb = np.ones(u.shape + (3,))
    light = np.array([0.4, -0.5, 0.75]) / np.linalg.norm([0.4, -0.5, 0.75])
    for centre, radius, colour in _SPHERES:
        oc = origin - np.asarray(centre)
        b = rays @ oc
        disc = b * b - (oc @ oc - radius * radius)
        t = np.where(disc > 0, -b - np.sqrt(np.maximum(disc, 0)), np.inf)
        hit = (t > 0) & (t < nearest)
        normal = (origin + rays[hit] * t[hit][:, None] - np.asarray(centre)) / radius
        rgb[hit] = np.asarray(colour) * (0.35 + 0.65 * np.clip(normal @ light, 0, None))[:, None]
        nearest[hit] = t[hit]
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def make_input_folder(out: Path, polar: int = 60) -> Path:
    """pose.json, stage1_8/ and stage2_8/ as One-2-3-45's view stage leaves them."""
    out = Path(out)
    (out / "stage1_8").mkdir(parents=True, exist_ok=True)
    (out / "stage2_8").mkdir(parents=True, exist_ok=True)
    ids, angles = view_plan(polar)
    poses = {i: camera_pose(p, a).tolist() for i, (p, a) in zip(ids, angles)}
    meta = {"intrinsics": [[280.0, 0, 128.0], [0, 280.0, 128.0], [0, 0, 1]], "near_far": [0.5, 1.8], "c2ws": poses}
    (out / "pose.json").write_text(json.dumps(meta, indent=4))
    for index, image_id in enumerate(ids):
        folder = out / ("stage1_8" if index < 8 else "stage2_8")
        Image.fromarray(render_spheres(np.array(poses[image_id]))).save(folder / image_id)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--polar", type=int, default=60, help="the views' polar angle in degrees (90 - elevation)")
    args = parser.parse_args(argv)
    checkpoint = make_test_checkpoint(args.out / CHECKPOINT_NAME, args.seed)
    views = make_input_folder(args.out / "views", args.polar)
    print(f"wrote {checkpoint} (random weights, seed {args.seed}) and {views}")


if __name__ == "__main__":
    main()
