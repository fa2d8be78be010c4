"""Whether an output folder can take a command's files, found before any model runs.
Standard library only."""

import tempfile
from pathlib import Path


def output_problem(out: Path) -> str | None:
    """Why --out cannot take the meshes, found before the model runs; None when it can."""
    if out.exists() and not out.is_dir():
        return f"--out {out} is a file: give a folder (it is created when missing)"
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        return f"--out {out} cannot be written: {exc.strerror or exc}"
    return None
