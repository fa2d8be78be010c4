"""Shared by the tests inside real Blender: Blender's user folders in a temporary place,
and scenarios run in their own processes (bpy's state is process-global)."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = Path(__file__).with_name("scenarios.py")
SCRIPT = REPO / "scripts" / "image_to_3d.py"
RESOLUTION = 32

# found, not imported: Blender runs in the subprocesses
HAVE_BPY = importlib.util.find_spec("bpy") is not None
NEEDS_BPY = pytest.mark.skipif(not HAVE_BPY, reason="the bpy wheel (Blender as a Python module) is not installed")


def blender_environment(home: Path, **extra) -> dict:
    """Blender's user folders in `home`, so nothing touches ~/.config/blender."""
    env = dict(os.environ)
    for name in ("RESOURCES", "CONFIG", "SCRIPTS"):
        env[f"BLENDER_USER_{name}"] = str(home / name.lower())
    env.update({f"I3D_{key.upper()}": str(value) for key, value in extra.items()})
    return env


def run_scenario(name: str, work: Path, env: dict, script: Path = SCENARIOS) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, str(script), name, str(work)], env=env, cwd=work,
                          capture_output=True, text=True, timeout=240)
    facts_path = work / f"{name}.json"
    assert done.returncode == 0 and facts_path.is_file(), f"scenario {name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return json.loads(facts_path.read_text())
