"""The settings of one job (image or text to mesh). Standard library only (shared with Blender).

GenerateSettings' fields, defaults and checks come from the declarations in options.py.
"""

from dataclasses import asdict, field, fields, make_dataclass

from .options import JOB_OPTIONS, OPTIONS_BY_NAME, SHAP_E


def _check_all(self):
    for option in JOB_OPTIONS:
        # frozen: the checked (possibly normalised, e.g. int -> float) value goes in directly
        object.__setattr__(self, option.name, option.check(getattr(self, option.name)))


def _to_dict(self) -> dict:
    return asdict(self)


@classmethod
def _from_dict(cls, data: dict):
    if not isinstance(data, dict):
        raise ValueError(f"settings must be a mapping of option names to values, got {type(data).__name__}")
    unknown = set(data) - {f.name for f in fields(cls)}
    if unknown:
        raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
    return cls(**data)


GenerateSettings = make_dataclass(
    "GenerateSettings",
    [(option.name, option.kind, field(default=option.default)) for option in JOB_OPTIONS],
    frozen=True,
    namespace={"__post_init__": _check_all, "to_dict": _to_dict, "from_dict": _from_dict,
               "__doc__": "One job's options (see options.JOB_OPTIONS); invalid values raise ValueError."},
)
GenerateSettings.__module__ = __name__

DEFAULTS = {option.name: option.default for option in JOB_OPTIONS}
DEFAULT_RESOLUTION = OPTIONS_BY_NAME["resolution"].default
DEFAULT_THRESHOLD = OPTIONS_BY_NAME["threshold"].default
DEFAULT_FOREGROUND_RATIO = OPTIONS_BY_NAME["foreground_ratio"].default

# Every progress stage a job can report, in order. A job without the mesh stage goes
# prepare .. surface, colors (Shap-E's diffuses between encode and field); with it, the
# surface is cleaned up and decimated before the final mesh's colours are taken, then
# unwrapped and baked when textured.
STAGES = ("prepare", "encode", "diffusion", "field", "surface", "cleanup", "decimate", "colors", "unwrap", "bake")
_ASSET_ONLY = {"cleanup", "decimate"}
_TEXTURE_ONLY = {"unwrap", "bake"}
_SHAP_E_ONLY = {"diffusion"}


def asset_stage_runs(settings) -> bool:
    """True when the options ask the mesh stage for anything; otherwise the job returns
    the raw surface, bit for bit what it was before the stage existed."""
    return bool(settings.max_faces or settings.texture_size or settings.smooth_iterations)


def job_stages(settings) -> tuple:
    """The stages a job with these settings reports, in order."""
    skip = set() if asset_stage_runs(settings) else set(_ASSET_ONLY)
    if not settings.texture_size:
        skip |= _TEXTURE_ONLY
    if settings.family != SHAP_E:
        skip |= _SHAP_E_ONLY
    return tuple(stage for stage in STAGES if stage not in skip)


def job_resolution(settings) -> int:
    """The grid resolution the job's family uses (what to lower when memory runs out)."""
    return settings.shap_e_resolution if settings.family == SHAP_E else settings.resolution
