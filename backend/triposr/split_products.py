"""Float32 matrix products from tensor cores: each operand split into pieces the tensor
cores multiply exactly, the pieces' products summed in float32.

A float32 number has a 24-bit significand; the tensor cores take operands of 11 bits
(TF32) or 8 bits (bfloat16), multiply them exactly and accumulate in float32. Split
a = a_hi + a_lo with a_hi rounded to the short format and a_lo = a - a_hi (exact in
float32), and the product a b is the sum of the pieces' products, of which only the
smallest need be dropped:

- "tf32x3": a_hi b_hi + a_hi b_lo + a_lo b_hi; a_lo and b_lo are rounded to TF32 in
  turn (2^-11 of an already 2^-11 small term), the dropped a_lo b_lo is 2^-22 of the
  product: float32's own rounding is 2^-24, so the sum of K products lands within a
  few float32 roundings of the exact one. Three TF32 products cost about what one
  float32 product costs on the CUDA cores divided by 2.5 (H100/H200: 495 against 67
  dense TFLOP/s).
- "bf16x6": a = a0 + a1 + a2, three bfloat16 pieces of 8 bits (24 bits: every float32
  of normal range exactly); the six products of order <= 2 (a0b0, a0b1, a1b0, a0b2,
  a1b1, a2b0), the dropped ones 2^-24 of the product. Six bfloat16 products cost what
  three TF32 ones do (990 dense TFLOP/s), need no process-wide TF32 switch, and give
  float32 output through torch.mm's out_dtype.

The pieces are laid side by side along the reduction axis, so each split product is ONE
matrix product of a K three or six times longer (the accumulation stays in the tensor
cores' float32 registers, one kernel, no partial results to add). On CUDA the products
run on the tensor cores; elsewhere they are emulated exactly (pieces upcast to float32,
TF32 operands rounded), which is how the tests check the error analysis on a CPU.
"""

import threading

import torch

MODES = ("tf32x3", "bf16x6")
_TF32_DROP = 13  # float32 keeps 23 stored significand bits, TF32 10
_TF32_LOCK = threading.Lock()


def round_to_tf32(x: torch.Tensor) -> torch.Tensor:
    """x (float32) rounded to the nearest TF32 value (10 stored significand bits, ties
    away from zero), still stored as float32: its low 13 bits are zero, so a TF32 unit
    reads it exactly."""
    bits = x.contiguous().view(torch.int32)
    half = 1 << (_TF32_DROP - 1)
    return ((bits + half) & -(1 << _TF32_DROP)).view(torch.float32)


def truncate_to_tf32(x: torch.Tensor) -> torch.Tensor:
    """x with its low 13 significand bits cleared: what a TF32 unit that truncates reads."""
    return (x.contiguous().view(torch.int32) & -(1 << _TF32_DROP)).view(torch.float32)


def split_tf32(x: torch.Tensor):
    """-> (hi, lo): hi exactly TF32, lo = x - hi exactly (float32)."""
    hi = round_to_tf32(x)
    return hi, x - hi


def split_bf16(x: torch.Tensor):
    """-> (x0, x1, x2) bfloat16 with x0 + x1 + x2 == x for float32 x of normal range."""
    x0 = x.to(torch.bfloat16)
    r = x - x0.float()
    x1 = r.to(torch.bfloat16)
    x2 = (r - x1.float()).to(torch.bfloat16)
    return x0, x1, x2


def left_operand(x: torch.Tensor, mode: str) -> torch.Tensor:
    """x (..., K) float32 -> its pieces side by side (..., 3K or 6K), in the order that
    pairs with right_operand's."""
    if mode == "tf32x3":
        hi, lo = split_tf32(x)
        return torch.cat((hi, hi, lo), dim=-1)
    if mode == "bf16x6":
        x0, x1, x2 = split_bf16(x)
        return torch.cat((x0, x0, x1, x0, x1, x2), dim=-1)
    raise ValueError(f"unknown split mode {mode!r}: choose one of {', '.join(MODES)}")


def right_operand(w: torch.Tensor, mode: str) -> torch.Tensor:
    """w (..., K) float32, the other factor with K last (a Linear's weight (O, K), or a
    key matrix (..., N, K)) -> its pieces side by side, paired with left_operand's."""
    if mode == "tf32x3":
        hi, lo = split_tf32(w)
        return torch.cat((hi, lo, hi), dim=-1)
    if mode == "bf16x6":
        w0, w1, w2 = split_bf16(w)
        return torch.cat((w0, w1, w0, w2, w1, w0), dim=-1)
    raise ValueError(f"unknown split mode {mode!r}: choose one of {', '.join(MODES)}")


def split_matmul(left: torch.Tensor, right_t: torch.Tensor, mode: str) -> torch.Tensor:
    """left (B?, N, K') @ right_t (B?, K', O) -> float32, both from *_operand.

    On CUDA: one tensor-core product (bfloat16 with float32 output, or TF32 switched on
    for this call only). Elsewhere: the same products emulated exactly in float32.
    """
    if left.is_cuda:
        if mode == "bf16x6":
            op = torch.bmm if left.dim() == 3 else torch.mm
            return op(left, right_t, out_dtype=torch.float32)
        with tf32_matmul():
            return torch.matmul(left, right_t)
    if mode == "bf16x6":
        return torch.matmul(left.float(), right_t.float())  # bfloat16 products are exact in float32
    # a TF32 unit reads each operand with its low 13 bits gone (truncating: the worse case)
    return torch.matmul(truncate_to_tf32(left), truncate_to_tf32(right_t))


class tf32_matmul:
    """TF32 matrix products for the block, then the caller's setting again.

    torch's switch is process-wide: a float32 product that another thread runs inside
    this block also takes TF32. The blocks themselves hold a lock, so two of them never
    restore each other's setting early. A CUDA graph captured inside the block keeps the
    TF32 kernels it recorded, whatever the switch says when it is replayed
    (fast_encoder.GraphedEncoder): that is the thread-safe way to use tf32x3.
    """

    def __enter__(self):
        _TF32_LOCK.acquire()
        self._previous = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = True
        return self

    def __exit__(self, *exc):
        torch.backends.cuda.matmul.allow_tf32 = self._previous
        _TF32_LOCK.release()
        return False
