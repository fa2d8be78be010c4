"""The bfloat16 option: encoder in bfloat16, decoder and mesh in float32."""

import numpy as np
import pytest
import torch

from backend.bridge.errors import DeviceError
from backend.bridge.settings import GenerateSettings
from backend.pipeline import generate_mesh, load_model


def test_bfloat16_encoder_keeps_a_float32_field(tiny_model_dir, flamingo_path):
    loaded = load_model(tiny_model_dir, "cpu", precision="bfloat16")
    assert loaded.model.backbone.proj_in.weight.dtype == torch.bfloat16
    assert loaded.model.decoder.layers[0].weight.dtype == torch.float32
    fast = generate_mesh(loaded, flamingo_path, GenerateSettings(resolution=32))
    exact = generate_mesh(load_model(tiny_model_dir, "cpu"), flamingo_path, GenerateSettings(resolution=32))
    assert fast.vertices.dtype == np.float32 and len(fast.faces) > 0
    # same object, not the same numbers: within 5 % in vertex count
    assert abs(len(fast.vertices) - len(exact.vertices)) < 0.05 * len(exact.vertices)


def test_unknown_precision_is_refused(tiny_model_dir):
    with pytest.raises(DeviceError, match="unknown precision"):
        load_model(tiny_model_dir, "cpu", precision="int4")


def test_worker_loads_the_precision_the_client_asks_for(tiny_model_dir, flamingo_path, tmp_path):
    import sys

    from backend.bridge.client import WorkerClient

    settings = GenerateSettings(resolution=32)
    expected = generate_mesh(load_model(tiny_model_dir, "cpu", precision="bfloat16"), flamingo_path, settings)
    with WorkerClient(sys.executable, str(tiny_model_dir), device="cpu", log_dir=str(tmp_path), precision="bfloat16") as client:
        result = client.run(settings, image_path=flamingo_path, timeout=120)
    np.testing.assert_array_equal(result.vertices, expected.vertices)
    np.testing.assert_array_equal(result.colors, expected.colors)
