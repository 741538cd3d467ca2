"""Training on a prepared data set at its own size, and an evaluator pinned to it: the recipe
layered with gin/data/prepared.gin builds its family at the data's shape, conditional exactly
when the data has labels; train_classifier --data writes an evaluator folder that the FD during
training and ganpipe.evaluate use, and that refuses other data."""

import json
import os
import types

import numpy as np
import pytest

from ganpipe import config
from ganpipe.data import prepared, synthetic
from tests.conftest import GIN

SHAPE = (32, 48, 3)  # a non-square colour set


@pytest.fixture(scope="module")
def data_sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("prepared")
    images, labels = synthetic.make_shapes(num=256, image_size=SHAPE[:2], channels=3, seed=0)
    labelled = str(root / "shapes")
    prepared.write(labelled, images, labels, synthetic.SHAPE_CLASSES, source="test shapes")
    unlabelled = str(root / "unlabelled")
    prepared.write(unlabelled, images, None, source="test shapes, no labels")
    other = str(root / "other")
    prepared.write(other, images[::-1].copy(), labels[::-1].copy(), synthetic.SHAPE_CLASSES)
    return types.SimpleNamespace(labelled=labelled, unlabelled=unlabelled, other=other)


def _recipe_on(data, *params):
    _recipe_on.text = config.parse(
        [str(GIN / "recommended.gin"), str(GIN / "data" / "prepared.gin")],
        [f"DATA = '{data}'", "NUM_STEPS = 2", "BATCH_SIZE = 8", "train.strategy = 'default'",
         "Intervals.log_every = 1", "Intervals.sample_every = 2", "Intervals.checkpoint_every = 2",
         "Intervals.num_samples = 6", "Outputs.plots = False", "Outputs.saved_model = False",
         *params],
    )  # fmt: skip
    return config.make_trainer()


def test_the_recipe_follows_a_labelled_sets_shape_and_classes(data_sets):
    trainer = _recipe_on(data_sets.labelled)
    assert trainer.generator.output_shape == (None, *SHAPE)
    assert len(trainer.generator.inputs) == 2 and len(trainer.critic.inputs) == 2
    assert trainer.settings.num_classes == 3


def test_an_unlabelled_set_trains_the_same_recipe_unconditionally(data_sets):
    trainer = _recipe_on(data_sets.unlabelled)
    assert trainer.settings.num_classes is None
    assert len(trainer.generator.inputs) == 1 and len(trainer.critic.inputs) == 1


def test_a_size_no_family_builds_is_refused_before_training(tmp_path):
    from ganpipe.models import families

    path = str(tmp_path / "odd")
    prepared.write(path, np.zeros((16, 36, 36, 1), np.uint8))
    with pytest.raises(families.SizeError, match="36x36.*40x40 or 32x32"):
        _recipe_on(path)


@pytest.fixture(scope="module")
def evaluator_folder(data_sets, tmp_path_factory):
    from ganpipe.eval import own_training

    folder = str(tmp_path_factory.mktemp("evaluators") / "shapes")
    flags = types.SimpleNamespace(
        data=data_sets.labelled, output=folder, labels="auto", working_size=24, holdout=0.25,
        limit=None, epochs=2, batch_size=32, learning_rate=2e-3, seed=0,
    )  # fmt: skip
    own_training.train(flags)
    return folder


def test_train_classifier_writes_a_pinned_evaluator_folder(data_sets, evaluator_folder):
    from ganpipe.eval import classifier

    card = json.loads(open(os.path.join(evaluator_folder, "evaluator.json")).read())
    assert card["kind"] == "classifier" and card["negative_class"] and card["num_classes"] == 4
    assert card["working_size"] == [24, 24] and card["held_out_images"] == 64
    assert card["data_fingerprint"] == prepared.read_index(data_sets.labelled)["images_sha256"]
    evaluator = classifier.load_evaluator(evaluator_folder)
    features, probabilities = evaluator(np.zeros((3, *SHAPE), np.float32))
    assert features.shape == (3, 128) and probabilities.shape == (3, 4)


def test_the_run_is_scored_by_its_evaluator_during_training_and_after(
    data_sets, evaluator_folder, tmp_path
):
    from ganpipe.eval import run as eval_run

    trainer = _recipe_on(data_sets.labelled, f"EVALUATOR = '{evaluator_folder}'",
                         "Intervals.eval_every = 2", "Intervals.eval_samples = 16")  # fmt: skip
    run_dir = str(tmp_path / "run")
    last = trainer.fit(run_dir, config_text=_recipe_on.text)
    assert np.isfinite(last["eval_fd"])
    record = json.loads(open(os.path.join(run_dir, "data.json")).read())
    assert record["image_shape"] == list(SHAPE) and record["num_classes"] == 3
    # ganpipe.evaluate's path: the run's own evaluator folder, its generator at the data's shape.
    result = eval_run.evaluate_run(run_dir, num_samples=16)
    assert result["evaluator"] == evaluator_folder and np.isfinite(result["metrics"]["fd"])
    assert "conditional_accuracy" in result["metrics"]


def test_an_evaluator_of_other_data_is_refused_naming_both_fingerprints(
    data_sets, evaluator_folder
):
    from ganpipe.training import callbacks

    with pytest.raises(ValueError, match="trained on data with fingerprint") as refused:
        _recipe_on(data_sets.other, f"EVALUATOR = '{evaluator_folder}'",
                   "Intervals.eval_every = 2")  # fmt: skip
    assert prepared.read_index(data_sets.other)["images_sha256"][:16] in str(refused.value)
    assert callbacks.Scorer  # the refusal comes from the scorer, before any model is built


def test_the_self_supervised_task_and_its_evaluator_have_no_class_metrics():
    from ganpipe.eval import own_data

    images = np.arange(2 * 4 * 4).reshape(2, 4, 4, 1)
    assert len(own_data.SELF_SUPERVISED_TRANSFORMS) == 8
    seen = {own_data.transform(images, i).tobytes() for i in range(8)}
    assert len(seen) == 8  # eight different views of an asymmetric image
    out, labels = own_data.self_supervised_batch(images, np.random.default_rng(0))
    for image, original, label in zip(out, images, labels):
        np.testing.assert_array_equal(image, own_data.transform(original[None], label)[0])


def test_the_real_data_floor_of_a_folder_evaluator_uses_the_rows_it_did_not_hold_out(
    evaluator_folder,
):
    from ganpipe.eval import evaluation, own_data
    from ganpipe.eval.classifier import read_card

    images, rows = own_data.training_rows(read_card(evaluator_folder))
    assert len(rows) == 256 - 64 and len(images) == 256
    floor = evaluation.reference_floor(evaluator_folder, num_samples=32)
    assert "held-out reference" in floor["what"] and np.isfinite(floor["metrics"]["fd"])
