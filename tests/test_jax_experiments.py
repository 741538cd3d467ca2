"""KERAS_BACKEND=jax: every shipped experiment trains a tiny round, both mixed precisions train
both sides, and the GPU script's dry run passes, in processes where `import tensorflow` fails."""

from __future__ import annotations

import json
import math

import pytest

from tests.conftest import REPO, run_jax

_EVERY_EXPERIMENT = """
import gc, glob, json, math, os, sys
sys.modules["tensorflow"] = None
import gin, keras
from ganpipe import config
# What each experiment leaves is collected before the next (clear_session), and only that: the
# imports are out of the collector's reach.
gc.collect()
gc.freeze()
rows = {}
for path in sorted(glob.glob("gin/*.gin")):
    gin.clear_config()
    keras.utils.clear_session()
    config.parse([path, "gin/testing/tiny.gin"], [])
    trainer = config.make_trainer()
    sides = {"critic": trainer.critic, "generator": trainer.generator}
    start = {k: [w.copy() for w in m.get_weights()] for k, m in sides.items()}
    metrics = trainer.train_round()
    rows[os.path.basename(path)] = {
        "finite": all(math.isfinite(v) for v in metrics.values()),
        "moved": [k for k, m in sides.items()
                  if any((a != b).any() for a, b in zip(start[k], m.get_weights()))],
        "largest_critic_weight": max(float(abs(w).max()) for w in trainer.critic.get_weights()),
    }
# Mixed precision: float16 with dynamic loss scaling (updates whose scaled gradients overflow are
# skipped and the scale halved, so a side may need a few rounds to move), and bfloat16.
for precision in ("mixed_float16", "mixed_bfloat16"):
    gin.clear_config()
    keras.utils.clear_session()
    config.parse(["gin/recommended.gin", "gin/testing/tiny.gin"],
                 [f"Numerics.precision = '{precision}'", "R1Penalty.every = 1"])
    trainer = config.make_trainer()
    sides = {"critic": trainer.critic, "generator": trainer.generator}
    start = {k: [w.copy() for w in m.get_weights()] for k, m in sides.items()}
    finite, rounds = True, 0
    while rounds < 12 and not all(
        any((a != b).any() for a, b in zip(start[k], m.get_weights())) for k, m in sides.items()
    ):
        metrics = trainer.train_round(1)
        finite &= all(math.isfinite(v) for v in metrics.values())
        rounds += 1
    rows[precision] = {
        "dtype": str(trainer.generator.layers[-1].compute_dtype),
        "moved": [k for k, m in sides.items()
                  if any((a != b).any() for a, b in zip(start[k], m.get_weights()))],
        "finite": finite, "penalty": "gradient_penalty" in metrics,
    }
print(json.dumps(rows))
"""


@pytest.mark.slow
def test_every_shipped_experiment_and_both_mixed_precisions_train_on_jax_without_tensorflow():
    result = run_jax("-c", _EVERY_EXPERIMENT)
    assert result.returncode == 0, result.stderr[-4000:]
    rows = json.loads(result.stdout.strip().splitlines()[-1])
    mixed = {k: rows.pop(k) for k in ("mixed_float16", "mixed_bfloat16")}
    assert set(rows) == {p.name for p in (REPO / "gin").glob("*.gin")}
    for experiment, row in rows.items():
        assert row["finite"] and row["moved"] == ["critic", "generator"], (experiment, row)
    # wgan.gin clips every critic weight to [-0.01, 0.01] after each update.
    assert rows["wgan.gin"]["largest_critic_weight"] <= 0.01, rows["wgan.gin"]
    for precision, row in mixed.items():
        assert row["dtype"] == precision.removeprefix("mixed_"), row
        assert row["moved"] == ["critic", "generator"] and row["finite"] and row["penalty"], row


@pytest.mark.slow
def test_the_gpu_script_dry_run_passes_on_a_cpu(tmp_path):
    # The default parts, the recipe's included (README's GPU figures come from it).
    result = run_jax(
        "benchmarks/gpu/run.py", "--dry_run", "--parts=throughput,reference,recommended,wgan",
        f"--out={tmp_path}", timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    results = json.loads((tmp_path / "gpu_results.json").read_text())
    assert not results["environment"]["tensorflow_imported"]
    # throughput: the recipe at 1 and 2 rounds per call (20 on a GPU: JAX's default there)
    assert [(r["rounds_per_call"], r["steps_per_s"] > 0) for r in results["throughput"]] == [
        (1, True),
        (2, True),
    ]
    # reference: the hand-written loop and ganpipe each trained, and were timed, at the batch
    (row,) = results["reference"]
    assert row["batch"] == 8 and row["reference_over_ganpipe"] > 0, row
    for side in ("reference", "ganpipe"):
        assert row[side]["finite"] and row[side]["updates_per_s"] > 0, row
    for part in ("recommended", "wgan"):
        assert results[part]["steps"] > 0, results[part]
        assert math.isfinite(results[part]["eval_fd"]), results[part]
        assert (tmp_path / f"{part}_grid.png").is_file()
