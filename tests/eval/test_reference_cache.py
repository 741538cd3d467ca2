"""The real reference's evaluator features, cached on disk per evaluator version and data
(``evaluation.cached_reference`` / ``real_reference``), with a counting stand-in evaluator."""

import logging
import os

import numpy as np
import pytest

from ganpipe.data.core import ImageArray
from ganpipe.eval import evaluation, metrics, quality
from ganpipe.eval.classifier import EvaluatorSpec


class CountingEvaluator:
    """The evaluator's interface (``spec``, images -> features and probabilities), counting
    how often it computes."""

    def __init__(self, sha256: str = "a" * 64):
        self.spec = EvaluatorSpec(
            data_set="toy",
            version=1,
            weights_file="toy-v1.weights.h5",
            sha256=sha256,
            test_accuracy=0.0,
            input_shape=(4, 4, 1),
            num_classes=3,
        )
        self.calls = 0

    def __call__(self, images01):
        self.calls += 1
        flat = np.asarray(images01, np.float64).reshape(len(images01), -1)
        logits = flat[:, :3] * 5.0
        probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        return flat[:, :6], probabilities


def toy_images(seed=0, n=40):
    return np.random.default_rng(seed).integers(0, 256, (n, 4, 4, 1), dtype=np.uint8)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(evaluation.CACHE_DIR_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def reference(evaluator, images=None, source="IDX files in /data/a", split="test"):
    return evaluation.cached_reference(
        evaluator,
        toy_images() if images is None else images,
        data_set="toy",
        split=split,
        source=source,
    )


def assert_same(a, b):
    for name in ("features", "probabilities", "mu", "sigma", "class_histogram"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.description == b.description


def test_a_second_call_reads_the_file(cache):
    first_evaluator = CountingEvaluator()
    first = reference(first_evaluator)
    assert first_evaluator.calls == 1
    files = list((cache / "references").iterdir())
    assert len(files) == 1 and files[0].name.startswith("toy-v1-toy-test-")
    again = CountingEvaluator()  # as in a new process: nothing in memory
    second = reference(again)
    assert again.calls == 0
    assert_same(first, second)
    assert first.description == "40 toy test images (IDX files in /data/a)"
    # Precision/recall's radii come from the file too, equal to those computed from scratch.
    assert quality.PRECISION_K in second.manifolds
    recomputed = metrics.manifold(second.features, k=quality.PRECISION_K)
    np.testing.assert_array_equal(second.manifold().radii_squared, recomputed.radii_squared)


def test_a_file_written_before_the_radii_were_cached_still_reads(cache):
    first = reference(CountingEvaluator())
    (path,) = (cache / "references").iterdir()
    with np.load(path) as stored:
        arrays = {name: stored[name] for name in stored.files if name != "radii_squared"}
    np.savez(path, **arrays)
    again = CountingEvaluator()
    old = reference(again)
    assert again.calls == 0 and old.manifolds == {}
    assert_same(first, old)
    np.testing.assert_array_equal(old.manifold().radii_squared, first.manifold().radii_squared)


@pytest.mark.parametrize(
    "change",
    [
        {"source": "IDX files in /data/b"},  # another local data folder
        {"images": toy_images(seed=1)},  # other content behind the same description
        {"split": "train"},
        {"evaluator": CountingEvaluator(sha256="b" * 64)},  # other weights, same name
    ],
    ids=["source", "images", "split", "weights"],
)
def test_a_changed_key_recomputes(cache, change):
    reference(CountingEvaluator())
    evaluator = change.pop("evaluator", None) or CountingEvaluator()
    changed = reference(evaluator, **change)
    assert evaluator.calls == 1
    assert len(list((cache / "references").iterdir())) == 2
    assert_same(changed, reference(CountingEvaluator(evaluator.spec.sha256), **change))


def test_a_corrupt_file_is_recomputed_with_a_log_line(cache, caplog):
    first = reference(CountingEvaluator())
    (path,) = (cache / "references").iterdir()
    path.write_bytes(path.read_bytes()[:100])
    evaluator = CountingEvaluator()
    with caplog.at_level(logging.WARNING, logger="absl"):
        again = reference(evaluator)
    assert evaluator.calls == 1
    assert f"Reference cache {path} is unreadable" in caplog.text
    assert_same(first, again)
    reread = CountingEvaluator()
    reference(reread)  # the recomputed file is whole again
    assert reread.calls == 0


def test_a_file_holding_another_key_is_recomputed(cache, caplog):
    reference(CountingEvaluator(), source="IDX files in /data/a")
    (a,) = (cache / "references").iterdir()
    reference(CountingEvaluator(), source="IDX files in /data/b")
    (b,) = set((cache / "references").iterdir()) - {a}
    os.replace(a, b)  # b's file now holds a's key and features
    evaluator = CountingEvaluator()
    with caplog.at_level(logging.WARNING, logger="absl"):
        reference(evaluator, source="IDX files in /data/b")
    assert evaluator.calls == 1
    assert "holds another key" in caplog.text


def test_an_unwritable_cache_is_logged_and_skipped(tmp_path, monkeypatch, caplog):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv(evaluation.CACHE_DIR_ENV, str(blocked))
    evaluator = CountingEvaluator()
    with caplog.at_level(logging.WARNING, logger="absl"):
        result = reference(evaluator)
    assert evaluator.calls == 1 and result.features.shape == (40, 6)
    assert "Could not cache" in caplog.text


def test_the_cache_folder(monkeypatch, tmp_path):
    monkeypatch.setenv(evaluation.CACHE_DIR_ENV, str(tmp_path / "x"))
    assert evaluation.cache_dir() == str(tmp_path / "x")
    monkeypatch.delenv(evaluation.CACHE_DIR_ENV)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert evaluation.cache_dir() == str(tmp_path / "home" / ".cache" / "ganpipe")


def test_the_suite_keeps_the_cache_out_of_home():
    # tests/conftest.py points the whole session (and its subprocesses) at a temporary folder.
    home = os.path.join(os.path.expanduser("~"), ".cache", "ganpipe")
    assert os.path.abspath(evaluation.cache_dir()) != os.path.abspath(home)


def test_real_reference_loads_the_split_and_uses_the_disk_cache(cache, monkeypatch):
    sources = {"source": "IDX files in /data/a"}

    def load_images(*, source, split):
        assert (source, split) == ("toy", evaluation.REFERENCE_SPLIT)
        return ImageArray(images=toy_images(), labels=None, source=sources["source"])

    monkeypatch.setattr(evaluation, "load_images", load_images)
    evaluator = CountingEvaluator()
    first = evaluation.real_reference(evaluator, "toy")
    assert evaluation.real_reference(evaluator, "toy") is first
    assert evaluator.calls == 1 and len(list((cache / "references").iterdir())) == 1
    sources["source"] = "IDX files in /data/b"  # the same name now loads from elsewhere
    moved = evaluation.real_reference(evaluator, "toy")
    assert evaluator.calls == 2 and moved.description.endswith("(IDX files in /data/b)")
