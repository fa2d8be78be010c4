"""The sparse cost-regularisation network (torchsparse 1.4's SparseCostRegNet) as dense,
masked 3-D convolutions (SPEC section 5).

Why dense: in the demo volume 86 % of the 96^3 voxels are active (760,025) and the coarser
levels are as full, so a dense convolution does barely more arithmetic than a sparse one,
with no hashing or gathers, and runs on any torch device. Each level is a volume laid out
(C, X, Y, Z) with a boolean mask of its active sites; values off the mask are zero.

- submanifold (k3, s1): conv3d(x, padding 1) * mask
- strided (k3, s2): output size m // 2 + 1 (torchsparse has no upper bound: a 96 grid
  gives 49 sites per axis), sites reachable from an input site and not below the input
  sites' smallest coordinate on any axis
- transposed (k3, s2): conv_transpose3d cropped to the finer level, times its mask
- batch norm over the active sites only (training mode, signed weight), then ReLU.
Kernel layout: torchsparse's (27, C_in, C_out) with offset k = (dz+1)*9 + (dy+1)*3 + (dx+1).
"""

import torch
import torch.nn.functional as F
from torch import nn

from .features import NormStatistics, batch_statistics

KERNEL_VOLUME = 27


class SparseKernel(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.kernel = nn.Parameter(torch.zeros(KERNEL_VOLUME, c_in, c_out))

    def dense_weight(self) -> torch.Tensor:
        """(C_out, C_in, 3, 3, 3) for conv3d over (X, Y, Z)."""
        c_in, c_out = self.kernel.shape[1:]
        return self.kernel.reshape(3, 3, 3, c_in, c_out).permute(4, 3, 2, 1, 0).contiguous()

    def dense_transposed_weight(self) -> torch.Tensor:
        """(C_in, C_out, 3, 3, 3) for conv_transpose3d over (X, Y, Z)."""
        c_in, c_out = self.kernel.shape[1:]
        return self.kernel.reshape(3, 3, 3, c_in, c_out).permute(3, 4, 2, 1, 0).contiguous()


def _pad_to_odd(x: torch.Tensor) -> torch.Tensor:
    """One zero plane at the high end of each even-sized spatial axis, so that a stride-2
    window also covers the last site (torchsparse's coarse level reaches coordinate m)."""
    pads = []
    for size in reversed(x.shape[-3:]):
        pads += [0, 1 if size % 2 == 0 else 0]
    return F.pad(x, pads) if any(pads) else x


class SparseBlock(nn.Module):
    """Conv (no bias) -> batch norm over the active sites -> ReLU; keys net.0.kernel, net.1.*."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, transposed: bool = False):
        super().__init__()
        self.stride = stride
        self.transposed = transposed
        self.net = nn.ModuleList([SparseKernel(c_in, c_out), NormStatistics(c_out)])

    def forward(self, x: torch.Tensor, mask_out: torch.Tensor) -> torch.Tensor:
        """x: (1, C_in, *level_in) zero off its mask; mask_out: bool (*level_out)."""
        conv = self.net[0]
        if self.transposed:
            y = F.conv_transpose3d(x, conv.dense_transposed_weight(), stride=2, padding=1)
            y = y[..., : mask_out.shape[0], : mask_out.shape[1], : mask_out.shape[2]]
        elif self.stride == 2:
            y = F.conv3d(_pad_to_odd(x), conv.dense_weight(), stride=2, padding=1)
        else:
            y = F.conv3d(x, conv.dense_weight(), padding=1)
        sites = y[0][:, mask_out]  # (C, active sites)
        mean, var = batch_statistics(sites, (1,))
        norm = self.net[1]
        y = norm.normalise(y[0], mean[..., None, None], var[..., None, None], norm.weight)
        return (torch.relu(y) * mask_out)[None]


def coarser_mask(mask: torch.Tensor, stride: int) -> torch.Tensor:
    """The sites of the next level (torchsparse's spdownsample for a 3x3x3 stride-2 conv)
    from the active sites of a level whose tensor stride is `stride`."""
    reach = F.max_pool3d(_pad_to_odd(mask[None, None].float()), 3, stride=2, padding=1)[0, 0] > 0
    lowest = mask.nonzero().min(dim=0).values * stride  # per axis, in level-0 units
    for axis in range(3):
        index = torch.arange(reach.shape[axis], device=mask.device) * (2 * stride)
        keep = (index >= lowest[axis]).reshape([-1 if a == axis else 1 for a in range(3)])
        reach = reach & keep
    return reach


class SparseCostRegNet(nn.Module):
    """U-Net over 4 levels (tensor strides 1, 2, 4, 8), d_in 32 -> d_out 16."""

    def __init__(self, d_in: int = 32, d_out: int = 16):
        super().__init__()
        self.conv0 = SparseBlock(d_in, d_out)
        self.conv1 = SparseBlock(d_out, 16, stride=2)
        self.conv2 = SparseBlock(16, 16)
        self.conv3 = SparseBlock(16, 32, stride=2)
        self.conv4 = SparseBlock(32, 32)
        self.conv5 = SparseBlock(32, 64, stride=2)
        self.conv6 = SparseBlock(64, 64)
        self.conv7 = SparseBlock(64, 32, transposed=True)
        self.conv9 = SparseBlock(32, 16, transposed=True)
        self.conv11 = SparseBlock(16, d_out, transposed=True)

    @staticmethod
    def level_masks(active: torch.Tensor) -> list[torch.Tensor]:
        masks = [active]
        for level in range(3):
            masks.append(coarser_mask(masks[-1], 2**level))
        return masks

    def forward(self, cost: torch.Tensor, masks: list[torch.Tensor], record: dict | None = None,
                between=None) -> torch.Tensor:
        """cost: (1, 32, n, n, n) zero off masks[0] -> (1, 16, n, n, n) zero off it too.
        record, when given, receives each block's output (after its ReLU); between(), when
        given, is called after each block (cancel checks)."""
        def block(name, x, level):
            y = getattr(self, name)(x, masks[level])
            if record is not None:
                record[name] = y
            if between is not None:
                between()
            return y

        c0 = block("conv0", cost, 0)
        c2 = block("conv2", block("conv1", c0, 1), 1)
        c4 = block("conv4", block("conv3", c2, 2), 2)
        y = block("conv6", block("conv5", c4, 3), 3)
        y = c4 + block("conv7", y, 2)
        del c4
        y = c2 + block("conv9", y, 1)
        del c2
        return c0 + block("conv11", y, 0)
