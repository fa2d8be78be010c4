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
        if not self._in_range(value):
            raise ValueError(f"{self.name} must be {self.range_text()}, got {value!r}")
        return value

    def _in_range(self, value) -> bool:
        if self.minimum is not None:
            if value < self.minimum or (self.exclusive_minimum and value == self.minimum):
                return False
        return self.maximum is None or value <= self.maximum

    def range_text(self) -> str:
        low = self.minimum
        if low is not None and self.maximum is not None:
            opening = "(" if self.exclusive_minimum else "["
            return f"in {opening}{low:g}, {self.maximum:g}]"
        if low is not None:
            return f"{'above' if self.exclusive_minimum else 'at least'} {low:g}"
        if self.maximum is not None:
            return f"at most {self.maximum:g}"
        return "any value"


# What the backend needs to turn an image into a mesh (GenerateSettings' fields).
JOB_OPTIONS = (
    Option("resolution", "Resolution", int, 256, "Marching-cubes grid points per axis: detail and cost",
           minimum=8, maximum=1024, soft_maximum=512),
    Option("threshold", "Threshold", float, 25.0,
           "Density level of the surface; lower it when nothing comes out", minimum=0.0, soft_maximum=100.0),
    Option("foreground_ratio", "Foreground Ratio", float, 0.85, "Share of the frame the object fills",
           minimum=0.0, maximum=1.0, exclusive_minimum=True, soft_minimum=0.05),
    Option("remove_background", "Remove Background", bool, True,
           "Cut the object out of opaque images (rembg)", flag="--no-remove-bg"),
)

# How the result becomes a Blender object; the backend never sees these.
OBJECT_OPTIONS = (
    Option("shading", "Shading", str, "SMOOTH", "Smooth or flat shading of the new object",
           choices=(("SMOOTH", "Smooth", "Smooth shading"), ("FLAT", "Flat", "Flat shading"))),
    Option("rest_on_cursor", "Rest on Cursor", bool, True, "Put the lowest point at the 3D cursor's height",
           flag="--no-rest-on-cursor"),
)

ALL_OPTIONS = JOB_OPTIONS + OBJECT_OPTIONS

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
                                help=option.description + shown)


def values_given(args, options) -> dict:
    """The options a parsed command line set (None means left out)."""
    return {option.name: getattr(args, option.name) for option in options
            if getattr(args, option.name) is not None}
