"""Exact resume: k rounds, stop, resume for n more == k + n rounds straight (same seed, machine)."""

import json

import keras
import numpy as np
import pytest

import gin
from tests.conftest import make_trainer

pytestmark = pytest.mark.slow


def _trainer(experiment, num_steps, *params):
    gin.clear_config()
    keras.utils.clear_session()
    return make_trainer(
        experiment,
        f"NUM_STEPS = {num_steps}",
        "Intervals.checkpoint_every = 2",
        "Numerics.deterministic = True",
        *params,
    )


def _weights(trainer):
    return [np.array(v) for v in trainer.generator.weights + trainer.critic.weights]


def _rows(run_dir):
    return [json.loads(line) for line in open(run_dir / "metrics.jsonl")]


def _train(experiment, run_dir, num_steps, *params):
    """Trains (or resumes) a tiny run to num_steps; returns its weights and metrics rows."""
    trainer = _trainer(experiment, num_steps, *params)
    trainer.fit(str(run_dir))
    return _weights(trainer), _rows(run_dir)


LOSS_KEYS = ("critic_loss", "generator_loss", "critic_real", "critic_fake")


# Clipping: bit-identical. Gradient penalty: two straight runs need not be. With the DCGAN
# generator's 4608-number latent (a 21M-weight dense layer) they differ by ~1e-7 at step 1 even
# with op determinism on and oneDNN off (it goes with TensorFlow's inter-op threads: one thread
# makes them identical), and the penalty amplifies that (its input gradient jumps where a leaky
# ReLU or max-pool switches; Adam turns a near-zero gradient's rounding into a step of about the
# learning rate), to up to 3.6e-4 in the weights at step 3 (AVX-512 Xeon, oneDNN on or off).
# So the resume is checked, at 1e-4, against the stopped run continued in memory instead of
# stopping (the same starting values; measured at most 9e-8 apart); and against the straight run
# within 1e-4 plus twice its measured distance from that continuation (two straight runs), that
# distance being bounded by NOISE_CAP. A resume that replays another data batch or noise draw
# differs by orders of magnitude more (test_resume_with_the_wrong_data_position_is_caught).
TOLERANCE = {"wgan": 0.0, "wgan_gp": 1e-4}
STEPS = {"wgan": 4, "wgan_gp": 3}
STOP = 2  # the step the run stops and resumes at
NOISE_FLOOR_FACTOR = 2
NOISE_CAP = {"wgan": 0.0, "wgan_gp": 3e-3}


def _stop_continue_and_resume(experiment, tmp_path, before_resume=lambda: None):
    """A run stopped at STOP and resumed to STEPS, the same run continued in memory instead,
    and a straight run: {name: (weights, rows)} for "straight", "continued", "resumed", and the
    stopped run's rows. ``before_resume()`` runs just before the resume."""
    steps = STEPS[experiment]
    runs = {"straight": _train(experiment, tmp_path / "straight", steps)}
    stopped = _trainer(experiment, STOP)
    stopped.fit(str(tmp_path / "resumed"))
    stopped_rows = _rows(tmp_path / "resumed")
    continued = [
        {**stopped.train_steps(1), "step": step} for step in range(STOP + 1, steps + 1)
    ]  # the same calls fit makes (train_rounds over plan_call), without writing or stopping
    runs["continued"] = (_weights(stopped), stopped_rows + continued)
    del stopped
    before_resume()
    runs["resumed"] = _train(experiment, tmp_path / "resumed", steps)
    return runs, stopped_rows


def _assert_close(actual, reference, tolerance, floor=None):
    """actual within ``tolerance`` (relative and absolute) of reference, widened by
    NOISE_FLOOR_FACTOR x the measured distance of ``floor`` from reference: per metric and step
    for the rows, per variable (its largest difference) for the weights."""
    (weights, rows), (ref_weights, ref_rows) = actual, reference
    floor_weights, floor_rows = floor if floor is not None else reference
    assert [r["step"] for r in rows] == [r["step"] for r in ref_rows]
    for row, ref, noise in zip(rows, ref_rows, floor_rows):
        for key in LOSS_KEYS:
            atol = tolerance + NOISE_FLOOR_FACTOR * abs(noise[key] - ref[key])
            assert row[key] == pytest.approx(ref[key], rel=tolerance, abs=atol), (ref["step"], key)
    assert len(weights) == len(ref_weights) == len(floor_weights)
    for w, ref, noise in zip(weights, ref_weights, floor_weights):
        atol = tolerance + NOISE_FLOOR_FACTOR * float(np.max(np.abs(noise - ref), initial=0.0))
        np.testing.assert_allclose(w, ref, rtol=tolerance, atol=atol)


@pytest.mark.parametrize("experiment", ["wgan", "wgan_gp"])  # clipping; gradient penalty
def test_stop_and_resume_matches_a_straight_run(experiment, tmp_path):
    runs, stopped_rows = _stop_continue_and_resume(experiment, tmp_path)
    resumed_rows = runs["resumed"][1]
    assert [r["step"] for r in resumed_rows] == list(range(1, STEPS[experiment] + 1))
    assert resumed_rows[:STOP] == stopped_rows  # the rows before the resume are kept as written
    rtol = TOLERANCE[experiment]
    # The resume is exact: what the stopped run would have done had it not stopped.
    _assert_close(runs["resumed"], runs["continued"], rtol)
    # k + n rounds straight, up to the run-to-run noise measured between two straight runs (the
    # continuation, the straight run): kernel and thread noise the penalty amplifies (above).
    _assert_close(runs["continued"], runs["straight"], NOISE_CAP[experiment])
    _assert_close(runs["resumed"], runs["straight"], rtol, floor=runs["continued"])


def test_resume_with_the_wrong_data_position_is_caught(tmp_path, monkeypatch):
    # Break the property on purpose: a resume that restarts the data stream at batch 0. Both
    # comparisons of the test above fail, and the difference is far above their tolerances.
    from ganpipe.training.inputs import InputStream

    original = InputStream.dataset
    runs, _ = _stop_continue_and_resume(
        "wgan_gp",
        tmp_path,
        before_resume=lambda: monkeypatch.setattr(
            InputStream,
            "dataset",
            lambda self, start_batch, *args: original(self, 0, *args),
        ),
    )
    with pytest.raises(AssertionError):
        _assert_close(runs["resumed"], runs["continued"], TOLERANCE["wgan_gp"])
    with pytest.raises(AssertionError):
        _assert_close(
            runs["resumed"], runs["straight"], TOLERANCE["wgan_gp"], floor=runs["continued"]
        )
    straight_rows, resumed_rows = runs["straight"][1], runs["resumed"][1]
    differences = [
        abs(r["critic_real"] - s["critic_real"]) / abs(s["critic_real"])
        for s, r in zip(straight_rows[STOP:], resumed_rows[STOP:])
    ]
    assert max(differences) > 100 * TOLERANCE["wgan_gp"]


def test_a_different_seed_changes_the_run(tmp_path):
    # Guards the test above against passing because nothing random reaches the losses.
    _, rows_a = _train("wgan_gp", tmp_path / "a", 2)
    gin.clear_config()
    keras.utils.clear_session()
    trainer = make_trainer("wgan_gp", "NUM_STEPS = 2", "train.seed = 7")
    trainer.fit(str(tmp_path / "b"))
    rows_b = [json.loads(line) for line in open(tmp_path / "b" / "metrics.jsonl")]
    assert rows_a[0]["critic_loss"] != rows_b[0]["critic_loss"]
