"""Text prompts: what a text-to-3D job accepts, and prompts files (one object per line).

Standard library only: Blender, the CLI, the worker and the server say the same about a
bad prompt before any model runs. How many tokens the model reads is the model's
business (backend/shap_e/inputs.py adds a note when a prompt is cut short).
"""

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from .errors import PromptError

# Far beyond what a text encoder reads (Shap-E's CLIP: 75 tokens, a few hundred
# characters); a limit so that a pasted file cannot travel as one prompt.
MAX_PROMPT_CHARACTERS = 1000
# refused before it is cleaned at all (whitespace runs count here): cleaning is linear, and this bounds it
MAX_RAW_PROMPT_CHARACTERS = 64 * 1024
MAX_PROMPT_BYTES = 4 * MAX_RAW_PROMPT_CHARACTERS  # UTF-8: at most 4 bytes a character
# letters (category Lo, So) that show nothing: Hangul fillers, the braille blank
INVISIBLE_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
MAX_PROMPTS_FILE_BYTES = 8 << 20
EXAMPLE = '"a red wooden chair"'


def clean_prompt(prompt) -> str:
    """The prompt with runs of whitespace (newlines too) made single spaces; PromptError
    when it is not text, is empty (or invisible), holds control characters or is too long."""
    if not isinstance(prompt, str):
        raise PromptError(f"the prompt must be text, got {type(prompt).__name__}")
    if len(prompt) > MAX_RAW_PROMPT_CHARACTERS:  # before any work on it: a pasted file costs nothing
        raise PromptError(_too_long(len(prompt)))
    text = " ".join(prompt.split())
    if not text:
        raise PromptError(f"the prompt is empty: describe the object to make, e.g. {EXAMPLE}")
    control = next((c for c in text if unicodedata.category(c) in ("Cc", "Cs")), None)
    if control is not None:
        raise PromptError(f"the prompt holds a control character ({ascii(control)}): give plain text")
    if not any(_visible(c) for c in text):
        raise PromptError(f"the prompt has no visible characters (only {ascii(text[:8])[1:-1]}): describe the "
                          f"object to make, e.g. {EXAMPLE}")
    if len(text) > MAX_PROMPT_CHARACTERS:
        raise PromptError(_too_long(len(text)))
    return text


def _too_long(length: int) -> str:
    return (f"the prompt is {length:,} characters long, more than the {MAX_PROMPT_CHARACTERS:,} allowed "
            "(the model reads only its first few dozen words anyway)")


def _visible(character: str) -> bool:
    """A letter, digit, punctuation mark or symbol that shows: not a format character
    (zero-width space, byte-order mark, joiners), a lone combining mark or a filler."""
    return unicodedata.category(character)[0] in "LNPS" and character not in INVISIBLE_LETTERS


@dataclass(frozen=True)
class PromptLine:
    """One line of a prompts file that asks for an object."""

    number: int  # 1-based line number
    text: str  # the cleaned prompt, or the raw line when it is bad
    problem: str | None = None  # why this line cannot be used, or None

    @property
    def label(self) -> str:
        return f"line {self.number}"


def read_prompts(path) -> list[PromptLine]:
    """Every line of a prompts file that asks for an object, in order. Blank lines and
    lines starting with # are skipped; a line that is not UTF-8 or not a usable prompt
    comes back with its problem, so a batch reports it and runs the others."""
    path = Path(path).expanduser()
    try:
        if path.stat().st_size > MAX_PROMPTS_FILE_BYTES:
            raise PromptError(f"{path} is larger than {MAX_PROMPTS_FILE_BYTES >> 20} MiB: is it a prompts file?")
        data = path.read_bytes()
    except FileNotFoundError:
        raise PromptError(f"{path}: no such prompts file") from None
    except IsADirectoryError:
        raise PromptError(f"{path} is a folder, not a prompts file (one prompt per line)") from None
    except OSError as exc:
        raise PromptError(f"{path} cannot be read: {exc.strerror or exc}") from None
    lines = []
    for number, raw in enumerate(data.splitlines(), start=1):
        try:
            line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            lines.append(PromptLine(number, raw.decode("utf-8", "replace").strip(), "not UTF-8 text"))
            continue
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            lines.append(PromptLine(number, clean_prompt(line)))
        except PromptError as exc:
            lines.append(PromptLine(number, line.strip(), exc.message))
    if not lines:
        raise PromptError(f"{path} holds no prompts: write one object description per line")
    return lines


def prompt_name(prompt: str, limit: int = 40) -> str:
    """A short name for what a prompt made (object and file names): its first words."""
    words = re.sub(r"[^\w\s-]", "", prompt, flags=re.UNICODE).split()
    name = ""
    for word in words:
        if name and len(name) + 1 + len(word) > limit:
            break
        name = f"{name} {word}".strip()
    return name[:limit] or "prompt"
