"""bench/make_it_3d_bench.py, which the lead runs on an H200: its tiny CPU mode."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_tiny_cpu_mode_reports_both_cases(tmp_path):
    out = tmp_path / "bench.json"
    run = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "make_it_3d_bench.py"), "--device", "cpu", "--size", "tiny",
         "--models", str(tmp_path / "models"), "--paper-sample", "3", "2", "--json", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-3000:]
    records = {r["case"]: r for r in json.loads(out.read_text())["records"]}
    ours, paper = records["triposr"], records["paper"]
    assert "error" not in ours and "error" not in paper
    assert (ours["coarse_iterations"], ours["refine_iterations"]) == (8, 4)
    for record in (ours, paper):
        assert record["coarse_s_per_iteration"] > 0 and record["texture_s_per_iteration"] > 0
        assert {"depth", "coarse", "surface", "texture"} <= set(record["stage_seconds"])
    # the paper's total is extrapolated from 3 + 2 iterations to 7000 + 3000
    assert paper["estimated_for"] == [7000, 3000]
    assert paper["estimated_seconds"] > 7000 * paper["coarse_s_per_iteration"]
    assert "| paper | 7000 + 3000 |" in run.stdout and "| triposr | 8 + 4 |" in run.stdout
