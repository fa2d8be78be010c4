"""Fill a texture's empty texels from the charts around them (push-pull), so no mip level
of the texture averages chart colours with background: no dark seams when zoomed out.

Push: halve the image again and again, averaging only texels that hold a value.
Pull: from the coarsest level back up, every empty texel takes the value of the level
above it. Charts keep their texels; every other texel gets a nearby chart's value,
and the whole image is filled, not only a few texels of gutter, so even the smallest
mip levels (where a chart is a texel or less) see plausible colours.
"""

import torch
import torch.nn.functional as F


def fill_empty(image: torch.Tensor, filled: torch.Tensor) -> torch.Tensor:
    """image (H, W, C) float, filled (H, W) bool -> image with every texel filled."""
    if bool(filled.all()) or not bool(filled.any()):
        return image
    height, width, _ = image.shape
    side = 1 << max(height - 1, width - 1).bit_length()  # pad to a power of two
    weight = torch.zeros((1, 1, side, side), dtype=image.dtype, device=image.device)
    weight[0, 0, :height, :width] = filled.to(image.dtype)
    value = torch.zeros((1, image.shape[2], side, side), dtype=image.dtype, device=image.device)
    value[0, :, :height, :width] = image.permute(2, 0, 1) * weight[0, 0, :height, :width]

    levels = [(value, weight)]
    while levels[-1][1].shape[-1] > 1:
        value, weight = levels[-1]
        levels.append((F.avg_pool2d(value, 2) * 4, F.avg_pool2d(weight, 2) * 4))  # sums
    result = levels[-1][0] / levels[-1][1].clamp(min=1e-12)
    for value, weight in reversed(levels[:-1]):
        coarse = F.interpolate(result, scale_factor=2, mode="nearest")
        result = torch.where(weight > 0, value / weight.clamp(min=1e-12), coarse)
    return result[0, :, :height, :width].permute(1, 2, 0)
