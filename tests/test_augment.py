"""The critic's augmentations (DiffAugment, ADA): each transform against its definition, gradient
flow, the same augmentation on real and generated images, ADA's p update rule, and p's exact
resume."""

import inspect
import json

import numpy as np
import pytest
import tensorflow as tf

from ganpipe import augment, backend, config
from tests.conftest import parse, values

BATCH = 4


def _images(seed, shape=(BATCH, 8, 8, 1)):
    return tf.random.stateless_uniform(shape, seed=[seed, 1], minval=-1.0, maxval=1.0)


def _rng(counter=0):
    return backend.ReplicaRandom(0, counter, backend.AUGMENT, BATCH)


def test_translate_shifts_by_whole_pixels_and_fills():
    x = _images(1)
    out = augment.translate(x, tf.constant([1, 0, -2, 0]), tf.constant([0, 3, 0, 0]), fill=0.5)
    np.testing.assert_array_equal(out[0, 1:], x[0, :-1])
    np.testing.assert_array_equal(out[0, :1], np.full((1, 8, 1), 0.5, np.float32))
    np.testing.assert_array_equal(out[1, :, 3:], x[1, :, :-3])
    np.testing.assert_array_equal(out[2, :-2], x[2, 2:])
    np.testing.assert_array_equal(out[3], x[3])


def test_cutout_blanks_one_rectangle():
    x = _images(2)
    out = augment.cutout(x, tf.constant([4, 0, 7, 3]), tf.constant([4, 0, 7, 5]), (4, 2))
    expected = x.numpy().copy()
    for i, (cy, cx) in enumerate([(4, 4), (0, 0), (7, 7), (3, 5)]):
        expected[i, max(cy - 2, 0) : cy + 2, max(cx - 1, 0) : cx + 1] = 0.0
    np.testing.assert_array_equal(out.numpy(), expected)


def test_flip_and_quarter_turns_match_numpy():
    x = _images(3)
    flipped = augment.flip_x(x, tf.constant([True, False, True, False]))
    np.testing.assert_array_equal(flipped[0], x[0, :, ::-1])
    np.testing.assert_array_equal(flipped[1], x[1])
    turned = augment.rotate90(x, tf.constant([0, 1, 2, 3]))
    for k in range(4):
        np.testing.assert_array_equal(turned[k, ..., 0], np.rot90(x[k, ..., 0].numpy(), k))


def test_color_transforms_follow_their_definitions():
    x = _images(4, (BATCH, 8, 8, 3))
    delta, factor = tf.constant([0.1, -0.2, 0.0, 0.3]), tf.constant([0.5, 1.0, 2.0, 0.0])
    np.testing.assert_allclose(augment.brightness(x, delta), x + delta[:, None, None, None])
    mean = x.numpy().mean(axis=(1, 2, 3), keepdims=True)
    np.testing.assert_allclose(
        augment.contrast(x, factor),
        (x.numpy() - mean) * factor.numpy()[:, None, None, None] + mean, rtol=1e-5, atol=1e-6,
    )  # fmt: skip
    gray = x.numpy().mean(axis=3, keepdims=True)
    np.testing.assert_allclose(augment.saturation(x, tf.zeros(BATCH)), np.repeat(gray, 3, 3),
                               rtol=1e-5, atol=1e-6)  # fmt: skip


def test_resampling_is_exact_for_identity_and_whole_pixel_moves():
    x = _images(5)
    one, zero = tf.ones(BATCH), tf.zeros(BATCH)
    identity = augment.resample(x, augment.affine(one, one, zero, zero, zero))
    np.testing.assert_allclose(identity, x, atol=1e-5)
    # A translation by 2 / 8 of the half-size is one pixel: the same as translate (fill 0).
    moved = augment.resample(x, augment.affine(one, one, zero, zero, one * 0.25))
    np.testing.assert_allclose(moved, augment.translate(x, one * 0 + 1, zero), atol=1e-5)
    # A half turn is the 180-degree rotation.
    half = augment.resample(x, augment.affine(one, one, one * np.pi, zero, zero))
    np.testing.assert_allclose(half, augment.rotate90(x, tf.fill([BATCH], 2)), atol=1e-5)


@pytest.mark.parametrize("make", [augment.DiffAugment, lambda: _built(augment.ADA(initial_p=1.0))])
def test_gradients_flow_through_the_augmentation_to_the_images(make):
    aug, x = make(), _images(6, (BATCH, 28, 28, 1))
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = aug(x, _rng())
        total = tf.reduce_sum(out * _images(7, (BATCH, 28, 28, 1)))
    grad = tape.gradient(total, x)
    assert out.shape == x.shape and grad is not None
    assert np.all(np.isfinite(grad)) and float(tf.reduce_sum(tf.abs(grad))) > 0.0


def _built(ada):
    ada.build()
    return ada


def test_diffaugment_draws_from_the_stream_only():
    aug, x = augment.DiffAugment(), _images(8, (BATCH, 28, 28, 1))
    first, again = aug(x, _rng(0)), aug(x, _rng(0))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, aug(x, _rng(1)))
    assert not np.array_equal(first, x)


def test_ada_at_p_zero_is_the_identity_and_at_p_one_changes_every_image():
    x = _images(9, (BATCH, 28, 28, 1))
    np.testing.assert_array_equal(_built(augment.ADA())(x, _rng()), x)
    out = _built(augment.ADA(initial_p=1.0))(x, _rng()).numpy()
    assert all(not np.allclose(out[i], x[i]) for i in range(BATCH))


def test_every_ada_transform_has_a_named_probability_multiplier():
    parameters = inspect.signature(augment.ADA).parameters
    named = [n for n, p in parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    assert named == list(augment.ADA_TRANSFORMS)
    assert augment.ADA().multipliers == dict.fromkeys(augment.ADA_TRANSFORMS, 1.0)


def test_a_zero_multiplier_turns_its_transform_off():
    x = _images(10, (BATCH, 8, 8, 1))
    off = dict.fromkeys(augment.ADA_TRANSFORMS, 0.0)
    np.testing.assert_array_equal(_built(augment.ADA(initial_p=1.0, **off))(x, _rng()), x)
    # Only x-flips, at p = 1: each image is itself or its mirror (up to the rounding of the
    # colour transforms' identity), and this draw flips some.
    flips = _built(augment.ADA(initial_p=1.0, **{**off, "xflip": 1.0}))(x, _rng()).numpy()
    flipped = [np.allclose(out, x[i, :, ::-1], atol=1e-6) for i, out in enumerate(flips)]
    kept = [np.allclose(out, x[i], atol=1e-6) for i, out in enumerate(flips)]
    assert all(f or k for f, k in zip(flipped, kept)) and any(flipped)
    # Everything but quarter turns: a changed image, but not the default's.
    everything = _built(augment.ADA(initial_p=1.0))(x, _rng()).numpy()
    no_turns = _built(augment.ADA(initial_p=1.0, rotate90=0.0))(x, _rng()).numpy()
    assert not np.array_equal(everything, no_turns) and not np.array_equal(no_turns, x)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), True, "1"])
def test_ada_refuses_a_bad_multiplier(bad):
    with pytest.raises(ValueError, match=r"ADA\.rotate multiplies p"):
        augment.ADA(rotate=bad)


def test_gin_sets_a_transform_multiplier():
    parse("recommended_unconditional", "train.augment = @ADA()", "ADA.rotate90 = 0")
    ada = config.train_setting("augment")
    assert ada.multipliers == {**dict.fromkeys(augment.ADA_TRANSFORMS, 1.0), "rotate90": 0.0}
    assert "rotate90=0.0" in repr(ada)


def _observe(ada, signs_per_update):
    for signs in signs_per_update:
        ada.observe(tf.constant(signs, tf.float32))
    return float(ada.p.numpy())


def test_ada_p_moves_by_the_images_seen_toward_the_target_every_interval():
    ada = _built(augment.ADA(target=0.6, interval=2, speed_images=100, initial_p=0.5))
    # r_t = mean sign over the interval's 8 real scores = 1.0 > 0.6: p rises by 8 / 100.
    assert _observe(ada, [[1.0, 2.0, 3.0, 4.0]]) == 0.5  # not due yet
    assert _observe(ada, [[5.0, 0.1, 9.0, 1.0]]) == pytest.approx(0.58)
    assert float(ada.rt.numpy()) == pytest.approx(1.0)
    # r_t = (2 - 6) / 8 = -0.5 < 0.6: p falls by 8 / 100.
    assert _observe(ada, [[1.0, -1.0, -1.0, -1.0], [1.0, -1.0, -1.0, -1.0]]) == pytest.approx(0.5)
    assert float(ada.rt.numpy()) == pytest.approx(-0.5)


def test_ada_p_stays_within_its_bounds():
    ada = _built(augment.ADA(interval=1, speed_images=2, initial_p=0.0, max_p=0.8))
    assert _observe(ada, [[-1.0, -1.0]]) == 0.0
    assert _observe(ada, [[1.0, 1.0]] * 5) == pytest.approx(0.8)


@pytest.mark.parametrize("kwargs", [{"target": 1.0}, {"interval": 0}, {"initial_p": 2.0},
                                    {"speed_images": 0}])  # fmt: skip
def test_ada_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError, match="ADA"):
        augment.ADA(**kwargs)


@pytest.mark.parametrize("policy", ["colour", "", "color,flip"])
def test_diffaugment_rejects_an_unknown_policy(policy):
    with pytest.raises(ValueError, match="DiffAugment.policy"):
        augment.DiffAugment(policy)


def test_registry_names_and_gin():
    assert isinstance(augment.get("diffaugment"), augment.DiffAugment)
    assert isinstance(augment.get("ada"), augment.ADA)
    with pytest.raises(ValueError, match="Unknown augmentation"):
        augment.get("diffaugmnet")


def test_a_plain_function_becomes_a_stateless_augmentation():
    def flip(images, rng):
        del rng
        return images[:, :, ::-1, :]

    wrapped = augment.get(flip)
    assert isinstance(wrapped, augment.Augmentation) and wrapped.variables == ()
    images = np.arange(8, dtype="float32").reshape(1, 2, 4, 1)
    np.testing.assert_array_equal(np.asarray(wrapped(images, None)), images[:, :, ::-1, :])
    assert wrapped.observe(np.zeros((1, 1))) is None and wrapped.metrics() == {}
    with pytest.raises(ValueError, match="train.augment must be"):
        augment.get(3)


def _trainer(*params, experiment="recommended_unconditional"):
    parse(experiment, "NUM_STEPS = 4", "Intervals.eval_every = 0", *params)
    return config.make_trainer()


def test_the_critic_sees_real_and_fake_through_the_same_augmentation():
    # A string name works as the switch; real and fake both pass through it in the critic update.
    trainer = _trainer("train.augment = 'diffaugment'")
    calls = []
    original = trainer.augment.__call__
    trainer.steps.augment = augment.get(
        lambda images, rng: calls.append(images.shape) or original(images, rng)
    )
    trainer.train_critic()
    assert len(calls) == 2 and calls[0] == calls[1]


def test_ada_p_is_logged_checkpointed_and_resumed_exactly(tmp_path):
    # A fast-moving p (every update, 1 image per unit) so that 4 updates move it. On gan.gin's
    # small models: p's bookkeeping is the same on any critic, and ADA's graph under the
    # recommended recipe's R1 takes three times as long to trace.
    fast = ("train.augment = @ADA()", "ADA.interval = 1", "ADA.speed_images = 64",
            "ADA.target = -0.99", "ADA.initial_p = 0.25", "Intervals.log_every = 1")  # fmt: skip
    straight = _trainer(*fast, experiment="gan")
    straight.fit(str(tmp_path / "straight"))
    p_straight = float(straight.augment.p.numpy())
    assert p_straight != 0.25
    rows = [json.loads(line) for line in (tmp_path / "straight" / "metrics.jsonl").open()]
    logged = [r["augment_p"] for r in rows if "augment_p" in r]
    assert len(logged) == 4 and logged[-1] == pytest.approx(p_straight)
    half = _trainer(*fast, "NUM_STEPS = 2", "Intervals.checkpoint_every = 2", experiment="gan")
    half.fit(str(tmp_path / "resumed"))
    resumed = _trainer(*fast, "Intervals.checkpoint_every = 2", experiment="gan")
    resumed.fit(str(tmp_path / "resumed"))
    assert float(resumed.augment.p.numpy()) == p_straight
    np.testing.assert_array_equal(
        values(resumed.augment.variables), values(straight.augment.variables)
    )
