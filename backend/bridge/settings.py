"""The settings of one job (image or text to mesh). Standard library only (shared with Blender).

GenerateSettings' fields, defaults and checks come from the declarations in options.py.
"""

from dataclasses import asdict, field, fields, make_dataclass

from ..families.registry import FAMILIES, FAMILIES_BY_NAME, MESH_STAGES, VIEWS
from .options import JOB_OPTIONS


def _check_all(self):
    for option in self.OPTIONS:
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


def _settings_class(name: str, options: tuple, doc: str):
    cls = make_dataclass(
        name, [(option.name, option.kind, field(default=option.default)) for option in options], frozen=True,
        namespace={"__post_init__": _check_all, "to_dict": _to_dict, "from_dict": _from_dict, "OPTIONS": options,
                   "__doc__": doc},
    )
    cls.__module__ = __name__
    return cls


GenerateSettings = _settings_class(
    "GenerateSettings", JOB_OPTIONS, "One job's options (see options.JOB_OPTIONS); invalid values raise ValueError.")
# A views job's options (backend/zero123/declaration.py): its own, no family's.
ViewsSettings = _settings_class(
    "ViewsSettings", VIEWS.options, "One views job's options (registry.VIEWS); invalid values raise ValueError.")

DEFAULTS = {option.name: option.default for option in JOB_OPTIONS}
# Every progress stage a job can report, in the order jobs go: each family's own up to
# the surface (prepare, encode, Shap-E's diffusion, field, surface, ...), then the mesh
# stage's. Without the mesh stage a job goes from the surface to its colors; with it, the
# surface is cleaned up and decimated before the final mesh's colours are taken, then
# unwrapped and baked when textured.
def _merged(orders) -> tuple:
    """One order that keeps each list's own: a name new to it goes right after the one it
    follows in its list (Shap-E's diffusion after encode), a list's new first name at the end."""
    merged = []
    for order in orders:
        for position, name in enumerate(order):
            if name not in merged:
                merged.insert(merged.index(order[position - 1]) + 1 if position else len(merged), name)
    return tuple(merged)


STAGES = _merged([family.stage_names() for family in FAMILIES] + [tuple(stage.name for stage in MESH_STAGES)]
                 + [family.stage_names() + tuple(stage.name for stage in family.finishing_stages)
                    for family in FAMILIES if family.finishes_mesh])
_ASSET_ONLY = {"cleanup", "decimate"}
_TEXTURE_ONLY = {"unwrap", "bake"}


def asset_stage_runs(settings) -> bool:
    """True when the options ask the mesh stage for anything; otherwise the job returns
    the raw surface, bit for bit what it was before the stage existed."""
    return bool(settings.max_faces or settings.texture_size or settings.smooth_iterations)


def job_stages(settings) -> tuple:
    """The stages a job with these settings reports, in order."""
    family = FAMILIES_BY_NAME[settings.family]
    if family.finishes_mesh:  # its engine runs the mesh stage itself, and says which stages it reports
        return family.stage_names() + tuple(stage.name for stage in family.finishing_stages)
    skip = set() if asset_stage_runs(settings) else set(_ASSET_ONLY)
    if not settings.texture_size:
        skip |= _TEXTURE_ONLY
    mesh_stages = tuple(stage.name for stage in MESH_STAGES if stage.name not in skip)
    return family.stage_names() + mesh_stages


def job_resolution(settings):
    """The grid resolution the job's family uses (what to lower when memory runs out), or
    None for a family that declares none."""
    option = FAMILIES_BY_NAME[settings.family].resolution_option
    return getattr(settings, option) if option else None
