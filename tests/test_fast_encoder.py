"""The split-precision encoder kernels (backend/triposr/split_products.py, fast_encoder.py),
checked on the CPU: the tensor cores' TF32 and bfloat16 arithmetic is emulated exactly
(operands rounded, products in float32), so the error analysis is tested without a GPU.
On the GPU, bench/gpu_asset_suite.py measures the same options against the float32
scene codes and the equivalence tolerance."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from backend.triposr.checkpoint import load_tripo
from backend.triposr.fast_encoder import (
    ENVIRONMENT,
    EncoderKernels,
    SplitLinear,
    apply_encoder_kernels,
    environment_kernels,
    remove_encoder_kernels,
    split_attention,
)
from backend.triposr.split_products import (
    left_operand,
    right_operand,
    round_to_tf32,
    split_bf16,
    split_matmul,
    split_tf32,
    truncate_to_tf32,
)

FIELD_TOL = 1e-4  # tests/test_equivalence.py's tolerance on scene codes
LOW_BITS = (1 << 13) - 1


def operands(seed=0, n=64, k=1024, o=48):
    """Rows and columns of mixed magnitudes (1e-3 .. 1e3), as activations have."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, k, generator=g) * torch.logspace(-3, 3, n)[:, None]
    b = torch.randn(k, o, generator=g) * torch.logspace(-2, 2, o)[None, :]
    return a, b


def relative_error(c, a, b):
    """Largest |c - exact| over |a| |b| (the scale a float32 sum of products is exact to)."""
    exact = a.double() @ b.double()
    return float(((c.double() - exact).abs() / (a.double().abs() @ b.double().abs())).max())


def test_tf32_rounding_keeps_ten_bits_and_splits_exactly():
    x = torch.randn(100_000) * torch.logspace(-20, 20, 100_000)
    hi, lo = split_tf32(x)
    assert int((hi.view(torch.int32) & LOW_BITS).count_nonzero()) == 0  # a TF32 unit reads hi exactly
    assert torch.equal(hi + lo, x)  # the split loses nothing
    assert float(((x - hi).abs() / x.abs()).max()) <= 2.0**-11  # round to nearest: half a TF32 unit
    assert float(((x - truncate_to_tf32(x)).abs() / x.abs()).max()) < 2.0**-10
    assert torch.equal(round_to_tf32(hi), hi)


def test_bfloat16_pieces_add_up_to_the_float32_value():
    x = torch.randn(100_000) * torch.logspace(-20, 20, 100_000)
    x0, x1, x2 = split_bf16(x)
    assert x0.dtype == x1.dtype == x2.dtype == torch.bfloat16
    assert torch.equal(x0.double() + x1.double() + x2.double(), x.double())


def test_split_products_are_as_exact_as_float32_and_plain_tf32_is_not():
    a, b = operands()
    float32 = relative_error(a @ b, a, b)
    plain_tf32 = relative_error(truncate_to_tf32(a) @ truncate_to_tf32(b), a, b)
    assert float32 < 1e-5 and plain_tf32 > 100 * float32  # what issue 23 measured: TF32 alone moves results
    for mode in ("tf32x3", "bf16x6"):
        split = split_matmul(left_operand(a, mode), right_operand(b.T, mode).T, mode)
        assert split.dtype == torch.float32
        assert relative_error(split, a, b) < 4 * float32, mode


def test_split_linear_matches_the_linear_and_keeps_its_parameters():
    torch.manual_seed(0)
    linear = torch.nn.Linear(256, 96)
    x = torch.randn(3, 50, 256)
    for mode in ("tf32x3", "bf16x6"):
        split = SplitLinear(linear, mode)
        assert split.weight is linear.weight and split.bias is linear.bias
        assert set(split.state_dict()) == {"weight", "bias"}
        assert torch.allclose(split(x), linear(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["tf32x3", "bf16x6"])
def test_split_attention_matches_scaled_dot_product_attention(mode):
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 4, n, 64, generator=g) for n in (70, 90, 90))
    expected = F.scaled_dot_product_attention(q, k, v)
    got = split_attention(mode, block=32)(q, k, v)  # blocks that do not divide the 70 queries
    assert float((got - expected).abs().max()) < 1e-5


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_tripo(tiny_model_dir)


@pytest.mark.parametrize("spec", ["linear=tf32x3,attention=tf32x3", "linear=bf16x6,attention=bf16x6",
                                  "linear=bf16x6,attention=flash"])
def test_tiny_model_with_split_kernels_meets_the_equivalence_tolerance(tiny, tiny_model_dir, spec):
    reference = np.load(tiny_model_dir / "reference.npz")
    pixels = torch.from_numpy(reference["pre"]).float().div(255).unsqueeze(0)
    try:
        apply_encoder_kernels(tiny, EncoderKernels.parse(spec), "cpu", emulate=True)
        assert any(isinstance(m, SplitLinear) for m in tiny.backbone.modules())
        codes = tiny.encode(pixels)
    finally:
        remove_encoder_kernels(tiny)
    np.testing.assert_allclose(codes.numpy(), reference["codes"], rtol=FIELD_TOL, atol=FIELD_TOL)


def test_removing_the_kernels_gives_the_plain_model_bit_for_bit(tiny, tiny_model_dir):
    pixels = torch.from_numpy(np.load(tiny_model_dir / "reference.npz")["pre"]).float().div(255).unsqueeze(0)
    plain = tiny.encode(pixels)
    keys = set(tiny.state_dict())
    apply_encoder_kernels(tiny, EncoderKernels(linear="bf16x6", attention="tf32x3"), "cpu", emulate=True)
    assert set(tiny.state_dict()) == keys  # the checkpoint's names, unchanged
    remove_encoder_kernels(tiny)
    assert not any(isinstance(m, SplitLinear) for m in tiny.modules())
    assert torch.equal(tiny.encode(pixels), plain)


def test_kernels_are_refused_off_cuda_and_for_bfloat16(tiny_model_dir):
    model = load_tripo(tiny_model_dir)
    with pytest.raises(ValueError, match="CUDA only"):
        apply_encoder_kernels(model, EncoderKernels(linear="tf32x3"), "cpu")
    with pytest.raises(ValueError, match="graph"):
        apply_encoder_kernels(model, EncoderKernels(graph=True), "cpu", emulate=True)
    model.set_encoder_precision(torch.bfloat16)
    with pytest.raises(ValueError, match="float32 encoder"):
        apply_encoder_kernels(model, EncoderKernels(linear="tf32x3"), "cuda")
    apply_encoder_kernels(model, EncoderKernels(), "cpu")  # nothing asked: nothing to refuse


def test_kernel_options_parse_and_print():
    kernels = EncoderKernels.parse("graph, linear=bf16x6,attention=tf32x3")
    assert kernels == EncoderKernels(linear="bf16x6", attention="tf32x3", graph=True)
    assert EncoderKernels.parse(str(kernels)) == kernels
    assert EncoderKernels.parse(None) == EncoderKernels() and str(EncoderKernels()) == "standard"
    assert EncoderKernels.parse("attention=flash").attention == "flash"
    for bad in ("linear=fp8", "linear=flash", "attention", "graph=yes", "fast"):
        with pytest.raises(ValueError, match="unknown encoder kernel option"):
            EncoderKernels.parse(bad)


def test_a_runner_replaces_the_modules_in_encode(tiny):
    pixels = torch.rand(1, 3, tiny.image_tokenizer.cond_image_size, tiny.image_tokenizer.cond_image_size)
    calls = []
    tiny.encoder_runner = lambda p: calls.append(p) or tiny.encode_plain(p)
    try:
        codes = tiny.encode_resized(pixels)
    finally:
        tiny.encoder_runner = None
    assert len(calls) == 1 and torch.equal(codes, tiny.encode_resized(pixels))


def test_blockwise_attention_is_the_kernels_algorithm_and_as_exact_as_float32():
    from backend.triposr.flash_attention import blockwise_attention

    g = torch.Generator().manual_seed(2)
    q = torch.randn(2, 70, 3, 64, generator=g).transpose(1, 2)  # the layout the model passes
    k, v = (torch.randn(2, 130, 3, 64, generator=g).transpose(1, 2) for _ in range(2))
    exact = F.scaled_dot_product_attention(q.double(), k.double(), v.double())
    float32 = float((F.scaled_dot_product_attention(q, k, v) - exact).abs().max())
    got = blockwise_attention(q, k, v, block=64)  # 130 keys: a last block of 2
    assert float((got - exact).abs().max()) < 4 * float32 + 1e-6


def test_the_triton_kernel_in_the_interpreter():
    """Triton's CPU interpreter runs the kernel where Triton is installed (CUDA builds
    of torch bring it; CI's CPU build does not: then skipped)."""
    pytest.importorskip("triton")
    script = (
        "import torch, torch.nn.functional as F\n"
        "from backend.triposr.flash_attention import flash_attention\n"
        "g = torch.Generator().manual_seed(3)\n"
        "q = torch.randn(2, 70, 3, 64, generator=g).transpose(1, 2)\n"
        "k, v = (torch.randn(2, 130, 3, 64, generator=g).transpose(1, 2) for _ in range(2))\n"
        "out = flash_attention(q, k, v)\n"
        "err = float((out - F.scaled_dot_product_attention(q, k, v)).abs().max())\n"
        "assert err < 1e-5 and out.transpose(1, 2).is_contiguous(), err\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TRITON_INTERPRET": "1"}, cwd=str(Path(__file__).resolve().parents[1]))
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_environment_asks_for_kernels_on_cuda_in_float32_only(monkeypatch):
    monkeypatch.setenv(ENVIRONMENT, "linear=bf16x6, graph")
    assert environment_kernels(torch.device("cuda"), "float32") == EncoderKernels(linear="bf16x6", graph=True)
    assert environment_kernels(torch.device("cpu"), "float32") is None  # the CPU keeps its exact kernels
    assert environment_kernels(torch.device("cuda"), "bfloat16") is None
    monkeypatch.setenv(ENVIRONMENT, "linear=fp8")
    with pytest.raises(ValueError, match=ENVIRONMENT):
        environment_kernels(torch.device("cuda"), "float32")
    monkeypatch.delenv(ENVIRONMENT)
    assert environment_kernels(torch.device("cuda"), "float32") is None


def test_a_cpu_model_loads_plain_whatever_the_environment_says(tiny_model_dir, monkeypatch):
    from backend.pipeline import load_model

    monkeypatch.setenv(ENVIRONMENT, "linear=bf16x6")
    loaded = load_model(tiny_model_dir, "cpu")
    assert not any(isinstance(m, SplitLinear) for m in loaded.model.modules())
