"""Load a checked Shap-E folder into a diffusers pipeline, safely.

Each component is built from the class folders.COMPONENTS names (never from what
model_index.json says, so a folder cannot make diffusers import code of its own),
from safetensors only (use_safetensors=True), and from local files only. A hub id is
fetched first, when asked for, by backend/setup/hub.py (JSON, text and full-precision
safetensors files only).
"""

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch

from ..bridge.errors import CheckpointError
from ..model_folder import resolve_model_dir
from .declaration import SHAP_E
from .folders import HUB_REPOS


@dataclass
class LoadedShapE:
    family: ClassVar[str] = SHAP_E
    pipeline: object  # diffusers ShapEPipeline or ShapEImg2ImgPipeline
    task: str  # "text" or "image"
    device: str
    model_dir: Path
    load_seconds: float
    precision: str = "float32"  # "bfloat16": the prior and the condition's encoder (set_precision)

    @property
    def weights_bytes(self) -> int:
        parts = [getattr(self.pipeline, name, None) for name in ("prior", "shap_e_renderer", "text_encoder", "image_encoder")]
        return sum(p.numel() * p.element_size() for part in parts if part is not None for p in part.parameters())


def _image_processor_class():
    """transformers 5's CLIPImageProcessor needs torchvision; without it transformers
    itself falls back to the PIL implementation (with a warning). Pick the same one
    explicitly, so results match diffusers' own loading in the same environment."""
    import transformers

    try:
        import torchvision  # noqa: F401
    except ImportError:
        if hasattr(transformers, "CLIPImageProcessorPil"):
            return transformers.CLIPImageProcessorPil
    return transformers.CLIPImageProcessor


def _model(cls, folder: Path, name: str):
    loaded, info = cls.from_pretrained(folder / name, use_safetensors=True, local_files_only=True,
                                       output_loading_info=True)
    # transformers fills missing tensors with random values and only warns: refuse
    for problem in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        names = sorted(map(str, info.get(problem) or []))
        if names:
            raise CheckpointError(
                f"{folder / name}: {problem.replace('_', ' ')} ({len(names)}): {', '.join(names[:5])}"
                + (" ..." if len(names) > 5 else "")
            )
    return loaded


def _build(task: str, folder: Path):
    from diffusers import HeunDiscreteScheduler, PriorTransformer, ShapEImg2ImgPipeline, ShapEPipeline
    from diffusers.pipelines.shap_e.renderer import ShapERenderer

    common = dict(
        prior=_model(PriorTransformer, folder, "prior"),
        scheduler=HeunDiscreteScheduler.from_pretrained(folder / "scheduler"),
        shap_e_renderer=_model(ShapERenderer, folder, "shap_e_renderer"),
    )
    if task == "text":
        from transformers import CLIPTextModelWithProjection, CLIPTokenizer

        encoder = _model(CLIPTextModelWithProjection, folder, "text_encoder")
        tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer", local_files_only=True)
        # without tokenizer_config.json the tokenizer knows no length: the encoder's positions are it
        tokenizer.model_max_length = min(tokenizer.model_max_length, encoder.config.max_position_embeddings)
        return ShapEPipeline(text_encoder=encoder, tokenizer=tokenizer, **common)
    from transformers import CLIPVisionModel

    processor = _image_processor_class().from_pretrained(folder / "image_processor", local_files_only=True)
    return ShapEImg2ImgPipeline(image_encoder=_model(CLIPVisionModel, folder, "image_encoder"),
                                image_processor=processor, **common)


def quiet_libraries():
    """Loading prints progress bars and advice (install accelerate, torchvision) meant for
    notebooks. The libraries set their loggers' levels when first imported, so they are
    imported here and told through their own switches."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        import transformers.utils.logging as transformers_logging

        transformers_logging.set_verbosity_error()
        transformers_logging.disable_progress_bar()
        import diffusers.utils.logging as diffusers_logging

        diffusers_logging.set_verbosity_error()
        diffusers_logging.disable_progress_bar()
    except ImportError:
        for name in ("diffusers", "transformers"):
            logging.getLogger(name).setLevel(logging.ERROR)


def set_precision(pipeline, precision: str) -> None:
    """bfloat16: the prior (nearly all of a job's time: it runs twice per step) and the
    text or image encoder feeding it; the renderer, whose field makes the surface, stays
    float32 (decode.latent_params casts the latent back), as TripoSR keeps its decoder."""
    if precision == "bfloat16":
        for name in ("prior", "text_encoder", "image_encoder"):
            part = getattr(pipeline, name, None)
            if part is not None:
                part.to(torch.bfloat16)


def load_shap_e(model, task: str, device: torch.device, precision: str = "float32") -> LoadedShapE:
    """The task's pipeline from a folder or hub id, on `device` (a resolved torch device)."""
    started = time.perf_counter()
    folder = resolve_model_dir(model, SHAP_E, task)
    quiet_libraries()
    try:
        pipeline = _build(task, folder)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        # missing or misshaped tensors, truncated files, unreadable configs
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{folder} could not be loaded as Shap-E ({HUB_REPOS[task]}): {reason}") from None
    pipeline = pipeline.to(device)
    set_precision(pipeline, precision)
    pipeline.set_progress_bar_config(disable=True)
    return LoadedShapE(pipeline, task, device.type, folder, time.perf_counter() - started, precision)
