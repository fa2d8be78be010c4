"""The official checkpoint layout at full size (random weights): strict load, one forward pass.

Starts from the reference's prepared image (`pre`, of ../shared/examples/robot.png): the
preparation itself is compared with the reference in test_equivalence.py."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from backend.triposr.checkpoint import load_tripo

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fullsize_dir(tmp_path_factory, fullsize_data_dir):
    tools = fullsize_data_dir
    out = tmp_path_factory.mktemp("fullsize")
    subprocess.run(
        [sys.executable, str(tools / "make_test_checkpoint.py"), "--keys", str(tools / "checkpoint_keys.json"),
         "--config", str(tools / "config.yaml"), "--out", str(out), "--seed", "2", "--density-bias", "17.7"],
        check=True, capture_output=True,
    )
    return out


def test_official_layout_loads_strictly_and_matches_reference(fullsize_dir, fullsize_data_dir):
    reference = np.load(fullsize_data_dir / "reference.npz")
    model = load_tripo(fullsize_dir)
    assert sum(p.numel() for p in model.parameters()) == 419_275_628
    codes = model.encode(torch.from_numpy(reference["pre"]).float().div(255).unsqueeze(0))
    assert codes.shape == (1, 3, 40, 64, 64)
    np.testing.assert_allclose(codes.numpy(), reference["codes"], rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        density, color = model.field.density_and_color(codes[0], torch.from_numpy(reference["pts"]))
    np.testing.assert_allclose(density.numpy(), reference["pts_density"][:, 0], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(color.numpy(), reference["pts_color"], rtol=1e-4, atol=1e-4)
