"""Why the split products (tf32x3, bf16x6 as ONE cuBLAS product) missed float32's
accuracy on an H200 while an emulation with float32 sums said they met it: a CPU model
of the tensor cores' accumulation.

    .venv/bin/python bench/tensor_core_accumulation.py [--rows 64 --cols 128 --depth 1024 4096] [--json OUT]

A tensor core adds a group of products to its accumulator in one step: every term
(the accumulator too) is aligned to the largest one's exponent, the bits below
24 + 2 of that are cut off, the sum is normalised rounding toward zero. The
parameters are the published bit-accurate model's for H100 and H200 (Khattak and
Mikaitis, "Accurate models of NVIDIA tensor cores", 2025: TF32 groups of 8, bfloat16
groups of 16, 2 extra alignment bits, truncation, round toward zero). A float32
product on the CUDA cores instead rounds each fused multiply-add to nearest.

The split product (x = hi + lo, hi*hi + hi*lo + lo*hi laid along the reduction axis,
so ONE product 3 times deeper) is exact in its pieces, so with float32 sums rounded to
nearest it beats float32 (what the tests' emulation checked); but with the tensor
cores' sums it runs 3K / 8 truncating steps, each losing up to a unit of the
accumulator, and the error grows with the depth. A kernel that sums each tile of 64
in the tensor cores and the tiles in float32 registers (the flash attention kernel's
shape) keeps float32's accuracy. Prints a markdown table; errors are in units of
sum |x| |w| per output (float32's unit roundoff is 6.0e-8).
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

TF32_GROUP, BF16_GROUP, EXTRA_BITS = 8, 16, 2  # H100 / H200, the model's parameters
TILE = 64


def round_bits(x: np.ndarray, drop: int) -> np.ndarray:
    """float32 -> float32 with its low `drop` significand bits rounded off (to nearest, ties to even)."""
    bits = x.astype(np.float32).view(np.int32).astype(np.int64)
    odd = (bits >> drop) & 1
    bits = (bits + (1 << (drop - 1)) - 1 + odd) & ~((1 << drop) - 1)
    return bits.astype(np.int32).view(np.float32)


def to_tf32(x):
    return round_bits(x, 13)


def to_bf16(x):
    return round_bits(x, 16)


def toward_zero(x: np.ndarray, bits: int) -> np.ndarray:
    """x (float64) cut to `bits` significant bits, rounding toward zero."""
    _, exponent = np.frexp(x)
    unit = np.ldexp(1.0, exponent - bits)
    return np.trunc(x / unit) * unit


def tensor_core_product(a: np.ndarray, b: np.ndarray, group: int, extra_bits: int = EXTRA_BITS) -> np.ndarray:
    """a (M, K) @ b (K, N), operands already in the input format (held as float64, so
    their products are exact), summed as the model says: per group of `group` products
    plus the accumulator, alignment to the largest term with truncation below
    2^(e - 24 - extra_bits), then the float32 accumulator rounded toward zero."""
    acc = np.zeros((a.shape[0], b.shape[1]))
    for start in range(0, a.shape[1], group):
        terms = np.concatenate([acc[:, None], a[:, start:start + group, None] * b[None, start:start + group]], axis=1)
        _, exponent = np.frexp(terms)
        top = np.where(terms == 0, -1 << 20, exponent).max(axis=1, keepdims=True)
        unit = np.ldexp(1.0, top - 24 - extra_bits)
        acc = toward_zero((np.trunc(terms / unit) * unit).sum(axis=1), 24)
    return acc


def cuda_core_product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b as one float32 fused multiply-add after another, each rounded to nearest."""
    acc = np.zeros((a.shape[0], b.shape[1]), np.float32)
    for i in range(a.shape[1]):
        acc = (acc.astype(np.float64) + a[:, i, None].astype(np.float64) * b[None, i].astype(np.float64)).astype(np.float32)
    return acc.astype(np.float64)


def tf32x3_operands(x: np.ndarray, w: np.ndarray):
    """The removed linear=tf32x3's one product: (hi, hi, lo) @ (hi, lo, hi) along K."""
    x_hi, w_hi = to_tf32(x), to_tf32(w)
    x_lo, w_lo = to_tf32(x - x_hi), to_tf32(w - w_hi)  # a TF32 unit reads lo rounded
    return (np.concatenate([x_hi, x_hi, x_lo], 1).astype(np.float64),
            np.concatenate([w_hi, w_lo, w_hi], 0).astype(np.float64))


def bf16x6_operands(x: np.ndarray, w: np.ndarray):
    """The removed linear=bf16x6's one product: three bfloat16 pieces each, the six pairs of order <= 2."""
    def pieces(t):
        p0 = to_bf16(t)
        p1 = to_bf16(t - p0)
        return p0, p1, to_bf16(t - p0 - p1)

    x0, x1, x2 = pieces(x)
    w0, w1, w2 = pieces(w)
    return (np.concatenate([x0, x0, x1, x0, x1, x2], 1).astype(np.float64),
            np.concatenate([w0, w1, w0, w2, w1, w0], 0).astype(np.float64))


def tiled_tf32x3(x: np.ndarray, w: np.ndarray, tile: int = TILE) -> np.ndarray:
    """tf32x3 on the tensor cores a tile of K at a time, the tiles added in float32."""
    total = np.zeros((x.shape[0], w.shape[1]), np.float32)
    for start in range(0, x.shape[1], tile):
        part = tensor_core_product(*tf32x3_operands(x[:, start:start + tile], w[start:start + tile]), TF32_GROUP)
        total = (total.astype(np.float64) + part).astype(np.float32)
    return total.astype(np.float64)


def measure(rows: int, cols: int, depth: int, seed: int = 0) -> dict:
    """Each way's error on activations-like x (M, K) and weights-like w (K, N)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, depth)).astype(np.float32)
    w = (0.03 * rng.standard_normal((depth, cols))).astype(np.float32)
    exact = x.astype(np.float64) @ w.astype(np.float64)
    scale = np.abs(x.astype(np.float64)) @ np.abs(w.astype(np.float64))
    left, right = tf32x3_operands(x, w)
    ways = {
        "float32 on the CUDA cores": cuda_core_product(x, w),
        "tf32x3 as one product, float32 sums rounded to nearest (the tests' emulation)":
            (left.astype(np.float32) @ right.astype(np.float32)).astype(np.float64),
        "tf32x3 as one product, tensor-core sums (the removed linear=tf32x3)":
            tensor_core_product(left, right, TF32_GROUP),
        "bf16x6 as one product, tensor-core sums (the removed linear=bf16x6)":
            tensor_core_product(*bf16x6_operands(x, w), BF16_GROUP),
        f"tf32x3 in tiles of {TILE}, tiles added in float32 (a per-tile kernel)": tiled_tf32x3(x, w),
        "plain TF32, tensor-core sums": tensor_core_product(to_tf32(x).astype(np.float64),
                                                           to_tf32(w).astype(np.float64), TF32_GROUP),
    }
    errors = {name: np.abs(got - exact) / scale for name, got in ways.items()}
    return {name: {"max": float(e.max()), "median": float(np.median(e))} for name, e in errors.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--cols", type=int, default=128)
    parser.add_argument("--depth", type=int, nargs="+", default=[1024, 4096], help="K: 1024 the backbone's width, "
                        "4096 its feed-forward's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    results = {}
    for depth in args.depth:
        results[depth] = found = measure(args.rows, args.cols, depth, args.seed)
        base = found["float32 on the CUDA cores"]["median"]
        print(f"\n{args.rows} x {depth} @ {depth} x {args.cols}: error / sum |x| |w|\n")
        print("| product | max | median | median / float32's |\n| --- | --- | --- | --- |")
        for name, e in found.items():
            print(f"| {name} | {e['max']:.2e} | {e['median']:.2e} | {e['median'] / base:.1f}x |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
