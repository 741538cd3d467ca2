"""The GPU script's parts for other sizes and the user's own data (benchmarks/gpu/run.py
--parts=resolution,fmnist64) pass their dry run on a CPU, where `import tensorflow` fails. A
module of its own, so that the other test process can run it beside the GPU script's first
parts (tests/test_jax_experiments.py)."""

from __future__ import annotations

import json

from tests.conftest import run_jax


def test_the_gpu_scripts_resolution_and_64x64_parts_pass_their_dry_run(tmp_path):
    result = run_jax(
        "benchmarks/gpu/run.py", "--dry_run", "--parts=resolution,fmnist64", "--cpu_fd_64=1e9",
        f"--out={tmp_path}", timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    results = json.loads((tmp_path / "gpu_results.json").read_text())
    assert not results["environment"]["tensorflow_imported"]
    # resolution: every dry-run size, with its costs and rate
    assert [(r["side"], r["batch"]) for r in results["resolution"]] == [(16, 8)]
    for row in results["resolution"]:
        assert row["generator_macs"] > 0 and row["critic_parameters"] > 0, row
        assert row["images_per_s"] > 0, row
    # fmnist64: its own evaluator, an FD curve, and the first point at or below the target
    assert results["fmnist64_setup"]["evaluator"]["kind"] == "classifier"
    curve, summary = results["fmnist64_curve"], results["fmnist64"]
    assert curve and summary["steps"] > 0 and "eval_fd" in summary
    assert summary["target_fd"] == 1e9 and summary["reached_target"] == curve[0]
    assert (tmp_path / "fmnist64_grid.png").is_file()
