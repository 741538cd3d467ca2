"""The pinned evaluator and the evaluation workflow, on the real Fashion-MNIST files."""

import json
import shutil

import numpy as np
import pytest

from ganpipe.data import load_images
from ganpipe.eval import classifier, evaluation
from tests.conftest import FASHION_MNIST_DIR, make_trainer, run_module

pytestmark = pytest.mark.skipif(
    not FASHION_MNIST_DIR.is_dir(), reason="apt-get install dataset-fashion-mnist"
)


@pytest.fixture(scope="module", params=["fashion_mnist-v1", "fashion_mnist-v2"])
def evaluator(request):
    return classifier.load_evaluator(request.param)


def test_evaluator_accuracy_on_the_full_test_split_matches_its_record(evaluator):
    test = load_images(source="fashion_mnist", split="test")
    _, probabilities = evaluator(test.images.astype(np.float32) / 255.0)
    accuracy = float(np.mean(probabilities.argmax(axis=1) == test.labels))
    assert len(test.labels) == 10_000
    assert accuracy >= 0.92
    assert accuracy == pytest.approx(evaluator.spec.test_accuracy, abs=2e-3)


def test_tampered_weights_are_refused(tmp_path):
    spec = classifier.EVALUATORS["fashion_mnist-v1"]
    copy = tmp_path / spec.weights_file
    shutil.copy(f"{classifier.WEIGHTS_DIR}/{spec.weights_file}", copy)
    with open(copy, "r+b") as f:
        f.seek(-100, 2)
        byte = f.read(1)
        f.seek(-100, 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ValueError, match="SHA-256"):
        classifier.Evaluator(spec, str(copy))
    with pytest.raises(FileNotFoundError, match="missing"):
        classifier.Evaluator(spec, str(tmp_path / "absent.weights.h5"))


def test_unknown_data_set_has_no_evaluator():
    with pytest.raises(ValueError, match="Unknown pinned evaluator 'cifar10'.*fashion_mnist-v2"):
        classifier.load_evaluator("cifar10")


@pytest.mark.slow  # scores 2,000 real and 2,000 noise images
def test_real_data_scores_near_perfect_and_noise_scores_badly():
    # v2 (the default): v1 fails the precision part (it puts uniform noise inside the real
    # manifold, precision 0.35), which is why v2 exists (tests/eval/test_disturbances.py).
    evaluator = classifier.load_evaluator("fashion_mnist")
    floor = evaluation.reference_floor("fashion_mnist", num_samples=2000)["metrics"]
    reference = evaluation.real_reference(evaluator, "fashion_mnist")
    noise = np.random.default_rng(0).uniform(size=(2000, 28, 28, 1)).astype(np.float32)
    from ganpipe.eval import quality

    bad = quality.score(evaluator, noise, reference)
    assert floor["fd"] < 2.0 and bad["fd"] > 50 * floor["fd"]
    assert floor["precision"] > 0.8 and floor["recall"] > 0.8
    assert bad["precision"] < 0.3 and bad["recall"] < 0.05
    assert floor["classes_covered"] == 10
    assert floor["class_kl"] < 0.05 and bad["class_kl"] > 1.0
    assert floor["classifier_score"] > 8.0 and bad["classifier_score"] < floor["classifier_score"]


@pytest.mark.slow
def test_eval_during_training_keeps_best_and_evaluate_command_scores_it(tmp_path):
    run = tmp_path / "run"
    trainer = make_trainer(
        "gan",
        "load_images.source = 'fashion_mnist'",
        "load_images.limit = 512",
        "Intervals.eval_every = 1",
        "Intervals.eval_samples = 200",
        "NUM_STEPS = 3",
        "BATCH_SIZE = 64",
    )
    import gin

    trainer.fit(str(run), config_text=gin.config_str())
    rows = [json.loads(line) for line in open(run / "metrics.jsonl")]
    assert [r["step"] for r in rows] == [1, 2, 3]
    for row in rows:
        assert row["eval_fd"] > 0 and 0 <= row["eval_precision"] <= 1
    best = min(rows, key=lambda r: r["eval_fd"])
    assert (run / "checkpoints" / "best" / f"ckpt-{best['step']}.index").exists()

    result = run_main_evaluate(run, "--checkpoint=best", "--num_samples=300")
    assert result.returncode == 0, result.stderr[-3000:]
    saved = json.loads((run / "eval.json").read_text())
    assert saved["step"] == best["step"] and saved["evaluator"] == "fashion_mnist-v2"
    for key in (
        "fd",
        "kid",
        "classifier_score",
        "classes_covered",
        "class_kl",
        "precision",
        "recall",
    ):
        assert key in saved["metrics"] and key in result.stdout


def run_main_evaluate(run, *args):
    return run_module("ganpipe.evaluate", f"--run_dir={run}", *args)


_REFUSED = {  # name -> (arguments after --run_dir=<an empty folder>, the message)
    "not_a_run": ((), "not a run directory"),
    "inception_weights": (
        ("--inception_weights=w.h5",),
        "--inception_weights is read only with --inception",
    ),
    **{
        f"num_samples={count}": (
            (f"--num_samples={count}",),
            f"--num_samples must be an integer >= 4, got {count}",
        )
        for count in (0, -1, 3)
    },
}


@pytest.fixture(scope="module")
def refused(tmp_path_factory):
    """What ``ganpipe.evaluate`` answers to each of ``_REFUSED``, from one process."""
    folder = tmp_path_factory.mktemp("not_a_run")
    lists = [[f"--run_dir={folder}", *arguments] for arguments, _ in _REFUSED.values()]
    result = run_module("tests.refusals", "ganpipe.evaluate", json.dumps(lists))
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(zip(_REFUSED, json.loads(result.stdout.strip().splitlines()[-1])))


@pytest.mark.parametrize("case", list(_REFUSED))
def test_evaluate_command_refuses_bad_input_naming_it(refused, case):
    assert refused[case]["status"] == 2, refused[case]
    assert _REFUSED[case][1] in refused[case]["stderr"]


def test_evaluate_command_leaves_inception_off_unless_asked_and_says_what_it_costs():
    # A subprocess: ganpipe.evaluate and ganpipe.sample define flags of the same names.
    result = run_module("ganpipe.evaluate", "--help")
    help_text = " ".join(result.stdout.split())
    start = help_text.index("--[no]inception:")
    inception = help_text[start : help_text.index("--inception_weights:", start)]
    assert inception.strip().endswith("(default: 'false')")
    assert "about 90 MB" in help_text and "299x299" in help_text
