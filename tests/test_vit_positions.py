"""TripoSR's ViT resizes its position table for the input's size; without autograd the
resized table is kept for the next input of that size, and must equal a fresh resize and
follow any change of the weights."""

import torch

from backend.triposr.config import VitConfig
from backend.triposr.vit import Embeddings

CONFIG = VitConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16, patch_size=4,
                   image_size=16, num_channels=3, qkv_bias=True, layer_norm_eps=1e-12)  # a stored 4 x 4 grid


def embeddings() -> Embeddings:
    module = Embeddings(CONFIG)
    with torch.no_grad():
        module.position_embeddings.copy_(torch.randn(module.position_embeddings.shape,
                                                     generator=torch.Generator().manual_seed(0)))
    return module


def test_the_kept_table_is_a_fresh_resize_for_each_size():
    module = embeddings()
    with torch.no_grad():
        first = module.resized_positions(32, 32)
        assert module.resized_positions(32, 32) is first
        fresh = Embeddings._resize(module.position_embeddings, 8, 8)
        assert first.shape == (1, 1 + 8 * 8, 8) and torch.equal(first, fresh)
        other = module.resized_positions(24, 40)
        assert other.shape == (1, 1 + 6 * 10, 8)
        assert torch.equal(other, Embeddings._resize(module.position_embeddings, 6, 10))
        assert torch.equal(module.resized_positions(32, 32), fresh)  # back to the first size


def test_changed_weights_are_resized_again():
    module = embeddings()
    with torch.no_grad():
        before = module.resized_positions(32, 32).clone()
        module.position_embeddings.mul_(2)  # in place: the same storage, a new version
        assert torch.equal(module.resized_positions(32, 32), 2 * before)  # the resize is linear; x2 is exact
        module.load_state_dict({**module.state_dict(), "position_embeddings": module.position_embeddings / 4})
        assert torch.equal(module.resized_positions(32, 32), before / 2)
        module.to(torch.float64)  # a new tensor of another type
        assert module.resized_positions(32, 32).dtype == torch.float64


def test_with_autograd_the_table_is_resized_every_time_and_gets_gradients():
    module = embeddings()
    first = module.resized_positions(32, 32)
    assert module.resized_positions(32, 32) is not first
    first.sum().backward()
    assert module.position_embeddings.grad is not None and module.position_embeddings.grad.abs().sum() > 0
    with torch.inference_mode():
        kept = module.resized_positions(32, 32)
    with torch.no_grad():  # a table kept in inference mode serves a no-grad encode too
        assert torch.equal(module.resized_positions(32, 32) + 0, kept)
