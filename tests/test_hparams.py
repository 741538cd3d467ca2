"""A sweep's runs in TensorBoard's HParams view."""

import glob

import tensorflow as tf
from tensorboard.plugins.hparams import metadata, plugin_data_pb2

from ganpipe import hparams

ROWS = [
    {"cell": "00_1e-4", "label": "lr=1e-4", "seed": 0, "run_dir": "x", "status": "done",
     "critic/Adam.learning_rate": "1e-4", "rung": "0_gan", "steps": 30, "fd": 12.5,
     "train_seconds": 9.0, "wall_seconds": 20.0},
    {"cell": "01_2e-4", "label": "lr=2e-4", "seed": 1, "run_dir": "y", "status": "done",
     "critic/Adam.learning_rate": "2e-4", "rung": "1_wgan", "steps": 30, "fd": 8.25,
     "train_seconds": 9.5, "wall_seconds": 21.0},
]  # fmt: skip


def _plugin_data(path):
    """(hparams plugin data messages, scalar values) of one run's event files."""
    infos, scalars = [], {}
    for events in glob.glob(f"{path}/events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(events):
            for value in event.summary.value:
                plugin = value.metadata.plugin_data
                if plugin.plugin_name == metadata.PLUGIN_NAME:
                    infos.append(plugin_data_pb2.HParamsPluginData.FromString(plugin.content))
                else:
                    scalars[value.tag] = (event.step, float(tf.make_ndarray(value.tensor)))
    return infos, scalars


def test_hyperparameters_are_the_coordinates_and_the_seed():
    assert hparams.hyperparameters(ROWS[0]) == {
        "critic/Adam.learning_rate": 1e-4, "rung": "0_gan", "seed": 0,
    }  # fmt: skip


def test_each_run_holds_its_hyperparameters_and_final_metrics(tmp_path):
    folder = hparams.write(str(tmp_path), ROWS)
    (config,), _ = _plugin_data(folder)
    assert {h.name for h in config.experiment.hparam_infos} == {
        "critic/Adam.learning_rate", "rung", "seed",
    }  # fmt: skip
    assert {m.name.tag for m in config.experiment.metric_infos} == {"fd", "steps", "train_seconds"}
    hints = {m.name.tag: m.description for m in config.experiment.metric_infos}
    assert hints["fd"] == "lower is better"  # the metric table's direction
    for row in ROWS:
        (start,), scalars = _plugin_data(f"{folder}/{row['cell']}/seed{row['seed']}")
        values = start.session_start_info.hparams
        assert values["critic/Adam.learning_rate"].number_value == float(
            row["critic/Adam.learning_rate"]
        )
        assert values["rung"].string_value == row["rung"]
        assert values["seed"].number_value == row["seed"]  # an integer column is numeric
        assert (
            scalars["fd"] == (30, row["fd"]) and scalars["train_seconds"][1] == row["train_seconds"]
        )


def test_rewriting_never_shows_a_run_twice(tmp_path):
    hparams.write(str(tmp_path), ROWS)
    folder = hparams.write(str(tmp_path), ROWS[:1])
    assert len(glob.glob(f"{folder}/*/seed*/events.out.tfevents.*")) == 1
