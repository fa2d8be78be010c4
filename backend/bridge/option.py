"""One job option, declared once: name, type, default, range, words for the user.

Standard library only. The option's families and tasks say where it applies; the lists
of options (every family's, the mesh stage's, Blender's object options) are in
options.py, built from the family registry (backend/families/registry.py).
"""

import math
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
    # Where it applies: model families (FAMILIES' identifiers) and inputs (TASKS); () = all
    families: tuple = ()
    tasks: tuple = ()

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    def applies_to(self, family: str, task: str) -> bool:
        """True when a job of this family and input (task) uses the option."""
        return (not self.families or family in self.families) and (not self.tasks or task in self.tasks)

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
