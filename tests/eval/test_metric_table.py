"""The metric table is the one place a metric's name, direction, formats and plot scale are
written: what score() returns has an entry, and evaluate's table, the sweep's columns and
aggregation, the HParams view and metrics.png follow an entry added to it."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest

from ganpipe import hparams, sweeps
from ganpipe.eval import inception, metric_table, quality
from ganpipe.eval.metric_table import HIGHER, LOG, LOWER, Metric
from ganpipe.training import plots
from tests.conftest import REPO

# score()'s keys, in the order eval.json has always held them.
SCORED = [
    "fd", "kid", "kid_std", "classifier_score", "classifier_score_std", "classes_covered",
    "class_kl", "precision", "recall", "num_samples", "non_garment", "conditional_accuracy",
]  # fmt: skip
INCEPTION = ["inception_fid", "inception_kid", "inception_kid_std"]
SHARPNESS = Metric(
    "sharpness", "sharpness", HIGHER, fmt="{:.2f}", plot_scale=LOG, report_fmt="{:.3f}", sweep=True
)


class FakeEvaluator:
    """Features: the pixels; probabilities: a softmax of the first three, the last class "not a
    garment" (as evaluator v2's)."""

    spec = types.SimpleNamespace(negative_class=True, data_classes=2, num_classes=3, labelled=True)

    def __call__(self, images01):
        features = images01.reshape(len(images01), -1).astype(np.float64)
        logits = 4.0 * features[:, :3]
        probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
        return features, probabilities / probabilities.sum(axis=1, keepdims=True)


def _images(seed: int, shift: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(size=(40, 2, 2, 1)) * 0.8 + shift


def _score() -> dict:
    evaluator = FakeEvaluator()
    reference = quality.Reference.from_images(evaluator, _images(0), "fake real images")
    labels = np.arange(40) % 2
    return quality.score(evaluator, _images(1, 0.1), reference, kid_subsets=2, labels=labels)


def test_every_number_score_returns_has_an_entry_and_keeps_its_place():
    result = _score()
    assert list(result) == SCORED
    assert metric_table.unknown(result) == []
    assert set(metric_table.names()) == {*SCORED, *INCEPTION}


def test_every_inception_number_has_an_entry():
    class Pool:  # stands in for InceptionV3: the resized pixels are the features
        input_shape = (None, 4, 4, 3)

        def __call__(self, batch, training=False):
            return np.asarray(batch).reshape(len(batch), -1)

    images = np.random.default_rng(0).uniform(size=(12, 8, 8, 1)).astype(np.float32)
    result = inception.inception_scores(Pool(), images, images[::-1])
    assert sorted(result) == sorted(INCEPTION)
    assert metric_table.unknown(result) == []


def test_a_number_without_an_entry_is_refused(monkeypatch):
    monkeypatch.setattr(quality, "METRIC_FUNCTIONS", list(quality.METRIC_FUNCTIONS))

    @quality.metric_function
    def sharpness(sample):
        return {"sharpness": 1.0}

    with pytest.raises(KeyError, match=r"'sharpness'.*metric_table.py METRICS"):
        _score()
    with pytest.raises(KeyError, match="No metric 'sharpness'"):
        metric_table.get("sharpness")


def test_directions_and_formats():
    assert metric_table.better("fd", 1.0, 2.0) and not metric_table.better("fd", 2.0, 1.0)
    assert metric_table.better("precision", 0.9, 0.5)
    assert not metric_table.better("fd", 1.0, 1.0)  # strictly better
    with pytest.raises(ValueError, match="not a score"):
        metric_table.better("kid_std", 0.1, 0.2)
    assert metric_table.get("fd").hint == "lower is better"
    assert metric_table.format_value("fd", 12.34567) == "12.35"
    assert metric_table.format_value("classes_covered", 9.0) == "9"  # logged as a float
    assert metric_table.format_value("not_in_the_table", 0.123456) == "0.1235"
    for metric in metric_table.METRICS:
        assert metric.direction in (LOWER, HIGHER, None)
        assert metric.fmt.format(1.5) and (metric.report_fmt or "{}").format(1.5)
    with pytest.raises(ValueError, match="direction"):
        Metric("x", "x", "smaller")
    with pytest.raises(ValueError, match="needs sweep=True"):
        Metric("x", "x", LOWER, report_fmt="{:.2f}")


def test_the_table_prints_every_metric_in_its_order_and_format():
    text = metric_table.text_table(_score())
    names = [line.split()[0] for line in text.splitlines()]
    assert names == [n for n in metric_table.names() if n in SCORED]
    assert "non_garment" in names  # computed by evaluator v2, and now shown
    assert re.search(r"^classes_covered +\d+$", text, re.M)
    assert re.search(r"^num_samples +40$", text, re.M)


def test_sweep_columns_and_hparams_metrics_are_the_tables():
    sweep = [m.name for m in metric_table.METRICS if m.sweep]
    assert sweep == ["fd", "kid", "classifier_score", "classes_covered", "class_kl",
                     "precision", "recall"]  # fmt: skip
    assert [title for title, _, _ in sweeps.report_columns()] == [
        "steps", "FD", "KID", "classes", "class KL", "precision", "recall",
        "W est. first", "W est. last",
    ]  # fmt: skip
    assert [name for name, _ in hparams.metrics()] == [*sweep, "steps", "train_seconds"]
    assert dict(hparams.metrics())["precision"] == "higher is better"


def _with_sharpness(monkeypatch):
    """The table with one more entry, and its function: what adding a metric takes."""
    monkeypatch.setattr(metric_table, "METRICS", (*metric_table.METRICS, SHARPNESS))
    monkeypatch.setattr(quality, "METRIC_FUNCTIONS", list(quality.METRIC_FUNCTIONS))

    @quality.metric_function
    def sharpness(sample):
        return {"sharpness": float(np.mean(np.abs(np.diff(sample.features, axis=1))))}


def test_a_new_entry_flows_through_score_the_printed_table_and_the_training_plots(monkeypatch):
    _with_sharpness(monkeypatch)
    result = _score()
    assert list(result)[-1] == "sharpness"
    value = result["sharpness"]
    assert re.search(rf"^sharpness +{value:.2f}$", metric_table.text_table(result), re.M)
    rows = [{"step": s, "eval_sharpness": value * s, "eval_fd": 5.0 / s} for s in (1, 2)]
    chosen = {title: (members, log) for title, members, log in plots.panels(plots.series(rows))}
    assert chosen["sharpness (evaluator)"] == (("eval_sharpness",), True)
    assert chosen["Fréchet distance (evaluator)"] == (("eval_fd",), True)


def test_a_new_entry_flows_through_the_sweeps_columns_aggregation_and_hparams(monkeypatch):
    _with_sharpness(monkeypatch)
    eval_json = {**_score(), "sharpness": 0.25}
    columns = sweeps.metric_columns(eval_json)
    assert list(columns) == [m.name for m in metric_table.sweep_metrics()]
    assert list(columns)[-1] == "sharpness" and "num_samples" not in columns
    grid = [sweeps.Cell("00_a", "a", (), (("rung", "a"),))]
    rows = [
        {"cell": "00_a", "seed": 0, "status": "done", "steps": 10, **columns},
        {"cell": "00_a", "seed": 1, "status": "done", "steps": 10, **columns, "sharpness": 0.75},
        {"cell": "00_a", "seed": 2, "status": "non_finite", "steps": 3, "sharpness": 9.0},
    ]
    summary = sweeps.aggregate(rows, grid)
    assert summary[0]["sharpness"] == pytest.approx((0.5, 0.3536), abs=1e-4)
    table = sweeps.markdown_table(summary)
    header = table.splitlines()[0]
    assert header.endswith("| recall | sharpness | W est. first | W est. last |")
    assert "| 0.500 ± 0.354 |" in table  # the entry's report format, finished runs only
    assert ("sharpness", "higher is better") in hparams.metrics()
    assert "sharpness" not in hparams.hyperparameters(rows[0])


def test_evaluates_printed_table_reads_the_table():
    # In a process of its own: the command's module defines its flags when imported.
    code = textwrap.dedent(
        """
        from ganpipe.eval import metric_table as t
        t.METRICS = (*t.METRICS, t.Metric("sharpness", "sharpness", t.HIGHER, fmt="{:.2f}"))
        from ganpipe import evaluate
        metrics = {"sharpness": 0.5, "classes_covered": 10, "fd": 1.23456, "unknown": 3}
        print(evaluate.table({"metrics": metrics}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "fd               1.235",
        "classes_covered  10",
        "sharpness        0.50",
    ]


# Modules that may spell a metric's name: the table, and the functions that compute the metrics.
SPELLERS = {"eval/metric_table.py", "eval/quality.py", "eval/metrics.py", "eval/inception.py"}
# Names spelled for other reasons: FD picks the best checkpoint and is a sweep's plot;
# Numerics.precision; the sample counts of flags and settings.
OTHER_MEANINGS = {"fd", "precision", "num_samples"}


def test_no_other_module_lists_the_metrics():
    spelled = {}
    for path in sorted((REPO / "ganpipe").rglob("*.py")):
        relative = str(path.relative_to(REPO / "ganpipe"))
        if relative in SPELLERS:
            continue
        text = path.read_text()
        for name in set(metric_table.names()) - OTHER_MEANINGS:
            if re.search(rf"[\"']{name}[\"']", text):
                spelled.setdefault(relative, []).append(name)
    assert spelled == {}
