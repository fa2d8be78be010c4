"""The benchmark's smallest case, as a smoke test: it runs, reports, and its check passes.

No timing is asserted: timings from a test run mean nothing.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_smallest_case_runs_and_meshes_match(tiny_model_dir, flamingo_path, tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "bench.py"), "--model", str(tiny_model_dir), "--image", str(flamingo_path),
         "--device", "cpu", "--resolutions", "32", "--repeats", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    for mode in ("fast@32", "reference@32"):
        warm = report["runs"][mode]["warm"]
        for stage in ("prepare", "encode", "field", "surface", "colors", "total"):
            assert warm[stage]["median"] > 0
    assert "transfer" in report["runs"]["fast@32"]["warm"]
    check = report["runs"]["check@32"]
    assert check["ok"] and check["vertices"][0] == check["vertices"][1]
    assert "meshes MATCH" in done.stdout


def test_asset_benchmark_smallest_case_times_both_jobs(tiny_model_dir, flamingo_path, tmp_path):
    out = tmp_path / "asset.json"
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "asset_bench.py"), "--model", str(tiny_model_dir), "--image",
         str(flamingo_path), "--resolution", "32", "--repeats", "1", "--faces", "500", "--texture", "128",
         "--no-quality", "--json", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    raw, asset = report["runs"]["raw"], report["runs"]["asset"]
    assert "cleanup" not in raw and raw["colors"]["median"] > 0
    for step in ("cleanup", "decimate", "unwrap", "rasterize", "bake_color", "bake_normals", "asset_stage"):
        assert asset[step]["median"] > 0, step
    assert report["ratio"]["median"] > 0 and report["mesh"]["asset_faces"] <= 500
    assert "asset job / raw job" in done.stdout


def test_gpu_asset_suite_tiny_cpu_mode_reports_every_section(tiny_model_dir, flamingo_path, tmp_path):
    """bench/gpu_asset_suite.py, which the lead runs on an H200: on the CPU the flash
    attention runs emulated (graphs skipped); every section reports, the standard and
    flash kernels meet the equivalence tolerance against the tiny reference numbers, the
    bfloat16 encoder does not."""
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "gpu_asset_suite.py"), "--model", str(tiny_model_dir),
         "--image", str(flamingo_path), "--reference", str(tiny_model_dir / "reference.npz"), "--device", "cpu",
         "--repeats", "1", "--resolutions", "32", "--faces", "500", "--texture", "128", "--no-quality",
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    report = json.loads((tmp_path / "suite.json").read_text())
    assert "errors" not in report, report.get("errors")
    encoder = report["encoder"]
    assert set(encoder) >= {"standard", "attention=flash", "standard (again)"}
    for name in ("standard", "attention=flash"):
        assert encoder[name]["verdict"] is True and encoder[name]["vs_float64_rel"] < 1e-5, name
    assert encoder["bfloat16 encoder (--precision)"]["verdict"] is False
    assert report["best_exact_kernels"] in encoder
    jobs = report["jobs"]
    assert {"raw 32 float32", "raw 32 bfloat16", "asset 32 float32"} <= set(jobs)
    assert all(jobs[label]["faces"] <= 500 for label in jobs if label.startswith("asset"))
    assert set(report["stage"]) == {"checkpoint", "figure", "bumpy sphere"}
    assert "### Encoder" in (tmp_path / "suite.md").read_text() and "encoder profile" in done.stdout


@pytest.mark.slow
def test_server_benchmark_smallest_case_runs_and_results_are_exact(tiny_model_dir, flamingo_path):
    """bench/serve_bench.py, which the lead runs on a GPU: one server (batching on; the
    concurrency below the batch size skipped), two clients, every result equal to the
    in-process mesh."""
    pytest.importorskip("ray.serve")
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "serve_bench.py"), "--model", str(tiny_model_dir), "--device", "cpu",
         "--resolution", "32", "--clients", "2", "--max-batch", "2", "--concurrency", "1", "2", "--jobs", "4",
         "--sequential", "2",
         "--images", str(flamingo_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    report = json.loads(done.stdout.splitlines()[-1])
    (run,) = report["runs"]
    (row,) = run["concurrent"]
    assert row["failed"] == 0 and row["exact"] == row["jobs"] == 4 and row["images_per_s"] > 0
    assert run["concurrency"] == 2 and run["sequential_exact"] == 2 and "| auto | 2 | 2 | 2 |" in done.stdout


def test_shap_e_benchmark_smallest_case_reports_seconds_per_object(tmp_path):
    """bench/shap_e_bench.py, which the lead runs on a GPU: tiny random folders, both tasks,
    the estimate from fewer steps, and the table row."""
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "shap_e_bench.py"), "--device", "cpu", "--size", "tiny",
         "--models", str(tmp_path), "--steps", "8", "--estimate-from-steps", "2", "--resolution", "32", "--repeats", "1"],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    jobs = [r for r in records if r["event"] == "job"]
    assert [j["task"] for j in jobs] == ["text", "image"] and all(j["steps_run"] == 2 for j in jobs)
    assert all(j["seconds_per_prior_call"] > 0 and j["estimated_seconds"] > 0 for j in jobs)
    summaries = [r for r in records if r["event"] == "summary"]
    assert [s["seconds_per_object_median"] > 0 for s in summaries] == [True, True]
    assert "| text | cpu | float32 | 8 | 32 |" in done.stdout and "(estimated)" in done.stdout
    # diffusers' own pipeline ran on the same models; no ratio, since its grid is 128, not 32
    assert [r["task"] for r in records if r["event"] == "reference"] == ["text", "image"]
    assert "reference_over_ours" not in summaries[0] and "needs --resolution 128" in done.stdout
