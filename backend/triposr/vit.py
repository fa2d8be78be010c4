"""The DINO ViT image encoder, with the module paths of transformers 4.35's ViTModel.

Written out here rather than taken from transformers so that the official checkpoint's
4.x key names load as they are, whatever transformers version is installed.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import VitConfig

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class PatchEmbeddings(nn.Module):
    def __init__(self, cfg: VitConfig):
        super().__init__()
        self.projection = nn.Conv2d(
            cfg.num_channels, cfg.hidden_size, kernel_size=cfg.patch_size, stride=cfg.patch_size
        )

    def forward(self, pixels):
        return self.projection(pixels).flatten(2).transpose(1, 2)


class Embeddings(nn.Module):
    def __init__(self, cfg: VitConfig):
        super().__init__()
        grid = cfg.image_size // cfg.patch_size
        self.patch_size = cfg.patch_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.hidden_size))
        self.position_embeddings = nn.Parameter(torch.zeros(1, grid * grid + 1, cfg.hidden_size))
        self.patch_embeddings = PatchEmbeddings(cfg)
        self._resized = None  # (key, table): the last resized table, reused while nothing changed

    def resized_positions(self, height: int, width: int):
        """Position embeddings for another input size, resized as transformers 4.35 did.

        The +0.1 scale factor (rather than an exact target size) is what the official
        weights were used with; later transformers versions give different numbers.
        Without autograd the resized table is kept for the next input of the same size
        (a bicubic resize per encode: 3.6 ms on an H200); the key holds the table's
        storage and version, so new weights, a move or an in-place change resize again.
        """
        table = self.position_embeddings
        stored = table.shape[1] - 1
        rows, cols = height // self.patch_size, width // self.patch_size
        if rows * cols == stored and height == width:
            return table
        if torch.is_grad_enabled():
            return self._resize(table, rows, cols)
        key = (rows, cols, table.data_ptr(), table._version, table.device, table.dtype)
        if self._resized is None or self._resized[0] != key:
            self._resized = (key, self._resize(table, rows, cols))
        return self._resized[1]

    @staticmethod
    def _resize(table, rows: int, cols: int):
        stored = table.shape[1] - 1
        side = int(math.sqrt(stored))
        dim = table.shape[-1]
        grid = table[:, 1:].reshape(1, side, side, dim).permute(0, 3, 1, 2)
        grid = F.interpolate(
            grid,
            scale_factor=((rows + 0.1) / side, (cols + 0.1) / side),
            mode="bicubic",
            align_corners=False,
        )
        grid = grid.permute(0, 2, 3, 1).reshape(1, -1, dim)
        return torch.cat((table[:, :1], grid), dim=1)

    def forward(self, pixels):
        tokens = self.patch_embeddings(pixels)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        tokens = torch.cat((cls, tokens), dim=1)
        return tokens + self.resized_positions(pixels.shape[-2], pixels.shape[-1])


class SelfAttention(nn.Module):
    def __init__(self, cfg: VitConfig):
        super().__init__()
        self.heads = cfg.num_attention_heads
        self.query = nn.Linear(cfg.hidden_size, cfg.hidden_size, bias=cfg.qkv_bias)
        self.key = nn.Linear(cfg.hidden_size, cfg.hidden_size, bias=cfg.qkv_bias)
        self.value = nn.Linear(cfg.hidden_size, cfg.hidden_size, bias=cfg.qkv_bias)
        self.attend = F.scaled_dot_product_attention  # fast_encoder may swap in the flash kernel

    def forward(self, x):
        b, n, c = x.shape

        def split(t):
            return t.view(b, n, self.heads, c // self.heads).transpose(1, 2)

        out = self.attend(split(self.query(x)), split(self.key(x)), split(self.value(x)))
        return out.transpose(1, 2).reshape(b, n, c)


class AttentionOutput(nn.Module):
    def __init__(self, cfg: VitConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)

    def forward(self, x):
        return self.dense(x)


class Attention(nn.Module):
    def __init__(self, cfg: VitConfig):
        super().__init__()
        self.attention = SelfAttention(cfg)
        self.output = AttentionOutput(cfg)

    def forward(self, x):
        return self.output(self.attention(x))


class Intermediate(nn.Module):
    def __init__(self, cfg: VitConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.intermediate_size)

    def forward(self, x):
        return F.gelu(self.dense(x))


class Output(nn.Module):
    def __init__(self, cfg: VitConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.intermediate_size, cfg.hidden_size)

    def forward(self, x):
        return self.dense(x)


class Layer(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, cfg: VitConfig):
        super().__init__()
        self.attention = Attention(cfg)
        self.intermediate = Intermediate(cfg)
        self.output = Output(cfg)
        self.layernorm_before = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.layernorm_after = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, x):
        x = x + self.attention(self.layernorm_before(x))
        return x + self.output(self.intermediate(self.layernorm_after(x)))


class Encoder(nn.Module):
    def __init__(self, cfg: VitConfig):
        super().__init__()
        self.layer = nn.ModuleList(Layer(cfg) for _ in range(cfg.num_hidden_layers))

    def forward(self, x):
        for layer in self.layer:
            x = layer(x)
        return x


class Pooler(nn.Module):
    """Present in the checkpoint; TripoSR never uses its output."""

    def __init__(self, cfg: VitConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)


class ViTModel(nn.Module):
    def __init__(self, cfg: VitConfig):
        super().__init__()
        self.embeddings = Embeddings(cfg)
        self.encoder = Encoder(cfg)
        self.layernorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.pooler = Pooler(cfg)

    def forward(self, pixels):
        """(B, 3, H, W) normalised pixels -> last hidden state (B, 1 + patches, hidden)."""
        return self.layernorm(self.encoder(self.embeddings(pixels)))


class ImageTokenizer(nn.Module):
    """Resize + normalise an RGB image batch and encode it; key prefix `image_tokenizer.model`."""

    def __init__(self, cfg: VitConfig, cond_image_size: int):
        super().__init__()
        self.model = ViTModel(cfg)
        self.cond_image_size = cond_image_size
        self.init_constants()

    def init_constants(self):
        """(Re)create the normalisation buffers, e.g. after building on the meta device."""
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images):
        """(B, H, W, 3) floats in [0, 1] -> context tokens (B, N, hidden)."""
        return self.tokens(self.resize(images))

    def resize(self, images):
        """(B, H, W, 3) floats in [0, 1] -> (B, 3, S, S) at the model's input size.

        Separate from tokens() so images of different sizes can be resized one by one
        and then encoded as one batch (the server's encoder batching).
        """
        pixels = images.permute(0, 3, 1, 2)
        size = (self.cond_image_size, self.cond_image_size)
        return F.interpolate(pixels.float(), size, mode="bilinear", align_corners=False, antialias=True)

    def tokens(self, pixels):
        """resize()'s output -> context tokens (B, N, hidden)."""
        pixels = (pixels - self.mean) / self.std
        return self.model(pixels.to(self.model.embeddings.cls_token.dtype))
