"""The NeRF decoder and point queries of the triplane field (density and colour)."""

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig


class Decoder(nn.Module):
    """MLP: Linear+SiLU, (hidden-1) x [Linear+SiLU], Linear -> (raw density, raw rgb).

    Kept as one Sequential so the checkpoint's `decoder.layers.{0,2,...}` keys match.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        width = cfg.decoder_width
        layers = [nn.Linear(cfg.decoder_in_channels, width), nn.SiLU()]
        for _ in range(cfg.decoder_hidden_layers - 1):
            layers += [nn.Linear(width, width), nn.SiLU()]
        layers.append(nn.Linear(width, 4))
        self.layers = nn.Sequential(*layers)

    def forward(self, features):
        return self.layers(features)


class Field:
    """Samples the three planes at points and decodes density and colour.

    A plain object, not a module, so the decoder's weights appear once in state_dict.
    """

    def __init__(self, cfg: ModelConfig, decoder: Decoder):
        self.radius = cfg.radius
        self.density_bias = cfg.density_bias
        self.decoder = decoder

    def features(self, codes, points):
        """codes (3, C, H, W), points (N, 3) in [-radius, radius] -> features (N, 3C)."""
        p = points / self.radius
        # plane 0 sees (x, y), plane 1 (x, z), plane 2 (y, z); grid_sample's first
        # coordinate indexes the plane's width axis.
        uv = torch.stack((p[:, [0, 1]], p[:, [0, 2]], p[:, [1, 2]]))
        sampled = F.grid_sample(codes, uv.unsqueeze(1), mode="bilinear", padding_mode="zeros", align_corners=False)
        # (3, C, 1, N) -> (N, 3C), plane-major like the reference's concat
        return sampled.squeeze(2).permute(2, 0, 1).reshape(points.shape[0], -1)

    def raw(self, codes, points):
        return self.decoder(self.features(codes, points))

    def density(self, codes, points):
        return torch.exp(self.raw(codes, points)[:, 0] + self.density_bias)

    def density_and_color(self, codes, points):
        raw = self.raw(codes, points)
        return torch.exp(raw[:, 0] + self.density_bias), torch.sigmoid(raw[:, 1:4])
