"""The family seam in the bridge (standard library only): options declared once with the
family and input they apply to, the CLI flags families share, prompts and the protocol."""

import argparse
import io

import numpy as np
import pytest

from backend.bridge import protocol, wire
from backend.bridge.errors import BadRequest, PromptError, WrongModelError
from backend.bridge.job_client import generate_request
from backend.bridge.options import (
    JOB_OPTIONS,
    add_arguments,
    check_family_takes,
    flags_not_used,
    options_for,
    values_given,
)
from backend.bridge.prompts import MAX_PROMPT_CHARACTERS, clean_prompt, prompt_name, read_prompts
from backend.bridge.settings import GenerateSettings
from backend.shap_e.declaration import SHAP_E
from backend.triposr.declaration import TRIPOSR


def names(options):
    return [option.name for option in options]


def test_defaults_follow_shap_e_examples():
    settings = GenerateSettings(family=SHAP_E)
    assert (settings.text_guidance, settings.image_guidance) == (15.0, 3.0)
    assert (settings.steps, settings.seed, settings.shap_e_resolution) == (64, 0, 128)
    assert GenerateSettings().family == TRIPOSR  # old callers and old clients keep TripoSR
    assert GenerateSettings.from_dict({"resolution": 64}).family == TRIPOSR


@pytest.mark.parametrize("changes", [
    {"family": "DALL_E"}, {"steps": 0}, {"steps": 5000}, {"shap_e_resolution": 8}, {"shap_e_resolution": 512},
    {"text_guidance": -1.0}, {"seed": -1}, {"seed": 2**31}, {"steps": "64"},
])
def test_bad_values_are_refused(changes):
    with pytest.raises(ValueError):
        GenerateSettings(**changes)


def test_each_job_sees_its_own_options():
    mesh_stage = ["max_faces", "texture_size", "normal_map", "smooth_iterations", "keep_floaters"]  # every family's
    assert names(options_for(SHAP_E, "text", JOB_OPTIONS)) == [
        "family", "text_guidance", "steps", "seed", "shap_e_resolution", *mesh_stage]
    assert names(options_for(SHAP_E, "image", JOB_OPTIONS)) == [
        "family", "image_guidance", "steps", "seed", "shap_e_resolution", *mesh_stage]
    assert names(options_for(TRIPOSR, "image", JOB_OPTIONS)) == [
        "family", "resolution", "threshold", "foreground_ratio", "remove_background", *mesh_stage]


def parse(argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser, JOB_OPTIONS)
    return parser.parse_args(argv)


def test_families_share_flags():
    args = parse(["--guidance", "9", "--resolution", "96", "--seed", "4"])
    assert values_given(args, JOB_OPTIONS, SHAP_E, "text") == {"text_guidance": 9.0, "seed": 4, "shap_e_resolution": 96}
    assert values_given(args, JOB_OPTIONS, SHAP_E, "image") == {"image_guidance": 9.0, "seed": 4, "shap_e_resolution": 96}
    assert values_given(parse(["--resolution", "96"]), JOB_OPTIONS, TRIPOSR, "image") == {"resolution": 96}
    assert values_given(parse([]), JOB_OPTIONS, TRIPOSR, "image") == {}  # the settings' defaults apply
    assert parse(["--family", "shap_e"]).family == SHAP_E


def test_flags_another_family_uses_are_named():
    args = parse(["--threshold", "10", "--steps", "8", "--resolution", "64"])
    assert flags_not_used(args, JOB_OPTIONS, SHAP_E, "text") == ["--threshold"]
    assert flags_not_used(args, JOB_OPTIONS, TRIPOSR, "image") == ["--steps"]


def test_help_shows_each_family_default():
    parser = argparse.ArgumentParser()
    add_arguments(parser, JOB_OPTIONS)
    text = parser.format_help()
    assert "256 (TripoSR)" in text and "128 (Shap-E)" in text and "15.0 (Shap-E, text)" in text


def test_which_family_takes_which_input():
    check_family_takes(SHAP_E, "text")
    check_family_takes(SHAP_E, "image")
    check_family_takes(TRIPOSR, "image")
    with pytest.raises(WrongModelError, match="TripoSR makes objects from images, not from a text prompt: choose Shap-E"):
        check_family_takes(TRIPOSR, "text")


def test_prompts_are_cleaned_and_checked():
    assert clean_prompt("  a red\n\n chair\t") == "a red chair"
    for bad, words in [("", "empty"), ("  \n", "empty"), (3, "must be text"), ("a\x00b", "control character"),
                       ("x" * (MAX_PROMPT_CHARACTERS + 1), "characters long")]:
        with pytest.raises(PromptError, match=words) as caught:
            clean_prompt(bad)
        assert caught.value.code == "bad_prompt"


def test_prompts_file(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_bytes(b"\xef\xbb\xbfa red chair\n\n# a comment\n  a blue\tteapot  \nbad \xff\xfe bytes\nnul\x00here\n")
    lines = read_prompts(path)
    assert [(line.number, line.text, line.problem) for line in lines[:2]] == [(1, "a red chair", None), (4, "a blue teapot", None)]
    assert (lines[2].number, lines[2].problem) == (5, "not UTF-8 text")
    assert lines[3].number == 6 and "control character" in lines[3].problem
    (tmp_path / "empty.txt").write_text("\n# nothing\n")
    with pytest.raises(PromptError, match="holds no prompts"):
        read_prompts(tmp_path / "empty.txt")
    with pytest.raises(PromptError, match="no such prompts file"):
        read_prompts(tmp_path / "missing.txt")


def test_prompt_names():
    assert prompt_name("A red, wooden chair!") == "A red wooden chair"
    assert len(prompt_name("word " * 40)) <= 40 and prompt_name("???") == "prompt"


def round_trip(request):
    stream = io.BytesIO()
    protocol.send(stream, request)
    stream.seek(0)
    return protocol.parse(wire.FrameReader(stream).read(), protocol.REQUESTS)


def test_a_text_job_crosses_the_wire():
    request = generate_request(GenerateSettings(family=SHAP_E, seed=5), prompt=" a  red chair ")
    parsed = round_trip(request)
    assert parsed.prompt == "a red chair" and parsed.task == "text" and parsed.job_settings().seed == 5
    assert parsed.image_bytes is None and parsed.image_pixels is None


def test_text_jobs_are_refused_where_they_cannot_run():
    with pytest.raises(WrongModelError, match="TripoSR makes objects from images"):
        generate_request(GenerateSettings(), prompt="a chair")
    with pytest.raises(PromptError, match="empty"):
        generate_request(GenerateSettings(family=SHAP_E), prompt="   ")
    with pytest.raises(ValueError, match="exactly one"):
        generate_request(GenerateSettings(family=SHAP_E), prompt="a chair", image_bytes=b"png")
    both = protocol.Generate(job_id="j1", settings=GenerateSettings(family=SHAP_E).to_dict(), prompt="a chair",
                             image_bytes=np.zeros(4, np.uint8))
    with pytest.raises(BadRequest, match=r"exactly one of an image or a prompt, not both \(Make-It-3D takes a prompt"):
        both.check()
    empty = protocol.Generate(job_id="j2", settings=GenerateSettings(family=SHAP_E).to_dict(), prompt="")
    with pytest.raises(PromptError):
        empty.check()
