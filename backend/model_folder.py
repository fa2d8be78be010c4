"""Which model folder a job means, checked without torch.

Standard library only (the hub download is imported only for a hub id), so the model
server's front can refuse a wrong --model in a second without importing torch (~200 MB)
just to look at a folder. The loader (triposr/checkpoint.py) uses the same check.
"""

from pathlib import Path

from .bridge.errors import ModelNotFoundError
from .bridge.options import looks_like_hub_id

CONFIG_NAME = "config.yaml"
WEIGHTS_NAME = "model.ckpt"


def check_model_dir(model_dir: Path) -> Path:
    model_dir = Path(model_dir).expanduser()
    if model_dir.is_file():
        raise ModelNotFoundError(
            f"{model_dir} is a file: the model is the folder that holds TripoSR's {CONFIG_NAME} "
            f"and {WEIGHTS_NAME}; give that folder"
        )
    if not model_dir.is_dir():
        raise ModelNotFoundError(
            f"model folder {model_dir} does not exist: put TripoSR's {CONFIG_NAME} and "
            f"{WEIGHTS_NAME} there, or pass a hub repository id such as stabilityai/TripoSR"
        )
    missing = [n for n in (CONFIG_NAME, WEIGHTS_NAME) if not (model_dir / n).is_file()]
    if missing:
        raise ModelNotFoundError(
            f"model folder {model_dir} lacks {' and '.join(missing)}: it needs TripoSR's "
            f"{CONFIG_NAME} and {WEIGHTS_NAME} (from huggingface.co/stabilityai/TripoSR)"
        )
    return model_dir


def resolve_model_dir(model: str | Path) -> Path:
    """A local model folder, or a hub repo id fetched into the cache (only when asked)."""
    path = Path(model).expanduser()
    if path.is_dir() or not looks_like_hub_id(str(model)):
        return check_model_dir(path)
    try:
        from .setup.hub import fetch_model
    except ImportError:
        raise ModelNotFoundError(f"{model} is not a folder, and hub downloads are not available") from None
    return check_model_dir(fetch_model(str(model)))
