"""docs/extending.md's examples work as written: each section's complete examples (its ```python
blocks) run in order, with the tests the page gives for them; the block example, registered as the
page registers it, gets spectral normalisation from the page's gin lines; the loss example and the
closed form the page adds to tests/test_losses.py agree with the loss's formula."""

from __future__ import annotations

import inspect
import re

import keras
import numpy as np
import pytest

import gin
from ganpipe import config, hparams, losses, sweeps
from ganpipe.data import sources
from ganpipe.eval import metric_table, quality
from ganpipe.models import blocks
from tests.conftest import REPO

PAGE = REPO / "docs" / "extending.md"
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)


def section(heading: str) -> str:
    """The text under ``## heading``, up to the next second-level heading."""
    pattern = rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)"
    match = re.search(pattern, PAGE.read_text(), re.S | re.M)
    assert match, f"docs/extending.md has no section '## {heading}'"
    return match[1]


def fences(heading: str, language: str) -> list[str]:
    """The section's fenced blocks of one language (``python``: the examples run here; ``diff``:
    lines to add to an existing table; ``gin``)."""
    return [body for lang, body in FENCE.findall(section(heading)) if lang == language]


def run_examples(heading: str) -> dict:
    """Runs the section's complete examples in order, in one namespace, and returns it."""
    namespace = {"__name__": f"extending_{heading.split()[-1]}"}
    examples = fences(heading, "python")
    assert examples, f"'## {heading}' has no complete example"
    for index, example in enumerate(examples):
        exec(
            compile(example, f"docs/extending.md, {heading!r}, example {index}", "exec"), namespace
        )
    return namespace


def run_page_tests(namespace: dict, tmp_path) -> list[str]:
    """Calls every ``test_*`` function the examples defined (``tmp_path`` given where asked)."""
    called = []
    for name, test in namespace.items():
        if name.startswith("test_") and callable(test):
            wanted = inspect.signature(test).parameters
            test(**({"tmp_path": tmp_path} if "tmp_path" in wanted else {}))
            called.append(name)
    return called


def test_every_kind_of_part_has_a_section():
    for heading in ("Registries", "A loss", "A penalty", "A block", "An augmentation",
                    "A data source", "A callback", "An evaluator", "A metric"):  # fmt: skip
        assert section(heading).strip()


# -- the loss ----------------------------------------------------------------------------------

REAL = np.array([-2.0, -0.5, 0.0, 1.0, 3.0], dtype=np.float32)
FAKE = np.array([1.5, -1.0, 0.25, -3.0, 0.0], dtype=np.float32)


def test_the_loss_example_has_its_closed_form():
    loss = run_examples("A loss")["SymmetricLeastSquares"]()
    r, f = REAL.astype(np.float64), FAKE.astype(np.float64)
    # LSGAN with a = -1, b = 1, c = 0: fakes pushed to -1, reals to 1, the generator to 0.
    critic = 0.5 * (r - 1.0) ** 2 + 0.5 * (f + 1.0) ** 2
    np.testing.assert_allclose(np.asarray(loss.critic(REAL, FAKE)), critic, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(loss.generator(FAKE)), 0.5 * f**2, rtol=1e-6)
    at_targets = loss.critic(np.array([1.0], np.float32), np.array([-1.0], np.float32))
    np.testing.assert_allclose(np.asarray(at_targets), [0.0])
    assert not (loss.uses_sigmoid or loss.wasserstein_estimate or loss.generator_uses_real)
    # The closed form the page adds to CLOSED_FORMS in tests/test_losses.py says the same.
    (diff,) = [s for s in fences("A loss", "diff") if "CLOSED_FORMS" in s]
    added = "".join(line[1:] + "\n" for line in diff.splitlines() if line.startswith("+"))
    critic_form, generator_form = eval("{" + added + "}")[loss.name]
    np.testing.assert_allclose(critic_form(r, f), critic)
    np.testing.assert_allclose(generator_form(f), 0.5 * f**2)


def test_the_loss_example_registers_under_its_name():
    cls = run_examples("A loss")["SymmetricLeastSquares"]
    losses.LOSSES.register(cls.name, cls)
    try:
        made = losses.get("least-squares-symmetric")
        assert type(made) is cls and losses.LOSSES.serialize(made) == cls.name
    finally:
        losses.LOSSES.unregister(cls.name)
    assert cls.name not in losses.LOSSES


# -- the block ---------------------------------------------------------------------------------


@pytest.fixture
def block_example():
    """The page's block example, registered as the page registers it from a module of one's
    own; unregistered afterwards."""
    assert "conv_lrelu" not in blocks.BLOCKS
    namespace = run_examples("A block")
    try:
        assert blocks.BLOCKS["conv_lrelu"].build is namespace["_conv_lrelu"]
        yield blocks.BLOCKS["conv_lrelu"]
    finally:
        blocks.BLOCKS.unregister("conv_lrelu")
    assert "conv_lrelu" not in blocks.BLOCKS


def _page_critic(tmp_path, *params):
    """The critic the page's gin lines describe, for 16x16 one-channel images, its kernels drawn
    with a largest singular value far from 1 (so that normalising shows)."""
    (gin_text,) = fences("A block", "gin")
    path = tmp_path / "critic.gin"
    path.write_text(gin_text)
    config.parse(
        [str(path)],
        ["build_critic.kernel_initializer = @RandomNormal", "RandomNormal.stddev = 1.0", *params],
    )
    keras.utils.set_random_seed(0)
    return config.CONFIGURABLES["build_critic"](input_shape=(16, 16, 1))


def _largest_singular_value(kernel) -> float:
    matrix = np.asarray(kernel).reshape(-1, kernel.shape[-1])  # as Keras' wrapper reads it
    return float(np.linalg.svd(matrix, compute_uv=False)[0])


def test_the_block_example_gets_spectral_norm_from_build_critic_through_gin(
    block_example, tmp_path
):
    assert block_example.weighted
    assert block_example.arguments == {
        "filters", "kernel_size", "strides", "negative_slope", "spectral_norm", "name",
    }  # fmt: skip
    assert block_example.required == ("filters",)
    critic = _page_critic(tmp_path)
    assert gin.query_parameter("build_critic.spectral_norm") is True  # from the page's gin
    wrapped = [x for x in critic.layers if isinstance(x, keras.layers.SpectralNormalization)]
    convs = [x.layer for x in wrapped if isinstance(x.layer, keras.layers.Conv2D)]
    assert len(convs) == 4 and len(wrapped) == 5  # every conv_lrelu, and the final dense
    assert not [x for x in critic.layers if type(x) is keras.layers.Conv2D]
    slopes = [x.negative_slope for x in critic.layers if isinstance(x, keras.layers.LeakyReLU)]
    assert slopes == pytest.approx([0.1] * 4)
    assert [conv.strides for conv in convs] == [(1, 1), (2, 2), (1, 1), (2, 2)]
    assert critic.output_shape == (None, 1)
    kernel = convs[0].kernel
    before = _largest_singular_value(kernel)
    x = np.random.default_rng(0).normal(size=(2, 16, 16, 1)).astype("float32")
    for _ in range(30):  # each training call runs one power iteration and rescales the kernel
        critic(x, training=True)
    assert before > 3.0
    assert _largest_singular_value(kernel) == pytest.approx(1.0, abs=2e-2)


def test_without_the_switch_the_block_example_is_not_wrapped(block_example, tmp_path):
    critic = _page_critic(tmp_path, "build_critic.spectral_norm = False")
    assert not [x for x in critic.layers if isinstance(x, keras.layers.SpectralNormalization)]
    assert len([x for x in critic.layers if isinstance(x, keras.layers.Conv2D)]) == 4


# -- the other parts: their examples and the tests the page gives for them ---------------------


@pytest.mark.parametrize(
    ("heading", "defines"),
    [
        ("A penalty", "LipschitzPenalty"),
        ("An augmentation", "InstanceNoise"),
        ("A callback", "Patience"),
    ],
)
def test_the_examples_pass_the_tests_the_page_gives(heading, defines, tmp_path):
    namespace = run_examples(heading)
    assert defines in namespace
    assert run_page_tests(namespace, tmp_path), f"'## {heading}' gives no test"


def test_the_data_source_example_passes_its_test(tmp_path):
    assert "npz" not in sources.SOURCES
    try:
        namespace = run_examples("A data source")
        assert sources.SOURCES["npz"].load is namespace["_load_npz_source"]
        assert run_page_tests(namespace, tmp_path) == ["test_npz_source"]
        with pytest.raises(ValueError, match="'npz' is malformed"):
            sources.load_images(source="npz")  # the path is required
    finally:
        sources.SOURCES.unregister("npz")


# -- the metric --------------------------------------------------------------------------------


def test_the_metric_example_is_one_entry_and_its_function(monkeypatch, tmp_path):
    (diff,) = fences("A metric", "diff")
    (added,) = [line[1:].strip() for line in diff.splitlines() if line.startswith("+")]
    entry = eval(added.rstrip(","), vars(metric_table))
    monkeypatch.setattr(metric_table, "METRICS", (*metric_table.METRICS, entry))
    monkeypatch.setattr(quality, "METRIC_FUNCTIONS", list(quality.METRIC_FUNCTIONS))
    namespace = run_examples("A metric")
    assert quality.METRIC_FUNCTIONS[-1] is namespace["_confidence"]
    assert run_page_tests(namespace, tmp_path) == [
        "test_confidence_reads_the_top_class_probability"
    ]
    assert sweeps.metric_columns({"fd": 1.0, "confidence": 0.8}) == {"fd": 1.0, "confidence": 0.8}
    assert ("confidence", "higher is better") in hparams.metrics()
    assert "confidence" in sweeps.markdown_table([])
