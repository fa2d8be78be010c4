"""The 2-D side: the pyramid feature network, its fused 56-channel maps and the
compression to 16 channels (SPEC 4.1-4.3).

The reference never switches to evaluation mode, so every normalisation here uses the
statistics of the current batch (all 32 views together), never the running ones; those
are kept only so that the checkpoint's keys match. InPlaceABN scales by |weight| + eps.
"""

import torch
import torch.nn.functional as F
from torch import nn

EPS = 1e-5
LEAKY_SLOPE = 0.01


def batch_statistics(x: torch.Tensor, dims) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and biased variance, accumulated in float64 (the reference's CPU
    kernels accumulate in double too)."""
    x64 = x.double()
    mean = x64.mean(dim=dims, keepdim=True)
    var = (x64 - mean).square().mean(dim=dims, keepdim=True)
    return mean, var


class NormStatistics(nn.Module):
    """The state of a batch norm as the checkpoint holds it (running statistics unused)."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        self.register_buffer("num_batches_tracked", torch.zeros((), dtype=torch.long))

    def normalise(self, x: torch.Tensor, mean, var, scale: torch.Tensor) -> torch.Tensor:
        shape = mean.shape
        factor = (scale.double().reshape(shape) / torch.sqrt(var + EPS)).to(x.dtype)
        return (x - mean.to(x.dtype)) * factor + self.bias.reshape(shape)


class InPlaceABN(NormStatistics):
    """inplace_abn's InPlaceABN in training mode: batch norm with |weight| + eps, then
    leaky ReLU (slope 0.01), over (N, H, W)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean, var = batch_statistics(x, (0, 2, 3))
        y = self.normalise(x, mean, var, self.weight.abs() + EPS)
        return F.leaky_relu(y, LEAKY_SLOPE)


class ConvBnReLU(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int = 3, stride: int = 1, pad: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=pad, bias=False)
        self.bn = InPlaceABN(c_out)

    def forward(self, x):
        return self.bn(self.conv(x))


def _upsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=True)


class FeatureNet(nn.Module):
    """Three-level feature pyramid (8, 16, 32 channels at 1, 1/2, 1/4 resolution)."""

    def __init__(self):
        super().__init__()
        self.conv0 = nn.Sequential(ConvBnReLU(3, 8), ConvBnReLU(8, 8))
        self.conv1 = nn.Sequential(ConvBnReLU(8, 16, 5, 2, 2), ConvBnReLU(16, 16), ConvBnReLU(16, 16))
        self.conv2 = nn.Sequential(ConvBnReLU(16, 32, 5, 2, 2), ConvBnReLU(32, 32), ConvBnReLU(32, 32))
        self.toplayer = nn.Conv2d(32, 32, 1)
        self.lat1 = nn.Conv2d(16, 32, 1)
        self.lat0 = nn.Conv2d(8, 32, 1)
        self.smooth1 = nn.Conv2d(32, 16, 3, padding=1)
        self.smooth0 = nn.Conv2d(32, 8, 3, padding=1)

    def forward(self, images: torch.Tensor, between=None) -> list[torch.Tensor]:
        """images (V, 3, H, W) in [0, 1], all views in one batch -> [feat2, feat1, feat0].
        between(), when given, is called after each convolution block (cancel checks)."""
        between = between or (lambda: None)
        conv0 = self.conv0(images)
        between()
        conv1 = self.conv1(conv0)
        between()
        conv2 = self.conv2(conv1)
        between()
        feat2 = self.toplayer(conv2)
        feat1 = _upsample(feat2, 2) + self.lat1(conv1)
        del conv1, conv2
        feat0 = _upsample(feat1, 2) + self.lat0(conv0)
        del conv0
        return [feat2, self.smooth1(feat1), self.smooth0(feat0)]


def fuse_pyramid(pyramid: list[torch.Tensor]) -> torch.Tensor:
    """[feat2, feat1, feat0] -> (V, 32 + 16 + 8, H, W), the coarse maps upsampled."""
    feat2, feat1, feat0 = pyramid
    return torch.cat([_upsample(feat2, 4), _upsample(feat1, 2), feat0], dim=1)
