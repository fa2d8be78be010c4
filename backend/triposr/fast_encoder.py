"""Faster float32 encoder kernels for CUDA: fused float32 attention (a Triton kernel)
and the encoder replayed as one CUDA graph. Both keep the scene codes within the
equivalence tolerance (measured on an H200, bench/RESULTS.md, issue 23).

- attention="flash": softmax(q k^T / sqrt(d)) v in one pass per block of queries
  (flash_attention.py), both products tf32x3 on the tensor cores: encoder 86.2 -> 80.7
  ms, codes within 4.1e-5 of the standard kernels'. **The default for a float32 model
  on a data-centre GPU** (compute capability 8.0, 9.x or 10.x: A100, H100/H200, B200,
  where TF32 runs 7-8x float32's rate; on the others TF32 runs at about float32's rate
  and the kernel would not pay) when Triton imports. The first call checks the kernel
  against the standard attention, and any failure (no Triton compiler, a GPU it
  cannot build for, a result off by more than 1e-4) logs a warning and hands every later
  call to the standard kernel: the job never fails for it.
- graph=True: the whole encoder (resize excepted) captured once as a CUDA graph per
  input shape and replayed (85.1 against 86.2 ms: opt-in).

$IMAGE_TO_3D_ENCODER_KERNELS chooses for the worker, the CLI and a server's replicas:
"attention=flash", "graph", both ("attention=flash,graph"), or "standard" (the plain
kernels, the default's opt-out). They apply on CUDA only: on any other device
`apply_encoder_kernels` refuses (the CPU's results stay bit for bit those of the plain
model); `emulate=True` runs the flash algorithm in torch anywhere, for the tests.

Removed after the H200 run: every Linear, or the attention, as ONE split product
through cuBLAS (linear|attention = tf32x3|bf16x6). They were 1.17-1.36x faster but
moved the codes by 1.1-1.3e-3 (the bar is 1e-4): the tensor cores add each group of 8
(TF32) or 16 (bfloat16) products to the accumulator aligned to the largest term and
truncated, so a product whose sum runs over 3K or 6K terms gathers 25-50x float32's
rounding error, whatever the pieces' precision (bench/tensor_core_accumulation.py).
"""

import logging
import os
import threading
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import flash_attention

log = logging.getLogger(__name__)

ENVIRONMENT = "IMAGE_TO_3D_ENCODER_KERNELS"  # e.g. "attention=flash,graph", or "standard"
REMOVED = ("linear=tf32x3", "linear=bf16x6", "attention=tf32x3", "attention=bf16x6")
CHECK_TOLERANCE = 1e-4  # the flash kernel's first result against the standard attention, relative to its largest value


@dataclass(frozen=True)
class EncoderKernels:
    attention: str | None = None
    graph: bool = False

    @classmethod
    def parse(cls, text: str | None) -> "EncoderKernels":
        """"attention=flash,graph" (either, any order); "", None or "standard": neither."""
        fields = {}
        for part in filter(None, (p.strip() for p in (text or "").split(","))):
            if part == "standard":
                continue
            if part == "graph":
                fields["graph"] = True
            elif part == "attention=flash":
                fields["attention"] = "flash"
            elif part in REMOVED:
                raise ValueError(f"encoder kernel option {part!r} was removed: it moved the scene codes by over 1e-3 "
                                 "on an H200 (bench/RESULTS.md); use attention=flash and/or graph")
            else:
                raise ValueError(f"unknown encoder kernel option {part!r}: use attention=flash, graph or standard, "
                                 "separated by commas")
        return cls(**fields)

    def __str__(self) -> str:
        return ",".join([f"attention={self.attention}"] * bool(self.attention) + ["graph"] * self.graph) or "standard"


def flash_by_default(device) -> bool:
    """Whether a float32 model on `device` gets attention=flash without being asked:
    CUDA, Triton importable, and a data-centre GPU (module docstring)."""
    device = torch.device(device)
    if device.type != "cuda" or not flash_attention.available():
        return False
    major, minor = torch.cuda.get_device_capability(device)
    return (major, minor) == (8, 0) or major in (9, 10)


def environment_kernels(device, precision: str) -> EncoderKernels | None:
    """The kernels a model loaded on `device` in `precision` gets: for float32 on CUDA,
    what $IMAGE_TO_3D_ENCODER_KERNELS says when set, else attention=flash where
    `flash_by_default`; None elsewhere (the CPU and bfloat16 keep the plain kernels).
    The worker and a server's replicas load models through the family's engine, so the
    environment is how they choose without a job option. A value that does not parse
    raises ValueError naming it."""
    if torch.device(device).type != "cuda" or precision != "float32":
        return None
    text = os.environ.get(ENVIRONMENT, "").strip()
    if not text:
        return EncoderKernels(attention="flash") if flash_by_default(device) else None
    try:
        return EncoderKernels.parse(text)
    except ValueError as exc:
        raise ValueError(f"${ENVIRONMENT}: {exc}") from None


class GuardedAttention:
    """attend(q, k, v) with `kernel` where it takes the tensors, `fallback` elsewhere;
    the first kernel result is checked against the fallback's, and after any failure
    (an exception, or a result off by more than CHECK_TOLERANCE) a warning is logged
    and only the fallback runs, for every module that shares this object."""

    def __init__(self, kernel, fallback=F.scaled_dot_product_attention, accepts=flash_attention.accepts):
        self.kernel, self.fallback, self.accepts = kernel, fallback, accepts
        self.failure: str | None = None
        self.checked = False

    def __call__(self, q, k, v):
        if self.failure is None and self.accepts(q, k, v):
            try:
                out = self.kernel(q, k, v)
                if not self.checked:
                    self._check(out, self.fallback(q, k, v))
                return out
            except Exception as exc:  # noqa: BLE001 (any Triton failure: the standard kernel instead)
                self.failure = f"{type(exc).__name__}: {exc}"
                log.warning("flash attention failed (%s); the standard attention kernel runs instead", self.failure)
        return self.fallback(q, k, v)

    def _check(self, out, expected):
        error = float((out - expected).abs().max())
        scale = max(float(expected.abs().max()), 1.0)
        if not error <= CHECK_TOLERANCE * scale:  # also catches NaN
            raise ArithmeticError(f"its result is {error:.2e} off the standard kernel's")
        self.checked = True


def _attention(device):
    if torch.device(device).type != "cuda":
        return flash_attention.blockwise_attention  # emulate: the kernel's algorithm in torch
    if not flash_attention.available():
        raise ValueError("attention=flash needs Triton, which this torch build lacks")
    return GuardedAttention(flash_attention.flash_attention)


def _encoder_parts(model):
    return (model.image_tokenizer.model, model.backbone)


def apply_encoder_kernels(model, kernels: EncoderKernels, device, emulate: bool = False):
    """Switch `model` (a float32 TripoSR on `device`) to `kernels`; the plain kernels first.

    Refuses anything but CUDA unless `emulate` (tests): elsewhere the options would only
    be slower, and the CPU's results must stay those of the plain model.
    """
    remove_encoder_kernels(model)
    if not (kernels.attention or kernels.graph):
        return model
    if torch.device(device).type != "cuda" and not emulate:
        raise ValueError(f"encoder kernels {kernels} run on CUDA only, not on {torch.device(device).type}")
    if model.backbone.proj_in.weight.dtype != torch.float32:
        raise ValueError("encoder kernels are for the float32 encoder (not --precision bfloat16)")
    if kernels.graph and torch.device(device).type != "cuda":
        raise ValueError("graph=True needs CUDA")
    if kernels.attention:
        attend = _attention(device)  # one guard for the whole model: one failure, one warning
        for part in _encoder_parts(model):
            for module in part.modules():
                if hasattr(module, "attend"):
                    module.attend = attend
    if kernels.graph:
        model.encoder_runner = GraphedEncoder(model)
    model.encoder_kernels = kernels
    return model


def remove_encoder_kernels(model):
    """Back to the plain float32 attention, no graph."""
    for part in _encoder_parts(model):
        for module in part.modules():
            if hasattr(module, "attend"):
                module.attend = F.scaled_dot_product_attention
    model.encoder_runner = None
    model.encoder_kernels = EncoderKernels()
    return model


class GraphedEncoder:
    """model.encode_resized replayed from CUDA graphs, one per input shape.

    The first call with a shape runs the encoder twice on a side stream (warm-up: kernels
    chosen and compiled, the flash kernel checked, memory allocated), then captures it;
    every later call copies its pixels into the captured input and replays. The output
    is cloned, so a caller may keep it while the next replay runs. Capture happens under
    a lock and in thread-local mode, so another thread's CUDA work does not break it.
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
