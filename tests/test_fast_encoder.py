"""The encoder kernels (backend/triposr/fast_encoder.py, flash_attention.py), checked on
the CPU: the flash kernel's algorithm in torch with its tf32x3 products emulated, the
Triton kernel itself in Triton's interpreter where Triton is installed, the CUDA default
and its fallback with the device and the kernel stood in for. On the GPU,
bench/gpu_asset_suite.py measures the options against the reference numbers; and
bench/tensor_core_accumulation.py's model of the tensor cores' sums, which says why the
removed split products missed the tolerance there, is checked at the end."""

import importlib.util
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from backend.triposr import fast_encoder, flash_attention
from backend.triposr.checkpoint import load_tripo
from backend.triposr.fast_encoder import (
    ENVIRONMENT,
    EncoderKernels,
    GuardedAttention,
    apply_encoder_kernels,
    environment_kernels,
    flash_by_default,
    remove_encoder_kernels,
)
from backend.triposr.flash_attention import (
    blockwise_attention,
    round_to_tf32,
    split_tf32,
    tf32x3_matmul,
    truncate_to_tf32,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
FIELD_TOL = 1e-4  # tests/test_equivalence.py's tolerance on scene codes
LOW_BITS = (1 << 13) - 1


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


def test_tf32x3_products_of_a_block_are_as_exact_as_float32_and_plain_tf32_is_not():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(64, 64, generator=g) * torch.logspace(-3, 3, 64)[:, None]  # a block of queries or weights
    b = torch.randn(64, 48, generator=g) * torch.logspace(-2, 2, 48)[None, :]
    float32 = relative_error(a @ b, a, b)
    assert relative_error(truncate_to_tf32(a) @ truncate_to_tf32(b), a, b) > 100 * float32
    assert relative_error(tf32x3_matmul(a, b), a, b) < 4 * float32


def test_blockwise_attention_is_the_kernels_algorithm_and_as_exact_as_float32():
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
        "from backend.triposr.fast_encoder import GuardedAttention\n"
        "attend = GuardedAttention(flash_attention, accepts=lambda *t: True)\n"  # the CPU tensors as if on CUDA
        "assert torch.equal(attend(q, k, v), out) and attend.checked and attend.failure is None\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TRITON_INTERPRET": "1"}, cwd=str(REPO_ROOT))
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_tripo(tiny_model_dir)


def reference_pixels(tiny_model_dir):
    return torch.from_numpy(np.load(tiny_model_dir / "reference.npz")["pre"]).float().div(255).unsqueeze(0)


def test_tiny_model_with_flash_attention_meets_the_equivalence_tolerance(tiny, tiny_model_dir):
    reference = np.load(tiny_model_dir / "reference.npz")
    try:
        apply_encoder_kernels(tiny, EncoderKernels.parse("attention=flash"), "cpu", emulate=True)
        assert any(getattr(m, "attend", None) is blockwise_attention for m in tiny.modules())
        codes = tiny.encode(reference_pixels(tiny_model_dir))
    finally:
        remove_encoder_kernels(tiny)
    np.testing.assert_allclose(codes.numpy(), reference["codes"], rtol=FIELD_TOL, atol=FIELD_TOL)


def test_removing_the_kernels_gives_the_plain_model_bit_for_bit(tiny, tiny_model_dir):
    pixels = reference_pixels(tiny_model_dir)
    plain = tiny.encode(pixels)
    keys = set(tiny.state_dict())
    apply_encoder_kernels(tiny, EncoderKernels(attention="flash"), "cpu", emulate=True)
    assert set(tiny.state_dict()) == keys  # the checkpoint's names, unchanged
    remove_encoder_kernels(tiny)
    assert all(m.attend is F.scaled_dot_product_attention for m in tiny.modules() if hasattr(m, "attend"))
    assert torch.equal(tiny.encode(pixels), plain)


def test_kernels_are_refused_off_cuda_and_for_bfloat16(tiny_model_dir):
    model = load_tripo(tiny_model_dir)
    with pytest.raises(ValueError, match="CUDA only"):
        apply_encoder_kernels(model, EncoderKernels(attention="flash"), "cpu")
    with pytest.raises(ValueError, match="graph"):
        apply_encoder_kernels(model, EncoderKernels(graph=True), "cpu", emulate=True)
    model.set_encoder_precision(torch.bfloat16)
    with pytest.raises(ValueError, match="float32 encoder"):
        apply_encoder_kernels(model, EncoderKernels(attention="flash"), "cuda")
    apply_encoder_kernels(model, EncoderKernels(), "cpu")  # nothing asked: nothing to refuse


def test_kernel_options_parse_and_print():
    kernels = EncoderKernels.parse("graph, attention=flash")
    assert kernels == EncoderKernels(attention="flash", graph=True)
    assert EncoderKernels.parse(str(kernels)) == kernels
    for nothing in (None, "", "standard"):
        assert EncoderKernels.parse(nothing) == EncoderKernels()
    assert str(EncoderKernels()) == "standard"
    for removed in ("linear=tf32x3", "linear=bf16x6", "attention=tf32x3", "attention=bf16x6"):
        with pytest.raises(ValueError, match="was removed.*bench/RESULTS.md"):
            EncoderKernels.parse(f"{removed},graph")
    for bad in ("linear=fp8", "attention", "graph=yes", "fast"):
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


@pytest.fixture
def fake_gpu(monkeypatch):
    """A CUDA device of a chosen compute capability, and Triton there or not."""
    state = {"capability": (9, 0)}
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: state["capability"])
    monkeypatch.setattr(flash_attention, "triton", object())
    return state


@pytest.mark.parametrize("capability, default", [((8, 0), True), ((9, 0), True), ((10, 0), True), ((7, 5), False),
                                                 ((8, 6), False), ((8, 9), False), ((12, 0), False)])
def test_flash_is_the_default_on_data_centre_gpus_with_triton(fake_gpu, capability, default):
    fake_gpu["capability"] = capability
    assert flash_by_default(torch.device("cuda")) is default
    assert flash_by_default(torch.device("cpu")) is False


def test_no_triton_no_flash_by_default(fake_gpu, monkeypatch):
    monkeypatch.setattr(flash_attention, "triton", None)
    assert flash_by_default("cuda") is False


def test_the_environment_chooses_on_cuda_in_float32_only(fake_gpu, monkeypatch):
    monkeypatch.delenv(ENVIRONMENT, raising=False)
    cuda = torch.device("cuda")
    assert environment_kernels(cuda, "float32") == EncoderKernels(attention="flash")  # the default
    fake_gpu["capability"] = (8, 6)
    assert environment_kernels(cuda, "float32") is None
    monkeypatch.setenv(ENVIRONMENT, "attention=flash, graph")
    assert environment_kernels(cuda, "float32") == EncoderKernels(attention="flash", graph=True)
    monkeypatch.setenv(ENVIRONMENT, "standard")
    fake_gpu["capability"] = (9, 0)
    assert environment_kernels(cuda, "float32") == EncoderKernels()  # the opt-out: plain kernels
    assert environment_kernels(torch.device("cpu"), "float32") is None  # the CPU keeps its exact kernels
    assert environment_kernels(cuda, "bfloat16") is None
    monkeypatch.setenv(ENVIRONMENT, "linear=bf16x6")
    with pytest.raises(ValueError, match=ENVIRONMENT):
        environment_kernels(cuda, "float32")


def test_a_cpu_model_loads_plain_whatever_the_environment_says(tiny_model_dir, monkeypatch):
    from backend.pipeline import load_model

    monkeypatch.setenv(ENVIRONMENT, "attention=flash")
    loaded = load_model(tiny_model_dir, "cpu")
    assert all(m.attend is F.scaled_dot_product_attention for m in loaded.model.modules() if hasattr(m, "attend"))


def attention_inputs():
    g = torch.Generator().manual_seed(4)
    return [torch.randn(1, 2, 40, 16, generator=g) for _ in range(3)]


def guarded(kernel):
    return GuardedAttention(kernel, accepts=lambda *tensors: True)


def test_a_working_kernel_is_checked_once_then_trusted():
    q, k, v = attention_inputs()
    calls = []

    def kernel(*t):
        calls.append(1)
        return blockwise_attention(*t)

    attend = guarded(kernel)
    for _ in range(3):
        out = attend(q, k, v)
    assert len(calls) == 3 and attend.checked and attend.failure is None
    assert torch.equal(out, blockwise_attention(q, k, v))


@pytest.mark.parametrize("failure", ["raises", "wrong", "nan"])
def test_a_failing_kernel_falls_back_to_the_standard_attention_for_good(failure, caplog):
    q, k, v = attention_inputs()
    calls = []

    def kernel(*t):
        calls.append(1)
        if failure == "raises":
            raise RuntimeError("PassManager::run failed")  # what a Triton build failure looks like
        return blockwise_attention(*t) + (1e-2 if failure == "wrong" else float("nan"))

    attend = guarded(kernel)
    with caplog.at_level(logging.WARNING, logger=fast_encoder.__name__):
        first, second = attend(q, k, v), attend(q, k, v)
    expected = F.scaled_dot_product_attention(q, k, v)
    assert torch.equal(first, expected) and torch.equal(second, expected)
    assert len(calls) == 1 and attend.failure  # not tried again
    assert sum("standard attention kernel runs instead" in r.message for r in caplog.records) == 1


def test_tensors_the_kernel_does_not_take_go_to_the_standard_attention():
    q, k, v = attention_inputs()  # on the CPU: flash_attention.accepts says no
    attend = GuardedAttention(lambda *t: pytest.fail("the kernel was called"))
    assert torch.equal(attend(q, k, v), F.scaled_dot_product_attention(q, k, v))
    assert attend.failure is None
    assert not flash_attention.accepts(q, k, v)


def load_accumulation_model():
    spec = importlib.util.spec_from_file_location("tensor_core_accumulation",
                                                  REPO_ROOT / "bench" / "tensor_core_accumulation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_tensor_core_model_truncates_where_float32_rounds():
    model = load_accumulation_model()
    a = np.array([[1.0, 2.0**-24 + 2.0**-25]])  # 1 + 0.75 of float32's unit at 1
    b = np.ones((2, 1))
    assert model.cuda_core_product(a.astype(np.float32), b.astype(np.float32))[0, 0] == 1 + 2.0**-23  # to nearest
    assert model.tensor_core_product(a, b, group=8)[0, 0] == 1.0  # toward zero
    tiny = np.array([[1.0, 2.0**-28]])
    assert model.tensor_core_product(tiny, b, group=8)[0, 0] == 1.0  # below the 2 extra bits: cut at alignment


def test_one_deep_split_product_loses_float32s_accuracy_to_the_tensor_cores_sums_and_tiles_keep_it():
    """What bench/RESULTS.md says sank linear=tf32x3 and bf16x6 on the H200."""
    errors = load_accumulation_model().measure(rows=8, cols=16, depth=1024)

    def median(start):
        (found,) = [e["median"] for name, e in errors.items() if name.startswith(start)]
        return found

    float32 = median("float32 on the CUDA cores")
    assert median("tf32x3 as one product, float32 sums") < float32  # had the sums been rounded to nearest: held
    assert median("tf32x3 as one product, tensor-core sums") > 8 * float32
    assert median("bf16x6 as one product, tensor-core sums") > 8 * float32
    assert median("tf32x3 in tiles") < 3 * float32
