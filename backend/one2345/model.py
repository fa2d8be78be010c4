"""One-2-3-45's reconstruction network (generalizable SparseNeuS, lod0) with the official
checkpoint's module names, so that its state dicts load unchanged."""

import torch
from torch import nn

from .colours import GeneralRenderingNetwork
from .features import ConvBnReLU, FeatureNet
from .folders import DEMO_VOLUME_SIZE  # confs/one2345_lod0_val_demo.conf: vol_dims [96, 96, 96]
from .sdf import LatentSDFLayer, SDFWeights
from .sparse_volume import SparseCostRegNet

FUSED_CHANNELS = 32 + 16 + 8
COMPRESSED_CHANNELS = 16


class SparseSdfNetwork(nn.Module):
    def __init__(self):
        super().__init__()
        self.compress_layer = ConvBnReLU(FUSED_CHANNELS, COMPRESSED_CHANNELS, 3, 1, 1)
        self.sparse_costreg_net = SparseCostRegNet(2 * COMPRESSED_CHANNELS, 16)
        self.sdf_layer = LatentSDFLayer()


class SingleVarianceNetwork(nn.Module):
    """Loaded for the checkpoint's sake; only volume rendering uses it."""

    def __init__(self):
        super().__init__()
        self.variance = nn.Parameter(torch.tensor(0.3))


class SparseNeuS(nn.Module):
    """The four networks the checkpoint holds, under its top-level names."""

    NETWORKS = ("sdf_network_lod0", "rendering_network_lod0", "variance_network_lod0", "pyramid_feature_network")

    def __init__(self, volume_size: int = DEMO_VOLUME_SIZE):
        super().__init__()
        self.volume_size = volume_size
        self.pyramid_feature_network = FeatureNet()
        self.sdf_network_lod0 = SparseSdfNetwork()
        self.rendering_network_lod0 = GeneralRenderingNetwork()
        self.variance_network_lod0 = SingleVarianceNetwork()

    @property
    def device(self) -> torch.device:
        return self.rendering_network_lod0.s.device

    def sdf_weights(self) -> SDFWeights:
        return SDFWeights(self.sdf_network_lod0.sdf_layer)
