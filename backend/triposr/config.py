"""Read a TripoSR `config.yaml` into plain, validated sizes.

The file is OmegaConf-style YAML with `${a.b}` interpolations. We resolve those
ourselves (no OmegaConf dependency), check the `*_cls` names as identifiers of the
reference architecture, and never import anything they name.
"""

import math
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
MAX_CONFIG_BYTES = 256 * 1024  # the official file has about 1.5 KB
MAX_REFERENCE_DEPTH = 32
# Far above any TripoSR configuration, far below what would exhaust memory or take
# hours to build: an absurd size is refused with a sentence, not a crash.
SIZE_LIMITS = {
    "cond_image_size": 4096, "plane_size": 512, "triplane_channels": 8192, "backbone_heads": 256,
    "backbone_head_dim": 1024, "backbone_layers": 128, "cross_attention_dim": 8192, "backbone_in_channels": 8192,
    "upsample_in_channels": 8192, "upsample_out_channels": 1024, "decoder_in_channels": 8192,
    "decoder_width": 8192, "decoder_hidden_layers": 128,
}
VIT_LIMITS = {"hidden_size": 8192, "num_hidden_layers": 128, "num_attention_heads": 256,
              "intermediate_size": 32768, "patch_size": 256, "image_size": 4096, "num_channels": 16}


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


def _resolve(value, root, depth=0):
    """Replace `${a.b}` references by the value at that path of the document."""
    if depth > MAX_REFERENCE_DEPTH:
        raise CheckpointError("config.yaml's ${...} references refer to each other in a loop")
    if isinstance(value, dict):
        return {k: _resolve(v, root, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, root, depth + 1) for v in value]
    if not isinstance(value, str):
        return value
    whole = _REFERENCE.fullmatch(value.strip())
    if whole:
        return _resolve(_lookup(root, whole.group(1)), root, depth + 1)
    resolved = _REFERENCE.sub(lambda m: str(_resolve(_lookup(root, m.group(1)), root, depth + 1)), value)
    if len(resolved) > MAX_CONFIG_BYTES:  # references that double at each level
        raise CheckpointError("config.yaml's ${...} references expand to an absurdly long value")
    return resolved


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
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise CheckpointError(f"{path} is too large for a TripoSR config.yaml (over {MAX_CONFIG_BYTES // 1024} KB)")
        text = path.read_text(encoding="utf-8")
        _refuse_aliases(text, path)
        raw = yaml.safe_load(text)
    except FileNotFoundError:
        raise CheckpointError(f"no config.yaml at {path}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path} does not hold a TripoSR configuration")
    cfg = _resolve(raw, raw)
    return parse_config(cfg, source=str(path))


def _refuse_aliases(text: str, path: Path) -> None:
    """YAML aliases (*name) can multiply a small file into billions of nodes; a TripoSR
    config has none, so any is refused before the document is built."""
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            raise CheckpointError(f"{path} uses YAML aliases (*{event.anchor}), which a TripoSR config.yaml never has")


def _check_sizes(config: "ModelConfig", source: str) -> None:
    checks = [(name, getattr(config, name), limit) for name, limit in SIZE_LIMITS.items()]
    checks += [(f"vit.{name}", getattr(config.vit, name), limit) for name, limit in VIT_LIMITS.items()]
    for name, value, limit in checks:
        if type(value) is not int or not 0 < value <= limit:
            raise CheckpointError(f"{source}: {name} is {value!r}; a TripoSR config needs a whole number from 1 to {limit}")
    if config.vit.hidden_size % config.vit.num_attention_heads:
        raise CheckpointError(f"{source}: the image encoder's hidden_size must divide by its num_attention_heads")
    for name in ("radius", "density_bias"):
        value = getattr(config, name)
        if not math.isfinite(value) or (name == "radius" and not 0 < value <= 100):
            raise CheckpointError(f"{source}: renderer.{name} is {value!r}, which no TripoSR config has")


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
        config = ModelConfig(
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
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise CheckpointError(f"{source} lacks or mistypes a TripoSR setting: {exc!r}") from None
    _check_sizes(config, source)
    return config
