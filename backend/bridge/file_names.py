"""File names that mean one file on every system: case-insensitive comparison and
Windows' reserved device names. Standard library only (both worlds use it).

macOS and Windows treat `Chair.glb` and `chair.glb` (and the composed and decomposed
forms of an accented letter) as one file, so names are compared by name_key everywhere,
also on Linux: an output folder may be shared with, or copied to, such a system.
Windows opens a device, not a file, for `con`, `nul`, `com1`, ... whatever the
extension, so such a stem gets a trailing underscore.
"""

import os
import unicodedata

_DEVICES = {"con", "prn", "aux", "nul", "conin$", "conout$", "clock$"}
_NUMBERED = ("com", "lpt")
_NUMBERS = set("0123456789") | {"\u00b9", "\u00b2", "\u00b3"}  # Windows counts COM\u00b9 .. COM\u00b3 too


def name_key(name: str) -> str:
    """What decides whether two names are one file on a case-insensitive system."""
    return unicodedata.normalize("NFC", name).casefold()


def is_reserved(stem: str) -> bool:
    """True for a Windows device name: the part before the first dot, spaces at its end ignored."""
    base = stem.split(".", 1)[0].rstrip(" ").casefold()
    if base in _DEVICES:
        return True
    return len(base) == 4 and base[:3] in _NUMBERED and base[3] in _NUMBERS


def safe_stem(stem: str) -> str:
    """`stem`, or `stem_` when Windows would take it for a device."""
    return f"{stem}_" if is_reserved(stem) else stem


def folder_keys(folder: str) -> set:
    """name_key of every entry in `folder` (empty when it cannot be listed)."""
    try:
        return {name_key(entry) for entry in os.listdir(folder)}
    except OSError:
        return set()


def free_stem(folder: str, stem: str, suffixes, taken=()) -> str:
    """`stem`, else `stem_2`, `stem_3`, ...: the first for which no name stem + suffix is in
    `folder` or in `taken` (names compared by name_key). The stem is made safe first."""
    stem = safe_stem(stem)
    used = folder_keys(folder) | {name_key(name) for name in taken}
    candidate, number = stem, 1
    while any(name_key(candidate + suffix) in used for suffix in suffixes):
        number += 1
        candidate = f"{stem}_{number}"
    return candidate


def unwritable_folder(folder: str) -> str | None:
    """Why files cannot be written into `folder` (made when missing), or None when they can:
    found before any work, so that no run ends with nothing saved."""
    import tempfile

    if os.path.exists(folder) and not os.path.isdir(folder):
        return f"{folder} is a file, not a folder"
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        return exc.strerror or str(exc)
    return None
