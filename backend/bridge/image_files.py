"""Whether a path names an image file that can be read: one check, with one set of words.

Standard library only: the worker checks a job's path with it before decoding, and the
server client before reading the file to send it, so both say the same about a bad one.
"""

from pathlib import Path

from .errors import InputImageError


def checked_path(path: Path) -> Path:
    """The path, if it names a readable regular file; InputImageError saying what it is if not."""
    path = Path(path)
    try:
        path.stat()
    except OSError as exc:
        if path.is_symlink():
            raise InputImageError(f"{path} is a broken link or a link loop: point it at an image file") from None
        if isinstance(exc, FileNotFoundError):
            raise InputImageError(f"{path}: no such file") from None
        raise InputImageError(f"{path} cannot be read: {exc.strerror or exc}") from None
    if path.is_dir():
        raise InputImageError(f"{path} is a folder, not a regular file: give an image file (the batch "
                              "operator and the headless script take folders)")
    if not path.is_file():
        raise InputImageError(f"{path} is not a regular file (a device or a pipe?)")
    return path
