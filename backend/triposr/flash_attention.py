"""Float32 attention in one pass (flash attention) with split TF32 products: a Triton
kernel for CUDA, and the same algorithm in torch for every other device and the tests.

softmax(q k^T / sqrt(d)) v without the N x N scores in memory: each block of queries
walks the keys a block at a time, keeping a running maximum m, a running sum l of
exp(s - m) and a running output, rescaled by exp(m_old - m_new) whenever the maximum
grows (Milakov and Gimelshein's online softmax, as in FlashAttention). Both products
(q k^T and p v) are tf32x3 (split_products.py): float32 accuracy from the tensor
cores, where torch's float32 attention runs on the CUDA cores (the memory-efficient
kernel: 27 of the encoder's 87 ms on an H200, issue 23).

The kernel runs where Triton does (a CUDA build of torch brings it); its logic is
checked on the CPU by Triton's interpreter (TRITON_INTERPRET=1) where Triton is
installed, and `blockwise_attention` is the same algorithm in torch, checked everywhere.
"""

import math

import torch

from .split_products import left_operand, right_operand, split_matmul

try:
    import triton
    import triton.language as tl
except ImportError:  # the CPU build of torch comes without Triton
    triton = None

BLOCK_M, BLOCK_N = 64, 64  # queries per program, keys per step
NUM_WARPS, NUM_STAGES = 4, 2


def available() -> bool:
    return triton is not None


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
    out = torch.empty((b, n, h, d), dtype=torch.float32, device=q.device).transpose(1, 2)
    grid = (triton.cdiv(n, BLOCK_M), b * h)
    _attention_kernel[grid](
        q, k, v, out, *q.stride()[:3], *k.stride()[:3], *v.stride()[:3], *out.stride()[:3], h, n,
        1.0 / math.sqrt(d), N_K=n_k, HEAD=d, BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, num_warps=NUM_WARPS, num_stages=NUM_STAGES)
    return out


def blockwise_attention(q, k, v, mode: str = "tf32x3", block: int = BLOCK_N):
    """The kernel's algorithm in torch (same blocks, same online softmax, split products
    as split_matmul computes them on this device) -> (B, H, N, d)."""
    b, h, n, d = q.shape
    q = (q * (1.0 / math.sqrt(d))).reshape(b * h, n, d)
    k, v = k.reshape(b * h, -1, d), v.reshape(b * h, -1, d)
    left = left_operand(q, mode)
    high = torch.full((b * h, n, 1), -math.inf, device=q.device)
    total = torch.zeros((b * h, n, 1), device=q.device)
    acc = torch.zeros_like(q)
    for start in range(0, k.shape[1], block):
        keys, values = k[:, start:start + block], v[:, start:start + block]
        s = split_matmul(left, right_operand(keys, mode).transpose(1, 2), mode)
        new_high = torch.maximum(high, s.amax(dim=-1, keepdim=True))
        alpha = torch.exp(high - new_high)
        p = torch.exp(s - new_high)
        total = total * alpha + p.sum(dim=-1, keepdim=True)
        pv = split_matmul(left_operand(p, mode), right_operand(values.transpose(1, 2), mode).transpose(1, 2), mode)
        acc = acc * alpha + pv
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
