"""The coarse stage's neural field: a trainable triplane and an MLP decoder.

From TripoSR's start the planes are TripoSR's scene codes for the picture, made a
parameter, and the decoder is TripoSR's NeRF MLP (backend/triposr/field.py does the
plane sampling and decoding). From an empty start, as the paper, the planes are small
noise, the decoder a fresh small MLP, and a Gaussian density blob at the centre (the
paper's --blob_density / --blob_radius, scaled to this frame) gives rays something to
find in the first iterations.
"""

from dataclasses import dataclass

import torch
from torch import nn

from ..triposr.field import Field

TRIPOSR_RADIUS = 0.87  # TripoSR's renderer.radius: the field lives in [-r, r]^3


@dataclass(frozen=True)
class FieldShape:
    """What backend.triposr.field.Field reads of a model's configuration."""

    radius: float
    density_bias: float


@dataclass
class TripoStart:
    """TripoSR's result for the picture: its field (decoder) and the picture's scene codes
    (3, C, H, W). backend.make_it_3d.job.encode_start makes one."""

    field: Field
    codes: torch.Tensor


class TriplaneField(nn.Module):
    def __init__(self, planes: torch.Tensor, decoder: nn.Module, radius: float, density_bias: float,
                 blob_density: float = 0.0, blob_radius: float = 0.35, train_decoder: bool = True):
        super().__init__()
        self.planes = nn.Parameter(planes.detach().clone().float())
        self.decoder = decoder
        for parameter in decoder.parameters():
            parameter.requires_grad_(train_decoder)
        self.field = Field(FieldShape(radius, density_bias), decoder)
        self.radius = radius
        self.blob_density = blob_density
        self.blob_radius = blob_radius

    def density_and_color(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """points (N, 3) in the model's frame -> (density (N,) >= 0, rgb (N, 3) in [0, 1])."""
        raw = self.field.raw(self.planes, points)
        logit = raw[:, 0] + self.field.density_bias
        if self.blob_density:
            logit = logit + self.blob_density * torch.exp(-(points**2).sum(1) / (2 * self.blob_radius**2))
        # clamped like the paper's trunc_exp: an exploding density would give NaN gradients
        return torch.exp(logit.clamp(max=15.0)), torch.sigmoid(raw[:, 1:4])

    def density(self, codes, points: torch.Tensor) -> torch.Tensor:
        """The point query backend.mesh.surface.dense_density_grid makes (codes unused:
        the planes are this field's own)."""
        return self.density_and_color(points)[0]

    def parameter_groups(self, planes_lr: float, decoder_lr: float) -> list[dict]:
        groups = [{"params": [self.planes], "lr": planes_lr}]
        trainable = [p for p in self.decoder.parameters() if p.requires_grad]
        if trainable:
            groups.append({"params": trainable, "lr": decoder_lr})
        return groups


def from_triposr(start: TripoStart, train_decoder: bool = False) -> TriplaneField:
    """The coarse field at TripoSR's result; its decoder is copied, so the loaded TripoSR
    model is never changed."""
    import copy

    codes = start.codes
    if codes.dim() == 5:  # a batch of one
        codes = codes[0]
    if codes.dim() != 4 or codes.shape[0] != 3:
        raise ValueError(f"TripoSR scene codes must be (3, C, H, W), got {tuple(start.codes.shape)}")
    decoder = copy.deepcopy(start.field.decoder).float().to(codes.device)
    return TriplaneField(codes, decoder, start.field.radius, start.field.density_bias, train_decoder=train_decoder)


def empty_field(generator: torch.Generator, device, channels: int = 16, resolution: int = 64,
                width: int = 64) -> TriplaneField:
    """The paper's starting point: nothing but a density blob (seeded small-noise planes
    and a fresh MLP)."""
    planes = 0.1 * torch.randn((3, channels, resolution, resolution), generator=generator)
    decoder = nn.Sequential(nn.Linear(3 * channels, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(),
                            nn.Linear(width, 4))
    with torch.no_grad():  # initialised from the job's generator, so the seed decides everything
        for layer in decoder:
            if isinstance(layer, nn.Linear):
                bound = layer.in_features**-0.5
                layer.weight.copy_((torch.rand(layer.weight.shape, generator=generator) * 2 - 1) * bound)
                layer.bias.zero_()
    # density exp(-2) far from the blob, exp(3) at its centre
    return TriplaneField(planes, decoder, TRIPOSR_RADIUS, -2.0, blob_density=5.0).to(device)
