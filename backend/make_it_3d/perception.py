"""What CLIP and DPT tell about images: CLIP ViT-L/14 embeddings (differentiable, for the
CLIP loss) and DPT-Hybrid's depth of the picture (once per job)."""

import torch
import torch.nn.functional as F

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
DPT_MEAN = DPT_STD = (0.5, 0.5, 0.5)  # DPT-Hybrid's image processor: [0, 1] -> [-1, 1]
MIN_DISPARITY = 1e-2  # the paper's clamp before inverting MiDaS's disparity


def _normalise(images, mean, std):
    mean = torch.tensor(mean, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    std = torch.tensor(std, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    return (images - mean) / std


def clip_embedding(models, images: torch.Tensor) -> torch.Tensor:
    """images (B, 3, H, W) in [0, 1] -> unit image embeddings (B, D), float32, with
    gradient (resized to CLIP's input, normalised as CLIP was trained)."""
    size = models.clip.config.vision_config.image_size
    pixels = F.interpolate(images, (size, size), mode="bilinear", align_corners=False)
    pixels = _normalise(pixels, CLIP_MEAN, CLIP_STD).to(models.dtype)
    features = models.clip.get_image_features(pixel_values=pixels)
    if not torch.is_tensor(features):  # transformers 5 may return an output object
        features = features.pooler_output
    features = features.float()
    return features / features.norm(dim=-1, keepdim=True)


def median_filter(image: torch.Tensor, size: int = 5) -> torch.Tensor:
    """(H, W) -> (H, W), the median of each size x size window (edges replicated)."""
    pad = size // 2
    padded = F.pad(image[None, None], (pad, pad, pad, pad), mode="replicate")
    windows = F.unfold(padded, size)  # (1, size*size, H*W)
    return windows.median(dim=1).values.view(image.shape)


@torch.no_grad()
def picture_depth(models, picture_on_white: torch.Tensor, size: int) -> torch.Tensor:
    """The picture's relative depth (size, size), float32, larger = farther.

    DPT predicts relative inverse depth (disparity). As the paper: normalised to [0, 1],
    median-filtered (5 x 5), clamped at 0.01 and inverted. Only its correlation with
    the rendered depth is used, so its scale and offset do not matter.
    """
    dpt = models.depth
    side = dpt.config.image_size
    side = side[0] if isinstance(side, (list, tuple)) else side
    pixels = F.interpolate(picture_on_white[None].float(), (side, side), mode="bicubic", align_corners=False)
    pixels = _normalise(pixels.clamp(0, 1), DPT_MEAN, DPT_STD)
    disparity = dpt(pixel_values=pixels).predicted_depth.float()  # (1, side, side)
    disparity = F.interpolate(disparity[:, None], (size, size), mode="bicubic", align_corners=False)[0, 0]
    low, high = disparity.min(), disparity.max()
    disparity = (disparity - low) / (high - low).clamp(min=1e-8)
    disparity = median_filter(disparity, 5)
    return 1.0 / disparity.clamp(min=MIN_DISPARITY)
