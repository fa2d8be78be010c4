"""Validate and build the extension zip with Blender's own extension tool.

    python tools/build_extension.py [--output-dir dist] [--split-platforms] [--blender-ext PATH]

Uses `blender_ext.py` from the bpy wheel (or from a Blender install found through
`--blender-ext`), never a home-made zipper, so the package is exactly what Blender's
installer expects. Prints the built zip paths, one a line, and exits non-zero on failure.
"""

import argparse
import glob
import importlib.util
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
EXT_TOOL = os.path.join("scripts", "addons_core", "bl_pkg", "cli", "blender_ext.py")


def find_blender_ext() -> Path:
    """blender_ext.py of the running Blender, or of the bpy wheel importable here."""
    if "bpy" in sys.modules:  # running inside Blender: use its own scripts folder
        import bpy

        candidate = Path(bpy.utils.system_resource("SCRIPTS")) / EXT_TOOL.split(os.sep, 1)[1]
        if candidate.is_file():
            return candidate
    spec = importlib.util.find_spec("bpy")
    if spec is None or spec.origin is None:
        raise SystemExit("bpy is not installed here: pass --blender-ext PATH/TO/blender_ext.py")
    # The wheel keeps its data in bpy/<major.minor>/scripts/...
    matches = sorted(glob.glob(os.path.join(os.path.dirname(spec.origin), "*", EXT_TOOL)))
    if not matches:
        raise SystemExit(f"blender_ext.py not found beside {spec.origin}")
    return Path(matches[-1])


def read_manifest(source: Path) -> dict:
    with open(source / "blender_manifest.toml", "rb") as handle:
        return tomllib.load(handle)


def run_tool(tool: Path, *args: str) -> None:
    # The tool only needs the standard library; run it with this interpreter.
    completed = subprocess.run([sys.executable, str(tool), *args], capture_output=True, text=True)
    output = (completed.stdout + completed.stderr).strip()
    if completed.returncode != 0:
        raise SystemExit(f"blender_ext.py {args[0]} failed:\n{output}")
    if output:
        print(output, file=sys.stderr)


def build(source: Path = REPO_ROOT, output_dir: Path | None = None, split_platforms: bool | None = None,
          tool: Path | None = None) -> list[Path]:
    """Validate, then build; returns the zip files written."""
    source = Path(source).resolve()
    output_dir = Path(output_dir or source / "dist").resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    tool = Path(tool) if tool else find_blender_ext()
    manifest = read_manifest(source)
    if split_platforms is None:
        # Platform-specific wheels make one zip per platform smaller; without wheels one zip.
        split_platforms = bool(manifest.get("wheels")) and bool(manifest.get("platforms"))
    started = time.time()
    run_tool(tool, "validate", str(source))
    args = ["build", "--source-dir", str(source), "--output-dir", str(output_dir)]
    if split_platforms:
        args.append("--split-platforms")
    run_tool(tool, *args)
    stem = f"{manifest['id']}-{manifest['version']}"
    # Split builds add a platform suffix; keep only the zips this run wrote.
    built = sorted(p for p in output_dir.glob(f"{stem}*.zip") if p.stat().st_mtime >= started - 1)
    if not built:
        raise SystemExit(f"no {stem}*.zip appeared in {output_dir}")
    return built


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=REPO_ROOT, help="folder with blender_manifest.toml")
    parser.add_argument("--output-dir", type=Path, default=None, help="default: <source>/dist")
    parser.add_argument("--split-platforms", action="store_true", default=None,
                        help="one zip per platform (default: only when the manifest lists wheels and platforms)")
    parser.add_argument("--blender-ext", type=Path, default=None, help="path to Blender's blender_ext.py")
    args = parser.parse_args(argv)
    for path in build(args.source, args.output_dir, args.split_platforms, args.blender_ext):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
