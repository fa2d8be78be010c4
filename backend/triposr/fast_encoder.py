"""Faster float32 encoder kernels for CUDA: split tensor-core products, split attention,
and the encoder replayed as one CUDA graph. Each is an option, off by default.

The float32 encoder (ViT and triplane backbone) spends its time in float32 matrix
products on the CUDA cores and in float32 attention. These options keep float32
results (split_products.py says why the error stays at float32's level) while moving
the arithmetic to the tensor cores:

- linear="tf32x3" | "bf16x6": every Linear of the ViT and the backbone as one split
  product (SplitLinear); the weights' pieces are made once, beside the weights.
- attention="tf32x3" | "bf16x6": softmax(q k^T / sqrt(d)) v as two split products
  with the softmax in float32 between them, a block of queries at a time (the
  scores of a block, not of all queries, are ever in memory).
- attention="flash": one fused pass per block of queries (flash_attention.py, a
  Triton kernel), both products tf32x3, the scores never in memory.
- graph=True: the whole encoder (resize excepted) captured once as a CUDA graph per
  input shape and replayed: hundreds of kernel launches become one, and a tf32x3
  graph keeps its TF32 kernels without touching torch's process-wide switch again.

They apply on CUDA only: on any other device `apply_encoder_kernels` refuses (the CPU's
results stay bit for bit those of the plain model). `emulate=True` applies the split
arithmetic anywhere, emulated exactly, for the tests.
"""

import math
import os
import threading
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import flash_attention
from .split_products import MODES, left_operand, right_operand, split_matmul

ENVIRONMENT = "IMAGE_TO_3D_ENCODER_KERNELS"  # e.g. "linear=bf16x6,attention=flash,graph"
ATTENTION_QUERY_BLOCK = 1024  # queries per block of scores: 16 heads x 1024 x 3072 x 4 B = 200 MB


@dataclass(frozen=True)
class EncoderKernels:
    linear: str | None = None
    attention: str | None = None
    graph: bool = False

    @classmethod
    def parse(cls, text: str | None) -> "EncoderKernels":
        """"linear=bf16x6,attention=tf32x3,graph" (any subset, any order); "" or None: none."""
        fields = {}
        for part in filter(None, (p.strip() for p in (text or "").split(","))):
            name, _, value = part.partition("=")
            if name == "graph" and not value:
                fields["graph"] = True
            elif name in ("linear", "attention") and (value in MODES or (name, value) == ("attention", "flash")):
                fields[name] = value
            else:
                raise ValueError(f"unknown encoder kernel option {part!r}: use linear=MODE, attention=MODE or "
                                 f"attention=flash (MODE one of {', '.join(MODES)}) and graph, separated by commas")
        return cls(**fields)

    def __str__(self) -> str:
        parts = [f"linear={self.linear}"] * bool(self.linear) + [f"attention={self.attention}"] * bool(self.attention)
        return ",".join(parts + ["graph"] * self.graph) or "standard"


class SplitLinear(nn.Module):
    """A Linear computed as one split product; the same weight and bias Parameters, so
    state_dict keys and values are unchanged. The weight's pieces are a buffer made once."""

    def __init__(self, linear: nn.Linear, mode: str):
        super().__init__()
        self.original = [linear]  # a list: not a submodule, so no second copy in state_dict
        self.weight, self.bias, self.mode = linear.weight, linear.bias, mode
        self.register_buffer("pieces_t", right_operand(linear.weight.detach().float(), mode).T, persistent=False)

    def forward(self, x):
        out = split_matmul(left_operand(x.reshape(-1, x.shape[-1]), self.mode), self.pieces_t, self.mode)
        if self.bias is not None:
            out = out + self.bias
        return out.view(*x.shape[:-1], out.shape[-1])


def split_attention(mode: str, block: int = ATTENTION_QUERY_BLOCK):
    """An attend(q, k, v) for (B, H, N, d) float32 tensors with split products."""

    def attend(q, k, v):
        b, h, n, d = q.shape
        q = (q * (1.0 / math.sqrt(d))).reshape(b * h, n, d)
        keys_t = right_operand(k.reshape(b * h, -1, d), mode).transpose(1, 2)  # (BH, d', Nk)
        values = right_operand(v.reshape(b * h, -1, d).transpose(1, 2), mode).transpose(1, 2)  # (BH, Nk', d)
        out = torch.empty_like(q)
        for start in range(0, n, block):
            scores = split_matmul(left_operand(q[:, start:start + block], mode), keys_t, mode)
            weights = torch.softmax(scores, dim=-1)
            out[:, start:start + block] = split_matmul(left_operand(weights, mode), values, mode)
        return out.view(b, h, n, d)

    return attend


def environment_kernels(device, precision: str) -> EncoderKernels | None:
    """The kernels $IMAGE_TO_3D_ENCODER_KERNELS asks for, where they apply (float32 on
    CUDA), else None: the worker and a server's replicas load models through the family's
    engine, so the environment is how they get the kernels without a new job option.
    A value that does not parse raises ValueError naming it."""
    text = os.environ.get(ENVIRONMENT, "").strip()
    if not text or torch.device(device).type != "cuda" or precision != "float32":
        return None
    try:
        return EncoderKernels.parse(text)
    except ValueError as exc:
        raise ValueError(f"${ENVIRONMENT}: {exc}") from None


def _attention(mode, device):
    if mode != "flash":
        return split_attention(mode)
    if torch.device(device).type == "cuda":
        if not flash_attention.available():
            raise ValueError("attention=flash needs Triton, which this torch build lacks")
        return flash_attention.flash_attention
    return flash_attention.blockwise_attention  # emulate: the kernel's algorithm in torch


def _encoder_parts(model):
    return (model.image_tokenizer.model, model.backbone)


def apply_encoder_kernels(model, kernels: EncoderKernels, device, emulate: bool = False):
    """Switch `model` (a float32 TripoSR on `device`) to `kernels`; the plain kernels first.

    Refuses anything but CUDA unless `emulate` (tests): elsewhere the options would only
    be slower, and the CPU's results must stay those of the plain model.
    """
    remove_encoder_kernels(model)
    if not (kernels.linear or kernels.attention or kernels.graph):
        return model
    if torch.device(device).type != "cuda" and not emulate:
        raise ValueError(f"encoder kernels {kernels} run on CUDA only, not on {torch.device(device).type}")
    if model.backbone.proj_in.weight.dtype != torch.float32:
        raise ValueError("encoder kernels are for the float32 encoder (not --precision bfloat16)")
    if kernels.graph and torch.device(device).type != "cuda":
        raise ValueError("graph=True needs CUDA")
    for part in _encoder_parts(model):
        for parent in part.modules():
            for name, child in list(parent.named_children()):
                if kernels.linear and type(child) is nn.Linear:
                    setattr(parent, name, SplitLinear(child, kernels.linear))
            if kernels.attention and hasattr(parent, "attend"):
                parent.attend = _attention(kernels.attention, device)
    if kernels.graph:
        model.encoder_runner = GraphedEncoder(model)
    model.encoder_kernels = kernels
    return model


def remove_encoder_kernels(model):
    """Back to the plain float32 modules and attention."""
    for part in _encoder_parts(model):
        for parent in part.modules():
            for name, child in list(parent.named_children()):
                if isinstance(child, SplitLinear):
                    setattr(parent, name, child.original[0])
            if hasattr(parent, "attend"):
                parent.attend = F.scaled_dot_product_attention
    model.encoder_runner = None
    model.encoder_kernels = EncoderKernels()
    return model


class GraphedEncoder:
    """model.encode_resized replayed from CUDA graphs, one per input shape.

    The first call with a shape runs the encoder twice on a side stream (warm-up: kernels
    chosen, memory allocated), then captures it; every later call copies its pixels into
    the captured input and replays. The output is cloned, so a caller may keep it while
    the next replay runs. Capture happens under a lock and in thread-local mode, so
    another thread's CUDA work does not break it.
    """

    def __init__(self, model):
        self.model = model
        self.graphs = {}
        self._lock = threading.Lock()

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        with self._lock:
            key = (tuple(pixels.shape), pixels.dtype, pixels.device)
            if key not in self.graphs:
                self.graphs[key] = self._capture(pixels)
            graph, static_in, static_out = self.graphs[key]
            static_in.copy_(pixels)
            graph.replay()
            return static_out.clone()

    def _capture(self, pixels):
        static_in = pixels.clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream), torch.no_grad():
            for _ in range(2):
                self.model.encode_plain(static_in)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.no_grad(), torch.cuda.graph(graph, capture_error_mode="thread_local"):
            static_out = self.model.encode_plain(static_in)
        return graph, static_in, static_out
