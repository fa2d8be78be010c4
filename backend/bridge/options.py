"""Every option of a job, each declared once: the families' own (from the registry), the
mesh stage's and how Blender makes the object; presets; command-line flags.

Standard library only. Everything else is derived from these declarations: the backend's
GenerateSettings (settings.py), the command-line flags of the CLI and the headless
script (add_arguments), and on the Blender side the add-on preferences, the panel's
settings, the operators' properties and the panel's drawing (blender/options.py).
"""

import os
from dataclasses import dataclass

from ..families import contract, registry
from .option import Option

TASKS = contract.TASKS
FAMILIES, FAMILIES_BY_NAME = registry.FAMILIES, registry.FAMILIES_BY_NAME
FAMILY_OPTION = Option("family", "Model", str, FAMILIES[0].identifier, "Which model family makes the object",
                       choices=tuple((f.identifier, f.label, f.description) for f in FAMILIES))
# Every family's own options, in registry order (each tagged with its family).
FAMILY_OPTIONS = tuple(option for family in FAMILIES for option in family.options)

# What the mesh stage (backend/mesh/asset/) makes of the surface, of every family. Their
# defaults are the raw surface, untouched, as the model made it; the stage runs
# only when max_faces, texture_size or smooth_iterations asks for something (asset_stage_runs).
ASSET_OPTIONS = (
    Option("max_faces", "Max Faces", int, 0, "Decimate to at most this many triangles (0 keeps every triangle)",
           minimum=4, zero_means="keep all", soft_maximum=200_000, flag="--faces"),
    Option("texture_size", "Texture Size", int, 0,
           "Bake T x T pixel textures on a UV map (0: vertex colours only, no UV map)",
           minimum=64, maximum=8192, zero_means="vertex colours", soft_maximum=4096, flag="--texture"),
    Option("normal_map", "Normal Map", bool, True,
           "Bake the full-detail surface into a normal map (with a texture)", flag="--no-normal-map"),
    Option("smooth_iterations", "Smoothing", int, 0,
           "Taubin smoothing passes over the surface before decimation (0: none)",
           minimum=0, maximum=100, soft_maximum=10, flag="--smooth"),
    Option("keep_floaters", "Keep Floaters", bool, False,
           "Keep the small pieces floating apart from the object (when the mesh stage runs)",
           flag="--keep-floaters"),
)

# GenerateSettings' fields: everything the backend needs for one job.
JOB_OPTIONS = (FAMILY_OPTION,) + FAMILY_OPTIONS + ASSET_OPTIONS

# How the result becomes a Blender object; the backend never sees these.
OBJECT_OPTIONS = (
    Option("shading", "Shading", str, "SMOOTH", "Smooth or flat shading of the new object",
           choices=(("SMOOTH", "Smooth", "Smooth shading"), ("FLAT", "Flat", "Flat shading"))),
    Option("rest_on_cursor", "Rest on Cursor", bool, True, "Put the lowest point at the 3D cursor's height",
           flag="--no-rest-on-cursor"),
)

ALL_OPTIONS = JOB_OPTIONS + OBJECT_OPTIONS


@dataclass(frozen=True)
class Preset:
    """A named set of values of every ASSET_OPTIONS option."""

    identifier: str
    label: str
    description: str
    values: dict


PRESETS = (
    # the options' defaults: the mesh stage does not run
    Preset("RAW", "Raw Surface", "The surface as the model made it: every triangle, vertex colours, floaters too",
           {option.name: option.default for option in ASSET_OPTIONS}),
    Preset("CLEAN", "Clean", "Floaters removed and grid steps smoothed (2 passes); every triangle, vertex colours",
           {"max_faces": 0, "texture_size": 0, "normal_map": True, "smooth_iterations": 2, "keep_floaters": False}),
    Preset("GAME_ASSET", "Game Asset", "20,000 triangles on a UV map with 1024 px colour and normal maps",
           {"max_faces": 20_000, "texture_size": 1024, "normal_map": True, "smooth_iterations": 0,
            "keep_floaters": False}),
)
CUSTOM_PRESET = "CUSTOM"
PRESETS_BY_NAME = {preset.identifier: preset for preset in PRESETS}
# Blender's panel, operators and headless script choose a preset; CUSTOM takes the
# options' own values. The CLI has no preset: its defaults are the raw surface.
PRESET_OPTION = Option(
    "preset", "Preset", str, "GAME_ASSET", "What the mesh stage makes of the surface",
    choices=tuple((p.identifier, p.label, p.description) for p in PRESETS)
    + ((CUSTOM_PRESET, "Custom", "The values set below"),),
)


def apply_preset(values: dict, preset: str, given=()) -> dict:
    """`values` with the preset's asset options, except the names in `given` (set explicitly)."""
    chosen = PRESETS_BY_NAME.get(preset)
    if chosen is None:  # CUSTOM
        return dict(values)
    return {**values, **{name: value for name, value in chosen.values.items() if name not in given}}

# Where and how the model runs (chosen per worker, not per job).
DEVICES = ("auto", "cpu", "cuda", "mps")  # auto: CUDA, then Apple MPS, then the CPU
PRECISIONS = ("float32", "bfloat16")
OPTIONS_BY_NAME = {option.name: option for option in ALL_OPTIONS}


def looks_like_hub_id(model: str) -> bool:
    """True for "owner/name" (a Hugging Face repository) that is not meant as a local path.

    "models/typo" is a path when a local folder "models" exists: a typo in it must say
    that the folder does not exist, not go looking on the network.
    """
    text = str(model)
    parts = text.split("/")
    if len(parts) != 2 or not all(parts) or text.startswith((".", "~", "/")) or "\\" in text:
        return False
    return not os.path.exists(text) and not os.path.isdir(parts[0])


def options_for(family: str, task: str, options=ALL_OPTIONS) -> tuple:
    """The options a job of this family and input uses, in declaration order."""
    return tuple(option for option in options if option.applies_to(family, task))


def _flag_groups(options) -> dict:
    """cli flag -> the options that take it (several when families share a flag, e.g.
    --resolution is TripoSR's resolution and Shap-E's shap_e_resolution)."""
    groups = {}
    for option in options:
        groups.setdefault(option.cli_flag, []).append(option)
    return groups


def _dest(flag: str, group: list) -> str:
    return group[0].name if len(group) == 1 else flag.lstrip("-").replace("-", "_")


def add_arguments(parser, options, show_defaults: bool = True) -> None:
    """One argparse flag per option (or per flag several families share). A flag left out
    is None: the job's settings then take the option's default (or, in the headless
    script, the add-on's preferences decide); values_given picks what a job uses."""
    for flag, group in _flag_groups(options).items():
        option, dest = group[0], _dest(flag, group)
        defaults = ", ".join(f"{o.default} ({_scope(o)})" if len(group) > 1 else str(o.default) for o in group)
        shown = f" (default {defaults})" if show_defaults else ""
        if option.kind is bool:
            # the flag flips the default: --no-remove-bg turns a True default off
            words = option.description[0].lower() + option.description[1:]
            parser.add_argument(flag, dest=dest, default=None,
                                action="store_false" if option.default else "store_true",
                                help=f"do not {words}" if option.default else words)
        elif option.kind is str:
            parser.add_argument(flag, dest=dest, default=None, type=str.upper,
                                choices=[identifier for identifier, _, _ in option.choices],
                                help=option.description + shown)
        else:
            parser.add_argument(flag, dest=dest, default=None, type=option.kind, metavar=flag.lstrip("-").upper(),
                                help=option.description + shown)


def value_problem(values: dict, options) -> str | None:
    """The first given value an option refuses, as "--flag: why"; None when all are good."""
    for option in options:
        if values.get(option.name) is not None:
            try:
                option.check(values[option.name])
            except ValueError as error:
                return f"{option.cli_flag}: {error}"
    return None


def _scope(option) -> str:
    families = "/".join(FAMILIES_BY_NAME[f].label for f in option.families) or "all"
    return families + (f", {'/'.join(option.tasks)}" if option.tasks else "")


def values_given(args, options, family: str | None = None, task: str | None = None) -> dict:
    """name -> value of the options a parsed command line set (None means left out);
    with a family and task, only the options such a job uses (a shared flag goes to
    the option of that family)."""
    values = {}
    for flag, group in _flag_groups(options).items():
        value = getattr(args, _dest(flag, group))
        if value is None:
            continue
        for option in group:
            if family is None or option.applies_to(family, task):
                values[option.name] = value
    return values


def flags_not_used(args, options, family: str, task: str) -> list:
    """The flags a command line gave that a job of this family and input does not use
    (--threshold for Shap-E, say): better refused than silently ignored."""
    return [flag for flag, group in _flag_groups(options).items()
            if getattr(args, _dest(flag, group)) is not None and not any(o.applies_to(family, task) for o in group)]


def check_family_takes(family: str, task: str) -> None:
    """WrongModelError when the family cannot start from this input (TripoSR and a prompt)."""
    from .errors import WrongModelError

    chosen = FAMILIES_BY_NAME[family]
    if task not in chosen.tasks:
        takers = " or ".join(f.label for f in FAMILIES if task in f.tasks)
        raise WrongModelError(
            f"{chosen.label} makes objects from {' or '.join(t + 's' for t in chosen.tasks)}, not from "
            f"{'a text prompt' if task == 'text' else 'an image'}: choose {takers} as the model"
        )


def prompt_with_image_problem(family: str, has_image: bool, has_prompt: bool) -> str | None:
    """What is wrong when a prompt does not come with a picture exactly when the family's
    image jobs take one (Make-It-3D, say: what to make of the picture); None when right.
    A prompt alone is a text job."""
    chosen = FAMILIES_BY_NAME[family]
    if has_image and has_prompt and not chosen.prompt_with_image:
        takers = " or ".join(f.label for f in FAMILIES if f.prompt_with_image)
        return (f"{chosen.label} jobs take exactly one of an image or a prompt, not both"
                + (f" ({takers} takes a prompt with the image)" if takers else ""))
    if has_image and chosen.prompt_with_image and not has_prompt:
        return f"{chosen.label} needs a prompt with the image: describe the object it shows"
    return None
