"""Read a TripoSR `config.yaml` into plain, validated sizes.

The file is OmegaConf-style YAML with `${a.b}` interpolations. We resolve those
ourselves (no OmegaConf dependency), check the `*_cls` names as identifiers of the
reference architecture, and never import anything they name.
"""

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..bridge.errors import CheckpointError

# What the reference code's class names must be for our implementation to apply.
EXPECTED_CLASSES = {
    "image_tokenizer_cls": "tsr.models.tokenizers.image.DINOSingleImageTokenizer",
    "tokenizer_cls": "tsr.models.tokenizers.triplane.Triplane1DTokenizer",
    "backbone_cls": "tsr.models.transformer.transformer_1d.Transformer1D",
    "post_processor_cls": "tsr.models.network_utils.TriplaneUpsampleNetwork",
    "decoder_cls": "tsr.models.network_utils.NeRFMLP",
    "renderer_cls": "tsr.models.nerf_renderer.TriplaneNeRFRenderer",
}

# facebook/dino-vitb16, which the official config names but does not contain.
DINO_VITB16 = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "patch_size": 16,
    "image_size": 224,
    "num_channels": 3,
    "qkv_bias": True,
    "layer_norm_eps": 1e-12,
}

_REFERENCE = re.compile(r"\$\{([^}]+)\}")


@dataclass(frozen=True)
class VitConfig:
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    patch_size: int
    image_size: int
    num_channels: int
    qkv_bias: bool
    layer_norm_eps: float


@dataclass(frozen=True)
class ModelConfig:
    cond_image_size: int
    vit: VitConfig
    plane_size: int
    triplane_channels: int
    backbone_heads: int
    backbone_head_dim: int
    backbone_layers: int
    cross_attention_dim: int
    backbone_in_channels: int
    upsample_in_channels: int
    upsample_out_channels: int
    decoder_in_channels: int
    decoder_width: int
    decoder_hidden_layers: int
    radius: float
    density_bias: float


def _resolve(value, root):
    """Replace `${a.b}` references by the value at that path of the document."""
    if isinstance(value, dict):
        return {k: _resolve(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, root) for v in value]
    if not isinstance(value, str):
        return value
    whole = _REFERENCE.fullmatch(value.strip())
    if whole:
        return _resolve(_lookup(root, whole.group(1)), root)
    return _REFERENCE.sub(lambda m: str(_resolve(_lookup(root, m.group(1)), root)), value)


def _lookup(root, dotted):
    node = root
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise CheckpointError(f"config.yaml refers to ${{{dotted}}}, which it does not define")
        node = node[part]
    return node


def load_config(path: Path) -> ModelConfig:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"no config.yaml at {path}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path} does not hold a TripoSR configuration")
    cfg = _resolve(raw, raw)
    return parse_config(cfg, source=str(path))


def parse_config(cfg: dict, source: str = "config") -> ModelConfig:
    for key, expected in EXPECTED_CLASSES.items():
        if cfg.get(key) != expected:
            raise CheckpointError(
                f"{source}: {key} is {cfg.get(key)!r}; this backend implements {expected!r} only"
            )
    try:
        renderer = cfg["renderer"]
        if renderer.get("feature_reduction", "concat") != "concat":
            raise CheckpointError(f"{source}: only renderer.feature_reduction 'concat' is supported")
        if renderer.get("density_activation", "exp") != "exp":
            raise CheckpointError(f"{source}: only renderer.density_activation 'exp' is supported")
        if cfg["decoder"].get("activation", "silu") != "silu":
            raise CheckpointError(f"{source}: only decoder.activation 'silu' is supported")
        vit = dict(DINO_VITB16)
        vit.update(cfg["image_tokenizer"].get("vit") or {})
        backbone = cfg["backbone"]
        return ModelConfig(
            cond_image_size=int(cfg["cond_image_size"]),
            vit=VitConfig(**{k: vit[k] for k in VitConfig.__dataclass_fields__}),
            plane_size=int(cfg["tokenizer"]["plane_size"]),
            triplane_channels=int(cfg["tokenizer"]["num_channels"]),
            backbone_heads=int(backbone["num_attention_heads"]),
            backbone_head_dim=int(backbone["attention_head_dim"]),
            backbone_layers=int(backbone["num_layers"]),
            cross_attention_dim=int(backbone["cross_attention_dim"]),
            backbone_in_channels=int(backbone["in_channels"]),
            upsample_in_channels=int(cfg["post_processor"]["in_channels"]),
            upsample_out_channels=int(cfg["post_processor"]["out_channels"]),
            decoder_in_channels=int(cfg["decoder"]["in_channels"]),
            decoder_width=int(cfg["decoder"]["n_neurons"]),
            decoder_hidden_layers=int(cfg["decoder"]["n_hidden_layers"]),
            radius=float(renderer["radius"]),
            density_bias=float(renderer["density_bias"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{source} lacks or mistypes a TripoSR setting: {exc!r}") from None
