"""Class-conditional GANs: conditioned models, labels through the pipeline and the updates, fake
labels, resume, refusals, per-class sample grids and conditional accuracy."""

import json
import re
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

import gin
from ganpipe import backend, config
from ganpipe.data import ImageArray, make_training_dataset
from ganpipe.models import conditioning, factories
from ganpipe.settings import Latent
from ganpipe.training import callbacks, writers
from tests import prestarted
from tests.conftest import FASHION_MNIST_DIR, REPO, make_trainer, parse, train_run

MLP_BLOCKS = [
    {"block": "dense", "units": 16, "activation": "leaky_relu"},
    {"block": "dense", "units": 4 * 4},
    {"block": "reshape", "target_shape": (4, 4, 1)},
]
CRITIC_BLOCKS = [
    {"block": "flatten"},
    {"block": "dense", "units": 6, "activation": "leaky_relu"},
    {"block": "dense", "units": 1},
]


def _labels(*values):
    return np.array(values, np.int32)


# Models.


@pytest.mark.parametrize(
    "code", ["concat", {"class_name": "concat", "config": {"embedding_dim": 5}}]
)
def test_concat_generator_output_depends_on_the_label(code):
    generator = factories.build_generator(
        latent_dim=8, blocks=MLP_BLOCKS, conditioning=code, num_classes=3
    )
    assert [tuple(t.shape) for t in generator.inputs] == [(None, 8), (None,)]
    noise = np.random.default_rng(0).normal(size=(1, 8)).astype(np.float32)
    noise = np.repeat(noise, 3, axis=0)
    images = np.asarray(generator([noise, _labels(0, 1, 2)]))
    again = np.asarray(generator([noise, _labels(0, 1, 2)]))
    np.testing.assert_array_equal(images, again)
    for a, b in ((0, 1), (0, 2), (1, 2)):
        assert np.max(np.abs(images[a] - images[b])) > 1e-4, (a, b)


def test_one_hot_concat_generator_is_a_dense_layer_on_noise_and_one_hot_label():
    generator = factories.build_generator(
        latent_dim=3,
        blocks=[{"block": "dense", "units": 2}],
        conditioning="concat",
        num_classes=4,
    )
    dense = [layer for layer in generator.layers if isinstance(layer, keras.layers.Dense)][0]
    kernel, bias = (np.asarray(w) for w in dense.weights)
    assert kernel.shape == (3 + 4, 2)
    noise = np.array([[0.5, -1.0, 2.0]], np.float32)
    for label in range(4):
        expected = np.concatenate([noise[0], np.eye(4)[label]]) @ kernel + bias
        got = np.asarray(generator([noise, _labels(label)]))[0]
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_projection_critic_score_is_psi_of_phi_plus_embedding_dot_phi():
    critic = factories.build_critic(
        input_shape=(4, 4, 1), blocks=CRITIC_BLOCKS, conditioning="projection", num_classes=3
    )
    dense = [layer for layer in critic.layers if isinstance(layer, keras.layers.Dense)]
    embedding = critic.get_layer("critic_embedding")
    (w1, b1), (w2, b2) = [[np.asarray(w, np.float64) for w in d.weights] for d in dense]
    table = np.asarray(embedding.embeddings, np.float64)
    assert table.shape == (3, 6)
    # Embeddings start small; make the inner-product term as large as the rest.
    table = np.random.default_rng(1).normal(size=table.shape)
    embedding.embeddings.assign(table.astype(np.float32))
    images = np.random.default_rng(2).uniform(size=(6, 4, 4, 1)).astype(np.float32)
    labels = _labels(0, 1, 2, 2, 1, 0)
    pre = images.reshape(6, 16).astype(np.float64) @ w1 + b1
    phi = np.where(pre > 0, pre, 0.2 * pre)  # leaky ReLU, slope 0.2
    psi = phi @ w2 + b2
    expected = psi[:, 0] + np.sum(table[labels] * phi, axis=1)
    got = np.asarray(critic([images, labels]))[:, 0]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    # The label term is not negligible: another label changes the score.
    other = np.asarray(critic([images, (labels + 1) % 3]))[:, 0]
    assert np.min(np.abs(other - got)) > 1e-3


def test_concat_critic_sees_the_label_as_constant_image_channels():
    critic = factories.build_critic(
        input_shape=(4, 4, 1), blocks=CRITIC_BLOCKS, conditioning="concat", num_classes=3
    )
    joined = keras.Model(critic.inputs, critic.get_layer("critic_image_and_label").output)
    images = np.random.default_rng(0).uniform(size=(2, 4, 4, 1)).astype(np.float32)
    out = np.asarray(joined([images, _labels(2, 0)]))
    assert out.shape == (2, 4, 4, 4)
    np.testing.assert_array_equal(out[..., :1], images)
    np.testing.assert_array_equal(out[0, ..., 1:], np.broadcast_to([0, 0, 1], (4, 4, 3)))
    np.testing.assert_array_equal(out[1, ..., 1:], np.broadcast_to([1, 0, 0], (4, 4, 3)))
    first = np.asarray(critic([images, _labels(2, 0)]))
    second = np.asarray(critic([images, _labels(1, 1)]))
    assert np.all(first != second)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"conditioning": "concat"}, "needs the number of classes: set train.num_classes"),
        ({"num_classes": 3}, "build_critic.conditioning is None"),
        (
            {
                "conditioning": {"class_name": "projection", "config": {"embedding_dim": 4}},
                "num_classes": 3,
            },
            "leave its embedding_dim unset",
        ),
        ({"conditioning": "projetcion", "num_classes": 3}, "Did you mean 'projection'"),
        (
            {
                "conditioning": "projection",
                "num_classes": 3,
                "blocks": [
                    *CRITIC_BLOCKS[:-1],
                    {"block": "dense", "units": 1, "activation": "tanh"},
                ],
            },
            "last block is psi",
        ),
        (
            {
                "conditioning": "projection",
                "num_classes": 3,
                "blocks": [{"block": "conv", "filters": 2, "kernel_size": 3}, CRITIC_BLOCKS[-1]],
            },
            "phi",
        ),
    ],
)
def test_bad_critic_conditioning_is_refused(kwargs, message):
    args = {"input_shape": (4, 4, 1), "blocks": CRITIC_BLOCKS, **kwargs}
    with pytest.raises(ValueError, match=message):
        factories.build_critic(**args)


def test_generator_registry_has_no_projection():
    with pytest.raises(ValueError, match="Unknown generator conditioning 'projection'"):
        factories.build_generator(
            latent_dim=4, blocks=MLP_BLOCKS, conditioning="projection", num_classes=3
        )


def test_conditional_generator_saves_and_loads(tmp_path):
    generator = factories.build_generator(
        latent_dim=4, blocks=MLP_BLOCKS, conditioning="concat", num_classes=3
    )
    path = str(tmp_path / "g.keras")
    generator.save(path)
    loaded = keras.saving.load_model(path)
    noise = np.ones((3, 4), np.float32)
    np.testing.assert_array_equal(
        np.asarray(loaded([noise, _labels(0, 1, 2)])),
        np.asarray(generator([noise, _labels(0, 1, 2)])),
    )


# Config swap.


def _bindings(text):
    return dict(re.findall(r"^([\w./]+) = (.+)$", text, flags=re.M))


def test_the_conditional_switch_changes_only_the_conditioning_and_the_models_inputs():
    gan = _bindings(parse("gan", tiny=False))
    cgan = _bindings(parse("cgan", tiny=False))
    changed = {k for k in gan.keys() | cgan.keys() if gan.get(k) != cgan.get(k)}
    assert changed == {
        "train.num_classes",
        "build_generator.conditioning",
        "build_critic.conditioning",
        "Intervals.num_samples",
    }
    # The seed's 128-number latent (tiny.gin shrinks it).
    plain = make_trainer("gan", "LATENT_DIM = 128")
    conditional = make_trainer("cgan", "LATENT_DIM = 128")
    assert len(plain.generator.inputs) == len(plain.critic.inputs) == 1
    assert len(conditional.generator.inputs) == len(conditional.critic.inputs) == 2
    # The unconditional path: the seed GAN's models and a batch of images, not pairs.
    assert plain.generator.count_params() == 234_512
    assert plain.critic.count_params() == 201_217
    assert isinstance(next(iter(plain.dataset)), tf.Tensor)
    images, labels = next(iter(conditional.dataset))
    assert images.shape == (8, 28, 28, 1) and labels.dtype == tf.int32
    # One-hot label: 10 more noise inputs and 10 more image channels.
    assert conditional.generator.count_params() == 234_512 + 10 * 256
    assert conditional.critic.count_params() == 201_217 + 10 * 784 * 256


# Labels through the data pipeline and into the critic's real update.


def _label_coded_images(num=64, classes=3, seed=0):
    """Images whose every pixel is 100 * label: the label can be read off the image."""
    labels = np.random.default_rng(seed).integers(0, classes, num).astype(np.int64)
    images = np.broadcast_to(
        (labels * 100).astype(np.uint8)[:, None, None, None], (num, 28, 28, 1)
    ).copy()
    return ImageArray(images, labels, "label-coded test images")


@pytest.mark.parametrize("replicas", [1, 2, 4])
def test_pipeline_keeps_each_label_with_its_image_in_every_replica_block(replicas):
    data = _label_coded_images()
    kwargs = dict(images=data, batch_size=8, seed=3, with_labels=True)
    whole = list(make_training_dataset(**kwargs).take(12))
    blocks = list(make_training_dataset(**kwargs, replicas=replicas).take(12 * replicas))
    for batch, (images, labels) in enumerate(whole):
        np.testing.assert_array_equal(np.asarray(images)[:, 0, 0, 0] * 255 / 100, labels)
        joined = [blocks[batch * replicas + r] for r in range(replicas)]
        np.testing.assert_array_equal(np.concatenate([b[0] for b in joined]), images)
        np.testing.assert_array_equal(np.concatenate([b[1] for b in joined]), labels)
    # The image order is the unconditional stream's.
    plain = list(make_training_dataset(images=data, batch_size=8, seed=3).take(12))
    for (images, _), other in zip(whole, plain):
        np.testing.assert_array_equal(images, other)


def _label_checking_critic(*, input_shape, num_classes):
    """Scores (255/100 * mean(image) - label)^2: 0 for every real image seen with its own label.
    A dense layer on zeros (output and gradient always 0) gives the optimizer a variable."""
    del num_classes
    image = keras.Input(input_shape)
    label = keras.Input((), dtype="int32")
    mean = keras.ops.mean(image, axis=(1, 2, 3))
    mismatch = keras.ops.square(mean * 2.55 - keras.ops.cast(label, "float32"))[:, None]
    zeros = keras.layers.Flatten()(image) * 0.0
    dense = keras.layers.Dense(1, use_bias=False)(zeros)
    return keras.Model([image, label], keras.layers.Add()([dense, mismatch]))


def _label_trainer(data=_label_coded_images):
    parse("cgan")
    return config.make_trainer(data=data, critic=_label_checking_critic)


def test_the_real_update_scores_each_real_image_with_its_own_label():
    trainer = _label_trainer()
    for _ in range(3):
        metrics = trainer.train_critic()
        assert metrics["critic_real"] == pytest.approx(0.0, abs=1e-9)
        assert metrics["critic_fake"] > 0.01  # random labels on generated images


def test_labels_out_of_step_with_their_images_are_caught():
    # The check above can fail: labels moved one image along give real scores far from 0.
    def shifted():
        data = _label_coded_images()
        return ImageArray(data.images, np.roll(data.labels, 1), data.source)

    trainer = _label_trainer(shifted)
    assert trainer.train_critic()["critic_real"] > 0.1


# Fake labels.


def test_fake_labels_are_uniform_over_the_classes_and_reproducible_from_the_seed():
    def draws(seed, counters=100):
        trainer = make_trainer("cgan", "BATCH_SIZE = 64", f"train.seed = {seed}")
        steps, out = trainer.steps, {0: [], 1: []}
        for counter in range(counters):
            trainer.critic_optimizer.iterations.assign(counter)
            trainer.generator_optimizer.iterations.assign(counter)
            out[0].append(steps.fake_labels(trainer.critic_optimizer.iterations, 0).numpy())
            out[1].append(steps.fake_labels(trainer.generator_optimizer.iterations, 1).numpy())
        return {side: np.concatenate(v) for side, v in out.items()}

    first, again, other = draws(5), draws(5), draws(6)
    for side in (0, 1):
        np.testing.assert_array_equal(first[side], again[side])
        assert np.mean(first[side] != other[side]) > 0.8
        counts = np.bincount(first[side], minlength=10)
        assert len(counts) == 10 and first[side].min() == 0
        expected = len(first[side]) / 10
        chi2 = float(np.sum((counts - expected) ** 2 / expected))
        assert chi2 < 27.9, counts  # 9 degrees of freedom, p = 0.001
    # The critic's fakes and the generator update draw different numbers at the same counter.
    assert np.mean(first[0] != first[1]) > 0.8


def test_fake_labels_use_their_own_stream_and_replicas_split_one_global_draw():
    seed, counter, batch = 7, tf.constant(3, tf.int64), 8
    labels = backend.ReplicaRandom(seed, counter, backend.LABELS, batch)
    noise = backend.ReplicaRandom(seed, counter, backend.CRITIC_NOISE, batch)
    assert backend.LABELS not in (
        backend.CRITIC_NOISE,
        backend.GENERATOR_NOISE,
        backend.PENALTY,
    )
    assert backend.LABELS < backend.STREAMS
    whole = labels.integers([batch, 2], 10).numpy()
    expected = tf.random.stateless_uniform(
        [batch, 2], seed=[seed, 3 * 4 + 3], minval=0, maxval=10, dtype=tf.int32
    ).numpy()
    np.testing.assert_array_equal(whole, expected)
    # The noise stream is what it was: the same seed formula, stream 0.
    np.testing.assert_array_equal(
        noise.normal([batch, 2]).numpy(),
        tf.random.stateless_normal([batch, 2], seed=[seed, 3 * 4 + 0]).numpy(),
    )


_TWO_REPLICAS = """
import json, sys
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from ganpipe import config
rows = {}
for strategy in ("default", "mirrored"):
    config.parse(["gin/cgan_projection.gin", "gin/testing/tiny.gin"], [
        f"train.strategy = '{strategy}'", "Schedule.share_noise = False",
        "Schedule.critic_steps = 2", "train.penalty = @GradientPenalty()"])
    trainer = config.make_trainer()
    rows[strategy] = {
        "replicas": trainer.strategy.num_replicas_in_sync,
        "losses": [trainer.train_round() for _ in range(2)],
        "weights": [np.asarray(v).tolist() for v in trainer.critic.weights],
    }
print("RESULT " + json.dumps(rows))
"""


@pytest.mark.slow
def test_two_replicas_train_the_one_replica_conditional_model():
    # Each replica gets its rows of the real batch with their labels and of the fake labels.
    result = prestarted.run(["-c", _TWO_REPLICAS], cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(x for x in result.stdout.splitlines() if x.startswith("RESULT "))
    rows = json.loads(line[len("RESULT ") :])
    one, two = rows["default"], rows["mirrored"]
    assert (one["replicas"], two["replicas"]) == (1, 2)
    for a, b in zip(one["losses"], two["losses"]):
        for key in a:
            assert b[key] == pytest.approx(a[key], rel=2e-5, abs=1e-6), key
    for a, b in zip(one["weights"], two["weights"]):
        np.testing.assert_allclose(np.array(b), np.array(a), rtol=1e-4, atol=1e-6)


# Whole runs: every side path (separate updates, fused rounds, penalty) and exact resume.


@pytest.mark.slow
@pytest.mark.parametrize(
    "experiment, params",
    [
        ("cgan", ()),  # shared noise and labels
        ("cgan_projection", ("Schedule.share_noise = False", "Schedule.critic_steps = 2")),
    ],
)
def test_a_conditional_run_resumes_exactly(experiment, params, tmp_path):
    straight_weights, straight_rows = train_run(experiment, tmp_path / "straight", 4, *params)
    train_run(experiment, tmp_path / "resumed", 2, *params)
    resumed_weights, resumed_rows = train_run(experiment, tmp_path / "resumed", 4, *params)
    assert [r["step"] for r in resumed_rows] == [1, 2, 3, 4]
    for straight, resumed in zip(straight_rows, resumed_rows):
        for key in ("critic_loss", "generator_loss", "critic_real", "critic_fake"):
            assert resumed[key] == straight[key], (straight["step"], key)
    for a, b in zip(straight_weights, resumed_weights):
        np.testing.assert_array_equal(b, a)


def test_fused_rounds_equal_single_rounds_in_a_conditional_run():
    def run(rounds_per_call):
        gin.clear_config()
        keras.utils.clear_session()
        trainer = make_trainer(
            "cgan_projection",
            "Schedule.share_noise = False",
            f"Numerics.rounds_per_call = {rounds_per_call}",
            "Intervals.log_every = 4",
        )
        trainer.train_steps(4)
        return [np.array(v) for v in trainer.generator.weights + trainer.critic.weights]

    for a, b in zip(run(1), run(4)):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)


def test_conditional_gradient_penalty_and_non_finite_skip_run(tmp_path):
    trainer = make_trainer(
        "cgan",
        "Schedule.share_noise = False",
        "train.loss = 'wasserstein'",
        "train.penalty = @GradientPenalty()",
        "Numerics.non_finite = 'skip'",
    )
    row = trainer.fit(str(tmp_path / "run"))
    assert row["step"] == 2 and np.isfinite(row["gradient_penalty"])


def test_conditional_dcgan_models_keep_the_frozen_sides_batch_norm_statistics():
    # The DCGAN generator has batch norm: its frozen call (stateless) takes [noise, labels] too.
    trainer = make_trainer(
        "dcgan",
        "train.num_classes = 10",
        "build_generator.conditioning = 'concat'",
        "build_critic.conditioning = 'projection'",
    )
    before = [np.array(v) for v in trainer.generator.non_trainable_variables]
    trainer.train_critic()
    for old, variable in zip(before, trainer.generator.non_trainable_variables):
        np.testing.assert_array_equal(old, np.asarray(variable))
    metrics = trainer.train_round(2)
    assert all(np.isfinite(v) for v in metrics.values())


# Refusals.


def test_a_conditional_run_on_data_without_labels_is_refused():
    parse("cgan")
    data = _label_coded_images()
    unlabelled = ImageArray(data.images, None, "unlabelled test images")
    with pytest.raises(ValueError, match="has no labels.*train.num_classes = None"):
        config.make_trainer(data=lambda: unlabelled)


def test_labels_outside_num_classes_are_refused():
    # The synthetic source's labels are 0..2.
    with pytest.raises(ValueError, match=r"labels run from 0 to 2.*train.num_classes = 3"):
        make_trainer("cgan", "train.num_classes = 2")


def test_num_classes_without_conditioning_is_refused():
    with pytest.raises(ValueError, match="build_generator.conditioning is None"):
        make_trainer("gan", "train.num_classes = 10")
    with pytest.raises(ValueError, match="needs the number of classes"):
        make_trainer("cgan", "train.num_classes = None")


# Per-class sample grids.


class _FakeGenerator:
    """Image value 0.1 * label + 0.02 * noise[0]: the cell says which row and column it is in."""

    def __init__(self, latent_dim=2, num_classes=None, images=None, follow_label=True):
        self.inputs = [types.SimpleNamespace(shape=(None, latent_dim))]
        if num_classes is not None:
            self.inputs.append(types.SimpleNamespace(shape=(None,)))
        self.images, self.follow_label = images, follow_label
        self.rng = np.random.default_rng(0)

    def __call__(self, inputs, training=False):
        noise, labels = inputs
        labels = np.asarray(labels)
        if self.images is not None:
            by_class = self.images
            if not self.follow_label:
                labels = self.rng.integers(0, len(by_class), len(labels))
            return np.stack([by_class[k][self.rng.integers(len(by_class[k]))] for k in labels])
        values = 0.1 * labels + 0.02 * np.asarray(noise)[:, 0]
        return np.broadcast_to(values[:, None, None, None], (len(labels), 3, 3, 1)).astype(
            np.float32
        )


def test_per_class_grid_has_one_row_per_class_and_one_noise_per_column(tmp_path):
    noise = np.array([[0.0, 9.0], [1.0, 9.0], [2.0, 9.0], [3.0, 9.0]], np.float32)
    grid = writers.SampleGrid(str(tmp_path), noise, (0.0, 1.0), num_classes=5)
    path = grid(_FakeGenerator(num_classes=5), step=7)
    assert path.endswith("step_000007.png")
    png = tf.io.decode_png(open(path, "rb").read()).numpy()
    pad, size = 2, 3
    assert png.shape == (5 * (size + pad) + pad, 4 * (size + pad) + pad, 1)
    for row in range(5):
        for column in range(4):
            top, left = pad + row * (size + pad), pad + column * (size + pad)
            cell = png[top : top + size, left : left + size]
            expected = (0.1 * row + 0.02 * column) * 255  # cells differ by 5 or more
            assert np.all(np.abs(cell - expected) <= 1), (row, column)


@pytest.mark.parametrize(("count", "shape"), [(100, (10, 10)), (64, (8, 8)), (10, (3, 4))])
def test_an_unconditional_grid_is_as_square_as_its_count_allows(tmp_path, count, shape):
    class Blank:
        def __call__(self, noise, training=False):
            return np.zeros((len(noise), 3, 3, 1), np.float32)

    noise = np.zeros((count, 2), np.float32)
    path = writers.SampleGrid(str(tmp_path), noise, (0.0, 1.0))(Blank(), step=1)
    png = tf.io.decode_png(open(path, "rb").read()).numpy()
    rows, columns = shape
    assert png.shape == (rows * 5 + 2, columns * 5 + 2, 1)


def test_a_conditional_run_writes_per_class_grids(tmp_path):
    trainer = make_trainer("cgan", "Intervals.num_samples = 20")  # 10 classes x 2 columns
    trainer.fit(str(tmp_path / "run"))
    png = tf.io.decode_png(open(tmp_path / "run" / "samples" / "step_000002.png", "rb").read())
    assert png.shape == (10 * 30 + 2, 2 * 30 + 2, 1)


# Conditional accuracy.


@pytest.fixture(scope="module")
def fashion_mnist_evaluation():
    if not FASHION_MNIST_DIR.is_dir():
        pytest.skip("apt-get install dataset-fashion-mnist")
    from ganpipe.data import load_images

    test = load_images(source="fashion_mnist", split="test")
    by_class = [test.images[test.labels == k].astype(np.float32) / 255.0 for k in range(10)]
    evaluation = callbacks.Scorer(
        "fashion_mnist",
        latent=Latent(),
        value_range=(0.0, 1.0),
        num_samples=2000,
        seed=0,
        num_classes=10,
    )
    return evaluation, by_class


def test_conditional_accuracy_of_a_generator_that_draws_the_requested_class(
    fashion_mnist_evaluation,
):
    evaluation, by_class = fashion_mnist_evaluation
    scores = evaluation(_FakeGenerator(num_classes=10, images=by_class))
    accuracy = evaluation.evaluator.spec.test_accuracy  # 0.9252
    assert scores["eval_conditional_accuracy"] == pytest.approx(accuracy, abs=0.03)


def test_conditional_accuracy_of_a_generator_that_ignores_the_label(fashion_mnist_evaluation):
    evaluation, by_class = fashion_mnist_evaluation
    scores = evaluation(_FakeGenerator(num_classes=10, images=by_class, follow_label=False))
    assert scores["eval_conditional_accuracy"] == pytest.approx(0.1, abs=0.03)


def test_conditional_accuracy_needs_the_evaluators_classes():
    if not FASHION_MNIST_DIR.is_dir():
        pytest.skip("apt-get install dataset-fashion-mnist")
    evaluation = callbacks.Scorer(
        "fashion_mnist",
        latent=Latent(),
        value_range=(0.0, 1.0),
        num_samples=100,
        seed=0,
        num_classes=3,
    )
    assert evaluation.labels is None


def test_evaluation_labels_are_uniform_and_fixed_by_the_seed():
    from ganpipe.eval import evaluation

    labels = evaluation.class_labels(20000, 10, seed=0)
    np.testing.assert_array_equal(labels, evaluation.class_labels(20000, 10, seed=0))
    counts = np.bincount(labels, minlength=10)
    assert counts.min() > 1800 and counts.max() < 2200
    assert not np.array_equal(labels, evaluation.class_labels(20000, 10, seed=1))


def test_conditioning_registries_list_their_names():
    assert conditioning.CRITIC_CONDITIONINGS.names() == sorted(
        ["concat", "concatenate", "concatenation", "projection", "projection_discriminator"]
    )
    assert "concat" in conditioning.GENERATOR_CONDITIONINGS.names()


@pytest.mark.slow
def test_conditional_eval_during_training_and_the_evaluate_command_report_it(tmp_path):
    if not FASHION_MNIST_DIR.is_dir():
        pytest.skip("apt-get install dataset-fashion-mnist")
    run = tmp_path / "run"
    trainer = make_trainer(
        "cgan",
        "load_images.source = 'fashion_mnist'",
        "load_images.limit = 512",
        "Intervals.eval_every = 1",
        "Intervals.eval_samples = 200",
        "BATCH_SIZE = 64",
    )
    trainer.fit(str(run), config_text=gin.config_str())
    rows = [json.loads(line) for line in open(run / "metrics.jsonl")]
    assert all(0 <= row["eval_conditional_accuracy"] <= 1 for row in rows)
    result = prestarted.run(
        ["-m", "ganpipe.evaluate", f"--run_dir={run}", "--num_samples=300"], cwd=REPO, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    saved = json.loads((run / "eval.json").read_text())
    assert 0 <= saved["metrics"]["conditional_accuracy"] <= 1
    assert "conditional_accuracy" in result.stdout
