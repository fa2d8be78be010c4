"""The bfloat16 option: encoder in bfloat16, decoder and mesh in float32."""

import numpy as np
import pytest
import torch

from backend.errors import DeviceError
from backend.pipeline import generate_mesh, load_model
from backend.settings import GenerateSettings


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
