"""Exports never replace a file the run did not make (issue 24): companions beside an
input picture, files of earlier runs, names that differ only in letter case, Windows
device names; staging folders that are unique across machines and never removed while
their writer lives. Through the CLI where the case names it, else atomic_files itself."""

import errno
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backend.bridge import atomic_files
from backend.bridge.file_names import free_stem, is_reserved, safe_stem

REPO_ROOT = Path(__file__).resolve().parents[1]
PICTURE = REPO_ROOT / "assets" / "example.png"  # the project's own picture (RGBA)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "backend", "generate", *map(str, args)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)


def snapshot(folder: Path) -> dict:
    return {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def backdate(path: Path, seconds: float = 3600):
    then = time.time() - seconds
    os.utime(path, (then, then))


# ---------------------------------------------------------------- the command line


def test_a_textured_obj_never_overwrites_an_input_picture_beside_it(tmp_path, tiny_model_dir):
    """chair_color.png beside chair.png, --out the input folder: chair's texture must not
    land on chair_color.png, and chair_color.png is then read as it was."""
    for name in ("chair.png", "chair_color.png", "chair_normal.png"):
        shutil.copy(PICTURE, tmp_path / name)
    (tmp_path / "chair_normal.png").write_bytes(PICTURE.read_bytes()[:-1] + b"\0")  # another file
    inputs = snapshot(tmp_path)
    done = run_cli(tmp_path / "chair.png", tmp_path / "chair_color.png", "--model", tiny_model_dir, "--out", tmp_path,
                   "--resolution", "32", "--faces", "300", "--texture", "64", "--format", "obj")
    assert done.returncode == 0, done.stderr
    after = snapshot(tmp_path)
    assert {name: after[name] for name in inputs} == inputs  # every input byte for byte
    made = sorted(set(after) - set(inputs))
    assert made == ["chair_2.mtl", "chair_2.obj", "chair_2_color.png", "chair_2_normal.png",
                    "chair_color.mtl", "chair_color.obj", "chair_color_color.png", "chair_color_normal.png"]
    assert "map_Kd chair_2_color.png" in after["chair_2.mtl"].decode()
    assert "mtllib chair_2.mtl" in after["chair_2.obj"].decode()
    assert "chair_2.obj" in done.stdout


def test_an_earlier_file_of_the_same_name_is_kept(tmp_path, tiny_model_dir):
    shutil.copy(PICTURE, tmp_path / "chair.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "chair.glb").write_bytes(b"the user's own file")
    done = run_cli(tmp_path / "chair.png", "--model", tiny_model_dir, "--out", out, "--resolution", "32")
    assert done.returncode == 0, done.stderr
    assert (out / "chair.glb").read_bytes() == b"the user's own file"
    assert (out / "chair_2.glb").stat().st_size > 1000
    assert f"-> {out / 'chair_2.glb'}" in done.stdout


def test_names_differing_only_in_letter_case_are_two_files_everywhere(tmp_path, tiny_model_dir):
    for folder, name in (("a", "Chair.png"), ("b", "chair.png")):
        (tmp_path / folder).mkdir()
        shutil.copy(PICTURE, tmp_path / folder / name)
    out = tmp_path / "out"
    done = run_cli(tmp_path / "a" / "Chair.png", tmp_path / "b" / "chair.png", "--model", tiny_model_dir,
                   "--out", out, "--resolution", "32")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["Chair.glb", "chair_2.glb"]


def test_windows_device_names_are_never_written(tmp_path, tiny_model_dir):
    for name in ("con.png", "NUL.png", "com1.png"):
        shutil.copy(PICTURE, tmp_path / name)
    out = tmp_path / "out"
    done = run_cli(*(tmp_path / n for n in ("con.png", "NUL.png", "com1.png")), "--model", tiny_model_dir,
                   "--out", out, "--resolution", "32", "--format", "ply")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["NUL_.ply", "com1_.ply", "con_.ply"]


@pytest.mark.parametrize("stem, reserved", [
    ("con", True), ("CON", True), ("con.tar", True), ("con ", True), ("aux", True), ("com9", True),
    ("lpt\u00b9", True), ("conout$", True), ("console", False), ("com10", False), ("icon", False), ("nul_", False),
])
def test_reserved_names(stem, reserved):
    assert is_reserved(stem) == reserved
    assert safe_stem(stem) == (stem + "_" if reserved else stem)


def test_a_free_stem_avoids_every_companion_in_any_case(tmp_path):
    (tmp_path / "Chair_Color.png").write_bytes(b"x")
    suffixes = [".obj", ".mtl", "_color.png", "_normal.png"]
    assert free_stem(str(tmp_path), "chair", [".glb"]) == "chair"
    assert free_stem(str(tmp_path), "chair", suffixes) == "chair_2"
    assert free_stem(str(tmp_path), "chair", suffixes, taken={"CHAIR_2.obj"}) == "chair_3"


# ---------------------------------------------------------------- publishing


def staged(folder: Path, names: dict):
    staging = atomic_files.Staging(str(folder)).__enter__()
    for name, data in names.items():
        Path(staging.path, name).write_bytes(data)
    return staging


@pytest.mark.parametrize("links", [True, False], ids=["hard links", "no hard links"])
def test_publish_never_replaces_and_publishes_nothing_when_a_name_is_taken(tmp_path, monkeypatch, links):
    if not links:  # FAT, some network shares: the name is reserved exclusively, then filled
        def no_links(*args, **kwargs):
            raise PermissionError(errno.EPERM, "Operation not permitted")

        monkeypatch.setattr(os, "link", no_links)
    (tmp_path / "mesh.MTL").write_bytes(b"the user's")
    staging = staged(tmp_path, {"mesh.obj": b"obj", "mesh.mtl": b"mtl"})
    try:
        with pytest.raises(FileExistsError):
            staging.publish("mesh.obj")
        assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["mesh.MTL"]
        staging.clear()
        Path(staging.path, "other.obj").write_bytes(b"obj")
        staging.publish("other.obj")
    finally:
        staging.__exit__(None, None, None)
    assert (tmp_path / "other.obj").read_bytes() == b"obj" and (tmp_path / "mesh.MTL").read_bytes() == b"the user's"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_name_taken_between_the_check_and_the_publish_is_not_replaced(tmp_path, monkeypatch):
    """Another run (another machine) takes the name while this one writes: the later
    one moves on to the next free name, and the first one's file stays."""
    from backend.mesh import export
    from backend.mesh.export import write_mesh

    real = export._write_colored

    def meanwhile(target, *args):
        real(target, *args)
        if not (tmp_path / "mesh.ply").exists():
            (tmp_path / "mesh.ply").write_bytes(b"another run's")

    monkeypatch.setattr(export, "_write_colored", meanwhile)
    import numpy as np

    vertices = np.eye(3, dtype=np.float32)
    path = write_mesh(tmp_path / "mesh.ply", vertices, np.array([[0, 1, 2]]), np.full((3, 4), 200, np.uint8))
    assert path == tmp_path / "mesh_2.ply"
    assert (tmp_path / "mesh.ply").read_bytes() == b"another run's"


# ---------------------------------------------------------------- staging folders

HOLD = """
import sys, time
sys.path.insert(0, {repo!r})
from backend.bridge.atomic_files import Staging
with Staging({folder!r}) as staging:
    open(staging.path + "/half.obj", "w").write("v 0 0 0")
    print(staging.path, flush=True)
    time.sleep(600)
"""


def test_staging_names_are_random_not_the_process_id(tmp_path):
    with atomic_files.Staging(str(tmp_path)) as first, atomic_files.Staging(str(tmp_path)) as second:
        names = [os.path.basename(first.path), os.path.basename(second.path)]
    assert names[0] != names[1]
    assert all(name.startswith(atomic_files.TEMPORARY_PREFIX) and str(os.getpid()) not in name for name in names)


def test_a_live_writer_s_staging_is_never_removed_and_a_dead_one_s_is(tmp_path):
    """Two runs share an output folder (two containers, both pid 1; two hosts): the live
    one's staging stays however old it looks, and goes once its writer is gone."""
    writer = subprocess.Popen([sys.executable, "-c", HOLD.format(repo=str(REPO_ROOT), folder=str(tmp_path))],
                              stdout=subprocess.PIPE, text=True)
    try:
        live = Path(writer.stdout.readline().strip())
        backdate(live)
        atomic_files.remove_stale(str(tmp_path))
        assert (live / "half.obj").exists()
    finally:
        writer.kill()
        writer.wait()
    atomic_files.remove_stale(str(tmp_path))
    assert not live.exists()


def test_a_fresh_staging_folder_named_by_a_pid_dead_here_is_kept(tmp_path):
    """Earlier versions named staging folders by pid and removed those whose pid was not
    running here: a live run in another container or on another host lost its files."""
    other = tmp_path / f".image_to_3d-tmp-{dead_pid()}-export"
    other.mkdir()
    (other / "chair.obj").write_text("v 0 0 0")
    atomic_files.remove_stale(str(tmp_path))
    assert (other / "chair.obj").exists()
    backdate(other)
    atomic_files.remove_stale(str(tmp_path))
    assert not other.exists()
