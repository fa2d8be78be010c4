"""Prepare the suite's drawn pictures with the reference TripoSR code; save what it made.

    python tests/data/prepare_reference/make_reference.py --triposr PATH/TO/TripoSR \
        [--check IMAGE NPZ ...] [--out tests/data/prepare_reference/reference.npz]

Run it in an environment where TripoSR's `tsr.utils` imports (README.md says how it was
made). For each case it draws the picture with tests/pictures.py, writes it as PNG, and
prepares that file as TripoSR's run.py does: `remove_background` (which leaves images
with transparency alone), `resize_foreground` at the case's foreground ratio, then the
blend onto 50 % grey in float32, truncated to bytes (run.py's three lines after
`resize_foreground`, restated here since run.py cannot be imported without loading a model).

`--check IMAGE NPZ` first prepares IMAGE the same way and asserts that it equals NPZ's
`pre` (e.g. ../shared/examples/flamingo.png and tests/data/tiny/reference.npz): this
script reproduces the run that made the project's other reference numbers.
"""

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # tests/, for pictures.py
import pictures  # noqa: E402

# (picture, foreground ratio): 0.85 is the default everywhere; two others move the margins
CASES = (("flamingo", 0.85), ("chair", 0.85), ("horse", 0.85), ("robot", 0.85), ("horse", 0.6), ("robot", 1.0))


def case_key(name: str, ratio: float) -> str:
    return f"{name}@{ratio}"


def reference_prepare(tsr_utils, path: Path, ratio: float) -> np.ndarray:
    image = tsr_utils.remove_background(Image.open(path), None)
    image = tsr_utils.resize_foreground(image, ratio)
    rgba = np.array(image).astype(np.float32) / 255.0
    rgb = rgba[:, :, :3] * rgba[:, :, 3:4] + (1 - rgba[:, :, 3:4]) * 0.5
    return np.array(Image.fromarray((rgb * 255.0).astype(np.uint8)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--triposr", type=Path, required=True, help="a checkout of VAST-AI-Research/TripoSR")
    parser.add_argument("--check", nargs=2, action="append", default=[], metavar=("IMAGE", "NPZ"))
    parser.add_argument("--out", type=Path, default=HERE / "reference.npz")
    args = parser.parse_args()
    sys.path.insert(0, str(args.triposr.resolve()))
    import tsr.utils as tsr_utils

    for image, npz in args.check:
        same = np.array_equal(reference_prepare(tsr_utils, Path(image), 0.85), np.load(npz)["pre"])
        print(f"check {image} against {npz}: {'equal' if same else 'DIFFERENT'}")
        assert same
    arrays = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, ratio in CASES:
            path = Path(folder) / f"{name}.png"
            if not path.exists():
                pixels = pictures.picture(name)
                Image.fromarray(pixels).save(path)
                arrays[f"{name}.sha256"] = np.array(pictures.digest(pixels))
            arrays[case_key(name, ratio)] = prepared = reference_prepare(tsr_utils, path, ratio)
            print(f"{name} at {ratio}: {prepared.shape}")
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
