"""Float32 attention in one pass (flash attention) with split TF32 products: a Triton
kernel for CUDA, and the same algorithm in torch for every other device and the tests.

softmax(q k^T / sqrt(d)) v without the N x N scores in memory: each block of queries
walks the keys a block at a time, keeping a running maximum m, a running sum l of
exp(s - m) and a running output, rescaled by exp(m_old - m_new) whenever the maximum
grows (Milakov and Gimelshein's online softmax, as in FlashAttention). Both products
(q k^T and p v) are Triton's tf32x3: each operand split as x = hi + lo with hi
rounded to TF32 (10 stored bits), and hi*hi + hi*lo + lo*hi from the tensor cores,
where torch's float32 attention runs on the CUDA cores (the memory-efficient kernel:
27 of the encoder's 87 ms on an H200, issue 23). Each tl.dot covers 64 keys or the
64-wide head, so the tensor cores' own accumulation (aligned to the largest term and
truncated, bench/tensor_core_accumulation.py) only ever sums short runs: measured on
an H200, the scene codes stay within 4.1e-5 of the standard kernels' (bench/RESULTS.md).

The kernel runs where Triton does (a CUDA build of torch brings it); its logic is
checked on the CPU by Triton's interpreter (TRITON_INTERPRET=1) where Triton is
installed, and `blockwise_attention` is the same algorithm in torch, checked everywhere.
"""

import math

import torch

try:
    import triton
    import triton.language as tl
except Exception:  # noqa: BLE001 (CPU builds of torch come without Triton; a broken one must not stop the import)
    triton = None

BLOCK_M, BLOCK_N = 64, 64  # queries per program, keys per step
NUM_WARPS, NUM_STAGES = 4, 2
_TF32_DROP = 13  # float32 keeps 23 stored significand bits, TF32 10


def available() -> bool:
    return triton is not None


def accepts(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> bool:
    """Whether the kernel takes these (B, H, N, d) tensors: float32 on CUDA, a power-of-two
    head size of 16 or more, the head dimension contiguous."""
    d = q.shape[-1]
    return (all(t.is_cuda and t.dtype == torch.float32 and t.stride(3) == 1 for t in (q, k, v))
            and d >= 16 and not d & (d - 1))


def flash_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(B, H, N, d) float32 q and (B, H, Nk, d) k, v, any strides with d contiguous ->
    (B, H, N, d): a view of a (B, N, H, d) tensor, so the caller's transpose back to
    (B, N, H * d) costs nothing."""
    b, h, n, d = q.shape
    n_k = k.shape[2]
    if triton is None:
        raise RuntimeError("flash attention needs Triton (it comes with torch's CUDA builds)")
    if d & (d - 1) or d < 16 or q.stride(3) != 1 or k.stride(3) != 1 or v.stride(3) != 1:
        raise ValueError(f"flash attention takes a power-of-two head size of 16 or more, contiguous; got {d}")
    if q.dtype != torch.float32:
        raise ValueError(f"flash attention is for the float32 encoder, got {q.dtype}")
    out = torch.empty((b, n, h, d), dtype=torch.float32, device=q.device).transpose(1, 2)
    grid = (triton.cdiv(n, BLOCK_M), b * h)
    _attention_kernel[grid](
        q, k, v, out, *q.stride()[:3], *k.stride()[:3], *v.stride()[:3], *out.stride()[:3], h, n,
        1.0 / math.sqrt(d), N_K=n_k, HEAD=d, BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, num_warps=NUM_WARPS, num_stages=NUM_STAGES)
    return out


def round_to_tf32(x: torch.Tensor) -> torch.Tensor:
    """x (float32) rounded to the nearest TF32 value (10 stored significand bits, ties
    away from zero, as PTX's cvt.rna.tf32.f32 that Triton's tf32x3 uses), still float32:
    its low 13 bits are zero, so a TF32 unit reads it exactly."""
    bits = x.contiguous().view(torch.int32)
    return ((bits + (1 << (_TF32_DROP - 1))) & -(1 << _TF32_DROP)).view(torch.float32)


def truncate_to_tf32(x: torch.Tensor) -> torch.Tensor:
    """x with its low 13 significand bits cleared: what a TF32 unit that truncates reads."""
    return (x.contiguous().view(torch.int32) & -(1 << _TF32_DROP)).view(torch.float32)


def split_tf32(x: torch.Tensor):
    """-> (hi, lo): hi exactly TF32, lo = x - hi exactly (float32)."""
    hi = round_to_tf32(x)
    return hi, x - hi


def tf32x3_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b as tf32x3 computes it, the tensor cores emulated on this device: hi*hi +
    (hi*lo + lo*hi), every operand read as TF32 (truncated: the worse case), products
    summed in float32. Short products only (a block of keys, a head): the emulation's
    float32 sums are exact-rounded, the tensor cores' are not (module docstring)."""
    a_hi, a_lo = split_tf32(a)
    b_hi, b_lo = split_tf32(b)
    small = truncate_to_tf32(a_hi) @ truncate_to_tf32(b_lo) + truncate_to_tf32(a_lo) @ truncate_to_tf32(b_hi)
    return a_hi @ b_hi + small


def blockwise_attention(q, k, v, block: int = BLOCK_N):
    """The kernel's algorithm in torch (same blocks, same online softmax, tf32x3 products
    emulated) -> (B, H, N, d)."""
    b, h, n, d = q.shape
    q = (q * (1.0 / math.sqrt(d))).reshape(b * h, n, d)
    k, v = k.reshape(b * h, -1, d), v.reshape(b * h, -1, d)
    high = torch.full((b * h, n, 1), -math.inf, device=q.device)
    total = torch.zeros((b * h, n, 1), device=q.device)
    acc = torch.zeros_like(q)
    for start in range(0, k.shape[1], block):
        keys, values = k[:, start:start + block], v[:, start:start + block]
        s = tf32x3_matmul(q, keys.transpose(1, 2))
        new_high = torch.maximum(high, s.amax(dim=-1, keepdim=True))
        alpha = torch.exp(high - new_high)
        p = torch.exp(s - new_high)
        total = total * alpha + p.sum(dim=-1, keepdim=True)
        acc = acc * alpha + tf32x3_matmul(p, values)
        high = new_high
    return (acc / total).view(b, h, n, d)


if triton is not None:

    @triton.jit
    def _attention_kernel(q_ptr, k_ptr, v_ptr, o_ptr, sqb, sqh, sqn, skb, skh, skn, svb, svh, svn, sob, soh, son,
                          heads, n_q, scale, N_K: tl.constexpr, HEAD: tl.constexpr, BLOCK_M: tl.constexpr,
                          BLOCK_N: tl.constexpr):
        block = tl.program_id(0)
        bh = tl.program_id(1)
        batch, head = bh // heads, bh % heads
        rows = block * BLOCK_M + tl.arange(0, BLOCK_M)
        dims = tl.arange(0, HEAD)
        row_ok = rows < n_q
        q = tl.load(q_ptr + batch * sqb + head * sqh + rows[:, None] * sqn + dims[None, :], mask=row_ok[:, None],
                    other=0.0)
        q = q * scale  # 1/8 for d = 64: exact
        high = tl.full([BLOCK_M], float("-inf"), tl.float32)
        total = tl.zeros([BLOCK_M], tl.float32)
        acc = tl.zeros([BLOCK_M, HEAD], tl.float32)
        k_base = k_ptr + batch * skb + head * skh
        v_base = v_ptr + batch * svb + head * svh
        for start in range(0, N_K, BLOCK_N):  # the key count is a constant: one compile per length
            cols = start + tl.arange(0, BLOCK_N)
            col_ok = cols < N_K
            keys_t = tl.load(k_base + cols[None, :] * skn + dims[:, None], mask=col_ok[None, :], other=0.0)
            s = tl.dot(q, keys_t, input_precision="tf32x3")
            s = tl.where(col_ok[None, :], s, float("-inf"))
            new_high = tl.maximum(high, tl.max(s, 1))
            alpha = tl.exp(high - new_high)
            p = tl.exp(s - new_high[:, None])
            total = total * alpha + tl.sum(p, 1)
            values = tl.load(v_base + cols[:, None] * svn + dims[None, :], mask=col_ok[:, None], other=0.0)
            acc = acc * alpha[:, None] + tl.dot(p, values, input_precision="tf32x3")
            high = new_high
        acc = acc / total[:, None]
        tl.store(o_ptr + batch * sob + head * soh + rows[:, None] * son + dims[None, :], acc, mask=row_ok[:, None])
