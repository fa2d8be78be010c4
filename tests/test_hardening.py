"""Bad inputs, bad files and faults outside Blender: each gets a clear message, nothing is lost.

Every case here was found by an adversarial sweep; see the README's troubleshooting
section for the messages.
"""

import os
import signal
import subprocess
import sys
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backend.bridge.errors import BackgroundRemovalError, CheckpointError, InputImageError, ModelNotFoundError
from backend.bridge.options import looks_like_hub_id
from backend.model_folder import check_model_dir
from backend.prepare import framing
from backend.prepare.framing import prepare_image
from backend.triposr.checkpoint import read_state_dict
from backend.triposr.config import load_config

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "backend", "generate", *map(str, args)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300, **kwargs)


def dead_pid() -> int:
    """The pid of a process that has exited (and was reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


# ---------------------------------------------------------------- the command line


def test_inputs_with_the_same_stem_get_their_own_files(tmp_path, tiny_model_dir, flamingo_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "obj.png").write_bytes(flamingo_path.read_bytes())
    done = run_cli(tmp_path / "a" / "obj.png", tmp_path / "b" / "obj.png", "--model", tiny_model_dir,
                   "--out", tmp_path / "out", "--resolution", "32")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["obj.glb", "obj_2.glb"]


@pytest.mark.parametrize("make_out, words", [
    (lambda tmp: (tmp / "file.txt").write_text("x") and tmp / "file.txt", "is a file"),
    (lambda tmp: (tmp / "file.txt").write_text("x") and tmp / "file.txt" / "sub", "cannot be written"),
])
def test_unusable_out_folder_is_refused_before_the_model_runs(tmp_path, tiny_model_dir, flamingo_path, make_out, words):
    done = run_cli(flamingo_path, "--model", tiny_model_dir, "--out", make_out(tmp_path))
    assert done.returncode == 2, done.stderr
    assert words in done.stderr and "Traceback" not in done.stderr
    assert "loaded in" not in done.stderr  # refused before loading the model


def test_full_disk_fails_that_image_with_a_sentence(tmp_path, tiny_model_dir, flamingo_path, monkeypatch, capsys):
    import errno

    from backend import cli
    from backend.mesh import export

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(export, "write_mesh", full_disk)
    status = cli.main(["generate", str(flamingo_path), "--model", str(tiny_model_dir), "--out", str(tmp_path),
                       "--resolution", "32"])
    err = capsys.readouterr().err
    assert status == 1
    assert "could not write" in err and "No space left on device" in err


@pytest.mark.parametrize("value, words", [("nan", "finite"), ("inf", "finite"), ("-1", "at least 0")])
def test_threshold_that_is_no_number_is_refused(tmp_path, tiny_model_dir, flamingo_path, value, words):
    done = run_cli(flamingo_path, "--model", tiny_model_dir, "--out", tmp_path, f"--threshold={value}")
    assert done.returncode == 2
    assert words in done.stderr and "lower the threshold" not in done.stderr


def test_ctrl_c_ends_with_a_sentence_and_leaves_no_temporary_files(tmp_path, tiny_model_dir, flamingo_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "backend", "generate", str(flamingo_path), "--model", str(tiny_model_dir),
         "--out", str(tmp_path), "--resolution", "256"],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    seen = ""
    while "loaded in" not in seen and time.monotonic() < deadline:  # the job has started
        seen += process.stderr.readline()
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "interrupted" in err and "Traceback" not in err
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_killed_run_s_temporary_file_is_removed_by_the_next(tmp_path, tiny_model_dir, flamingo_path):
    stale = tmp_path / f".image_to_3d-tmp-{dead_pid()}-flamingo.glb"
    stale.write_bytes(b"x" * 1000)
    an_hour_ago = time.time() - 3600  # stale: nothing written for longer than any export takes
    os.utime(stale, (an_hour_ago, an_hour_ago))
    # a pid that is dead here may be a live writer on another machine or container: kept while fresh
    fresh = tmp_path / f".image_to_3d-tmp-{dead_pid()}-other.glb"
    fresh.write_bytes(b"y")
    done = run_cli(flamingo_path, "--model", tiny_model_dir, "--out", tmp_path, "--resolution", "32")
    assert done.returncode == 0, done.stderr
    assert not stale.exists() and fresh.exists()


def test_tiny_object_is_made_with_a_warning(tmp_path, tiny_model_dir):
    dot = np.zeros((64, 64, 4), np.uint8)
    dot[30:32, 30:32] = 255
    Image.fromarray(dot).save(tmp_path / "dot.png")
    done = run_cli(tmp_path / "dot.png", "--model", tiny_model_dir, "--out", tmp_path / "out", "--resolution", "32")
    assert "warning" in done.stderr and "pixels" in done.stderr


# ---------------------------------------------------------------- inputs and model folders


def test_a_folder_or_a_link_loop_as_the_image_says_what_it_is(tmp_path):
    with pytest.raises(InputImageError, match="is a folder, not a regular file"):
        prepare_image(tmp_path, 0.85, False)
    loop = tmp_path / "loop.png"
    loop.symlink_to(loop)
    with pytest.raises(InputImageError, match="link loop"):
        prepare_image(loop, 0.85, False)


def test_a_file_given_as_the_model_folder_says_so(tmp_path):
    (tmp_path / "model.ckpt").write_bytes(b"x")
    with pytest.raises(ModelNotFoundError, match="is a file"):
        check_model_dir(tmp_path / "model.ckpt")


def test_a_relative_path_typo_is_a_folder_not_a_hub_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    assert not looks_like_hub_id("models/typo")
    assert looks_like_hub_id("stabilityai/TripoSR")
    from backend.model_folder import resolve_model_dir

    with pytest.raises(ModelNotFoundError, match="does not exist"):
        resolve_model_dir("models/typo")


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 cut short"])
def test_empty_or_truncated_checkpoints_get_our_words_not_torch_s(tmp_path, content):
    path = tmp_path / "model.ckpt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as raised:
        read_state_dict(path)
    message = raised.value.message
    assert "download model.ckpt again" in message
    assert "weights_only" not in message and "PytorchStreamReader" not in message and "mmap" not in message


def test_checkpoint_cut_in_the_middle_of_its_tensors(tmp_path, tiny_model_dir):
    path = tmp_path / "model.ckpt"
    with zipfile.ZipFile(tiny_model_dir / "model.ckpt") as original, zipfile.ZipFile(path, "w") as damaged:
        biggest = max(original.infolist(), key=lambda info: info.file_size)
        for info in original.infolist():  # every entry present, the biggest one cut in half
            body = original.read(info)
            damaged.writestr(info, body[: len(body) // 2] if info is biggest else body)
    with pytest.raises(CheckpointError) as raised:
        read_state_dict(path)
    assert "weights_only" not in raised.value.message


@pytest.mark.parametrize("text, words", [
    ('a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n',
     "aliases"),
    ('a: "${b}"\nb: "${a}"\n', "loop"),
    ('a: "${b}${b}"\nb: "${c}${c}"\nc: "${d}${d}"\nd: "${e}${e}"\ne: "${f}${f}"\nf: "${g}${g}"\ng: "${h}${h}"\n'
     'h: "${i}${i}"\ni: "${j}${j}"\nj: "${k}${k}"\nk: "${l}${l}"\nl: "${m}${m}"\nm: "${n}${n}"\nn: "${o}${o}"\n'
     'o: "${p}${p}"\np: "${q}${q}"\nq: "${r}${r}"\nr: "${s}${s}"\ns: "xxxxxxxxxxxxxxxx"\n', "absurdly long"),
])
def test_hostile_configs_are_refused_quickly(tmp_path, text, words):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    started = time.monotonic()
    with pytest.raises(CheckpointError, match=words):
        load_config(path)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("path, value", [("backbone.num_layers", 10**9), ("tokenizer.plane_size", -4),
                                         ("decoder.n_neurons", "wide"), ("renderer.radius", "inf")])
def test_absurd_sizes_in_the_config_are_refused(tmp_path, tiny_model_dir, path, value):
    import yaml

    document = yaml.safe_load((tiny_model_dir / "config.yaml").read_text())
    node = document
    *parents, leaf = path.split(".")
    for part in parents:
        node = node[part]
    node[leaf] = value
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(document))
    with pytest.raises(CheckpointError):
        load_config(tmp_path / "config.yaml")


# ---------------------------------------------------------------- framing's memory, by construction


@pytest.mark.parametrize("height, width, ratio", [(1, 60000, 0.85), (300, 12000, 0.85), (64, 64, 0.001)])
def test_framing_never_allocates_beyond_its_limit(height, width, ratio):
    rgba = np.full((height, width, 4), 255, np.uint8)
    tracemalloc.start()
    try:
        framed = framing.frame_foreground(rgba, ratio)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    side = framing.MAX_FRAMED_SIDE
    assert framed.shape[0] == framed.shape[1] <= side
    assert peak <= 3 * side * side * 4  # a few framed squares' worth, whatever the input


def test_framing_below_the_limit_is_the_reference_s(flamingo_path):
    rgba = np.asarray(Image.open(flamingo_path).convert("RGBA"))
    crop = framing.visible_crop(rgba)
    framed = framing.frame_foreground(rgba, 0.85)
    assert framed.shape[0] == int(max(crop.shape[:2]) / 0.85)  # unchanged by the bound


# ---------------------------------------------------------------- background removal offline


def test_opaque_image_with_an_alpha_channel_is_told_apart(tmp_path, monkeypatch):
    pytest.importorskip("rembg")
    monkeypatch.setenv("U2NET_HOME", str(tmp_path))  # no model there
    monkeypatch.setattr("socket.getaddrinfo", _no_network)
    opaque_rgba = np.full((32, 32, 4), 200, np.uint8)
    opaque_rgba[..., 3] = 255
    Image.fromarray(opaque_rgba, "RGBA").save(tmp_path / "opaque.png")
    with pytest.raises(BackgroundRemovalError) as raised:
        prepare_image(tmp_path / "opaque.png", 0.85, remove_background=True)
    message = raised.value.message
    assert "alpha channel is fully opaque" in message
    assert "u2net.onnx" in message and str(tmp_path) in message and "Download Model" in message


def test_missing_background_model_is_never_fetched_at_run_time(tmp_path, monkeypatch):
    pytest.importorskip("rembg")
    monkeypatch.setenv("U2NET_HOME", str(tmp_path))
    attempts = []
    monkeypatch.setattr("socket.getaddrinfo", lambda *a, **k: attempts.append(a) or _no_network())
    with pytest.raises(BackgroundRemovalError, match="not in"):
        prepare_image(np.full((32, 32, 3), 200, np.uint8), 0.85, remove_background=True)
    assert attempts == []  # not even a look-up
    assert not any(tmp_path.iterdir())


def _no_network(*args, **kwargs):
    raise OSError("network disabled in this test")
