"""Each option of a job, declared once: name, type, default, range, words for the user.

Standard library only. Everything else is derived from these declarations: the backend's
GenerateSettings (settings.py), the command-line flags of the CLI and the headless
script (add_arguments), and on the Blender side the add-on preferences, the panel's
settings, the operators' properties and the panel's drawing (blender/options.py).
"""

import math
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Option:
    name: str  # identifier everywhere: settings field, property, protocol key
    label: str  # what the UI shows
    kind: type  # int, float, bool or str (a choice among `choices`)
    default: object
    description: str
    minimum: float | None = None
    maximum: float | None = None
    soft_minimum: float | None = None  # the UI's lower end where the minimum itself is excluded
    soft_maximum: float | None = None  # where a UI slider stops; typing can go further
    exclusive_minimum: bool = False  # the minimum itself is not allowed
    choices: tuple = ()  # (identifier, label, description) for kind str
    flag: str | None = None  # the CLI flag; None = "--" + name with dashes
    zero_means: str | None = None  # 0 is allowed besides the range, and means this ("keep all")

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    def check(self, value):
        """`value` if it is of this option's type and range; ValueError naming the problem.

        Strict on purpose: a value that arrives as the wrong type (the string "32", a
        bool where a number belongs) is refused rather than guessed at.
        """
        if self.kind is bool:
            if not isinstance(value, bool):
                raise ValueError(f"{self.name} must be true or false, got {value!r}")
            return value
        if self.kind is str:
            allowed = [identifier for identifier, _, _ in self.choices]
            if value not in allowed:
                raise ValueError(f"{self.name} must be one of {', '.join(allowed)}, got {value!r}")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float) if self.kind is float else int):
            kind = "a number" if self.kind is float else "a whole number"
            raise ValueError(f"{self.name} must be {kind}, got {value!r}")
        if self.kind is float:
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(f"{self.name} must be a finite number, got {value!r}")
        if not (self.zero_means and value == 0) and not self._in_range(value):
            raise ValueError(f"{self.name} must be {self.range_text()}, got {value!r}")
        return value

    def _in_range(self, value) -> bool:
        if self.minimum is not None:
            if value < self.minimum or (self.exclusive_minimum and value == self.minimum):
                return False
        return self.maximum is None or value <= self.maximum

    def range_text(self) -> str:
        if self.zero_means:
            return f"0 ({self.zero_means}) or {self._plain_range_text()}"
        return self._plain_range_text()

    def _plain_range_text(self) -> str:
        low = self.minimum
        if low is not None and self.maximum is not None:
            opening = "(" if self.exclusive_minimum else "["
            return f"in {opening}{low:g}, {self.maximum:g}]"
        if low is not None:
            return f"{'above' if self.exclusive_minimum else 'at least'} {low:g}"
        if self.maximum is not None:
            return f"at most {self.maximum:g}"
        return "any value"


# What the backend needs to turn an image into a surface.
SURFACE_OPTIONS = (
    Option("resolution", "Resolution", int, 256, "Marching-cubes grid points per axis: detail and cost",
           minimum=8, maximum=1024, soft_maximum=512),
    Option("threshold", "Threshold", float, 25.0,
           "Density level of the surface; lower it when nothing comes out", minimum=0.0, soft_maximum=100.0),
    Option("foreground_ratio", "Foreground Ratio", float, 0.85, "Share of the frame the object fills",
           minimum=0.0, maximum=1.0, exclusive_minimum=True, soft_minimum=0.05),
    Option("remove_background", "Remove Background", bool, True,
           "Cut the object out of opaque images (rembg)", flag="--no-remove-bg"),
)

# What the mesh stage (backend/mesh/asset/) makes of the surface. Their defaults are the
# raw surface, untouched, as TripoSR's own run.py gives it; the stage runs only when
# max_faces, texture_size or smooth_iterations asks for something (asset_stage_runs).
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
JOB_OPTIONS = SURFACE_OPTIONS + ASSET_OPTIONS

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


def add_arguments(parser, options, with_defaults: bool = True) -> None:
    """One argparse flag per option. Without defaults, a flag left out is None (the
    headless script then lets the add-on's preferences decide)."""
    for option in options:
        default = option.default if with_defaults else None
        shown = f" (default {option.default})" if with_defaults else ""
        if option.kind is bool:
            # the flag flips the default: --no-remove-bg turns a True default off
            words = option.description[0].lower() + option.description[1:]
            parser.add_argument(option.cli_flag, dest=option.name, default=default,
                                action="store_false" if option.default else "store_true",
                                help=f"do not {words}" if option.default else words)
        elif option.kind is str:
            parser.add_argument(option.cli_flag, dest=option.name, default=default, type=str.upper,
                                choices=[identifier for identifier, _, _ in option.choices],
                                help=option.description + shown)
        else:
            parser.add_argument(option.cli_flag, dest=option.name, default=default, type=option.kind,
                                metavar=option.cli_flag.lstrip("-").upper(), help=option.description + shown)


def value_problem(values: dict, options) -> str | None:
    """The first given value an option refuses, as "--flag: why"; None when all are good."""
    for option in options:
        if values.get(option.name) is not None:
            try:
                option.check(values[option.name])
            except ValueError as error:
                return f"{option.cli_flag}: {error}"
    return None


def values_given(args, options) -> dict:
    """The options a parsed command line set (None means left out)."""
    return {option.name: getattr(args, option.name) for option in options
            if getattr(args, option.name) is not None}
