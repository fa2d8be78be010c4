"""Pixels that are not numbers. Standard library + numpy (both worlds use it).

A float image (a render, a compositor's output, an EXR) can hold NaN or infinity; made
into 8-bit colours they become arbitrary values, and the model makes a mesh of them
without a word. They are refused instead, where the float pixels are still at hand.
"""

import numpy as np


def non_finite_problem(pixels, name: str = "the image") -> str | None:
    """A sentence when float `pixels` ((H, W[, C])) hold NaN or infinity; None otherwise."""
    pixels = np.asarray(pixels)
    if pixels.dtype.kind not in "fc":
        return None
    bad = ~np.isfinite(pixels)
    if not bad.any():
        return None
    count = int(bad.reshape(bad.shape[0], bad.shape[1], -1).any(axis=2).sum()) if bad.ndim >= 2 else int(bad.sum())
    which = "1 pixel that is not a number" if count == 1 else f"{count:,} pixels that are not numbers"
    return f"{name} has {which} (NaN or infinity): fix the image (its render, compositing or file) and try again"
