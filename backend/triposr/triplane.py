"""Triplane tokens, the 1D transformer backbone and the upsampler (image tokens -> scene codes)."""

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig


class TriplaneTokenizer(nn.Module):
    """Learned triplane tokens, flattened plane-major, then row, then column."""

    def __init__(self, plane_size: int, channels: int):
        super().__init__()
        self.embeddings = nn.Parameter(torch.zeros(3, channels, plane_size, plane_size))

    def forward(self, batch_size: int):
        planes, channels = self.embeddings.shape[:2]
        tokens = self.embeddings.permute(1, 0, 2, 3).reshape(channels, -1)
        return tokens.unsqueeze(0).expand(batch_size, -1, -1)

    def detokenize(self, tokens):
        """(B, C, 3*H*W) -> (B, 3, C, H, W)."""
        b, c, _ = tokens.shape
        size = self.embeddings.shape[-1]
        return tokens.view(b, c, 3, size, size).permute(0, 2, 1, 3, 4)


class Attention(nn.Module):
    """Multi-head attention, q/k/v without bias, output projection with bias (`to_out.0`)."""

    def __init__(self, dim: int, heads: int, head_dim: int, context_dim: int | None = None):
        super().__init__()
        inner = heads * head_dim
        self.heads = heads
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim or dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim or dim, inner, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(inner, dim)])
        self.attend = F.scaled_dot_product_attention  # fast_encoder may swap in the flash kernel

    def forward(self, x, context=None):
        context = x if context is None else context
        b = x.shape[0]

        def split(t):
            return t.view(b, t.shape[1], self.heads, -1).transpose(1, 2)

        out = self.attend(split(self.to_q(x)), split(self.to_k(context)), split(self.to_v(context)))
        return self.to_out[0](out.transpose(1, 2).reshape(b, x.shape[1], -1))


class GEGLU(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.proj = nn.Linear(dim, hidden * 2)

    def forward(self, x):
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.gelu(gate)


class FeedForward(nn.Module):
    """Key layout `net.0.proj` and `net.2` as in the checkpoint (net.1 was a dropout)."""

    def __init__(self, dim: int):
        super().__init__()
        self.net = nn.ModuleList([GEGLU(dim, dim * 4), nn.Identity(), nn.Linear(dim * 4, dim)])

    def forward(self, x):
        for module in self.net:
            x = module(x)
        return x


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, head_dim: int, context_dim: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.attn1 = Attention(dim, heads, head_dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.attn2 = Attention(dim, heads, head_dim, context_dim)
        self.norm3 = nn.LayerNorm(dim, eps=1e-5)
        self.ff = FeedForward(dim)

    def forward(self, x, context):
        x = x + self.attn1(self.norm1(x))
        x = x + self.attn2(self.norm2(x), context)
        return x + self.ff(self.norm3(x))


class Backbone(nn.Module):
    """GroupNorm, project in, transformer blocks, project out, residual; on (B, C, N)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        channels = cfg.backbone_in_channels
        inner = cfg.backbone_heads * cfg.backbone_head_dim
        self.norm = nn.GroupNorm(32, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, inner)
        self.transformer_blocks = nn.ModuleList(
            TransformerBlock(inner, cfg.backbone_heads, cfg.backbone_head_dim, cfg.cross_attention_dim)
            for _ in range(cfg.backbone_layers)
        )
        self.proj_out = nn.Linear(inner, channels)

    def forward(self, tokens, context):
        x = self.proj_in(self.norm(tokens).transpose(1, 2))
        for block in self.transformer_blocks:
            x = block(x, context)
        return self.proj_out(x).transpose(1, 2) + tokens


class TriplaneUpsampler(nn.Module):
    """Doubles each plane's resolution with one transposed convolution."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.upsample = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)

    def forward(self, planes):
        b, p, c, h, w = planes.shape
        out = self.upsample(planes.reshape(b * p, c, h, w))
        return out.view(b, p, *out.shape[1:])
