"""KERAS_BACKEND=jax: every shipped experiment trains a tiny round, and the GPU script's dry run
passes, in processes where `import tensorflow` fails."""

from __future__ import annotations

import json

import pytest

from tests.conftest import REPO, run_jax

_EVERY_EXPERIMENT = """
import glob, json, math, os, sys
sys.modules["tensorflow"] = None
import gin
from ganpipe import config
rows = {}
for path in sorted(glob.glob("gin/*.gin")):
    gin.clear_config()
    config.parse([path, "gin/testing/tiny.gin"], [])
    metrics = config.make_trainer().train_round()
    rows[os.path.basename(path)] = all(math.isfinite(v) for v in metrics.values())
print(json.dumps(rows))
"""


@pytest.mark.slow
def test_every_shipped_experiment_trains_a_tiny_round_on_jax_without_tensorflow():
    result = run_jax("-c", _EVERY_EXPERIMENT)
    assert result.returncode == 0, result.stderr[-4000:]
    rows = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(rows) == {p.name for p in (REPO / "gin").glob("*.gin")}
    assert all(rows.values()), rows


@pytest.mark.slow
def test_the_gpu_script_dry_run_passes_on_a_cpu(tmp_path):
    result = run_jax(
        "benchmarks/gpu/run.py",
        "--dry_run",
        "--parts=throughput,wgan",
        f"--out={tmp_path}",
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    results = json.loads((tmp_path / "gpu_results.json").read_text())
    assert not results["environment"]["tensorflow_imported"]
    assert results["throughput"] and results["wgan"]["steps"] > 0
    assert "eval_fd" in results["wgan"] and (tmp_path / "wgan_grid.png").is_file()
