"""TripoSR wired from its parts; attribute names follow the checkpoint's key prefixes."""

import torch
from torch import nn

from .config import ModelConfig
from .field import Decoder, Field
from .triplane import Backbone, TriplaneTokenizer, TriplaneUpsampler
from .vit import ImageTokenizer


class TripoSR(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.image_tokenizer = ImageTokenizer(cfg.vit, cfg.cond_image_size)
        self.tokenizer = TriplaneTokenizer(cfg.plane_size, cfg.triplane_channels)
        self.backbone = Backbone(cfg)
        self.post_processor = TriplaneUpsampler(cfg.upsample_in_channels, cfg.upsample_out_channels)
        self.decoder = Decoder(cfg)
        self.field = Field(cfg, self.decoder)

    @torch.no_grad()
    def encode(self, images):
        """(B, H, W, 3) floats in [0, 1] -> scene codes (B, 3, C, 2*plane, 2*plane)."""
        return self.encode_resized(self.image_tokenizer.resize(images))

    # fast_encoder.apply_encoder_kernels may set a replaying runner (CUDA graphs)
    encoder_runner = None

    @torch.no_grad()
    def encode_resized(self, pixels):
        """image_tokenizer.resize()'s output (B, 3, S, S) -> scene codes."""
        if self.encoder_runner is not None:
            return self.encoder_runner(pixels)
        return self.encode_plain(pixels)

    @torch.no_grad()
    def encode_plain(self, pixels):
        """encode_resized without a runner: the modules themselves."""
        context = self.image_tokenizer.tokens(pixels)
        tokens = self.tokenizer(pixels.shape[0])
        tokens = self.backbone(tokens, context)
        # the field (decoder, marching cubes) always works in float32
        return self.post_processor(self.tokenizer.detokenize(tokens)).float()

    def set_encoder_precision(self, dtype: torch.dtype):
        """Run the image encoder and backbone in `dtype`; the decoder stays float32."""
        for part in (self.image_tokenizer.model, self.tokenizer, self.backbone, self.post_processor):
            part.to(dtype)
        return self
