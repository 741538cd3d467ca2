"""Bad input is refused before training starts, with a message naming the problem and the fix."""

import pytest

from ganpipe import config
from ganpipe.data import DatasetNotFoundError
from tests.conftest import GIN, run_main

# (experiment, bindings, exception type, message pattern)
CASES = [
    ("gan", ["train.num_steps = = 2"], config.ConfigError, "Cannot parse"),
    ("gan", ["trian.num_steps = 2"], config.ConfigError, r"did you mean \['train'\]"),
    ("gan", ["train.num_step = 2"], config.ConfigError, r"did you mean \['num_steps'"),
    ("gan", ["Schedule.critic_step = 2"], config.ConfigError, "critic_steps"),
    ("gan", ["train.loss = 'wassersteen'"], ValueError, "Unknown loss 'wassersteen'.*wasserstein"),
    (
        "wgan",
        ["critic/RMSprop.learning_rate = -5e-5"],
        ValueError,
        "critic optimizer's learning rate.*-5e-05.*critic/RMSprop.learning_rate",
    ),
    (
        "gan",
        ["generator/Adam.learning_rate = 0.0"],
        ValueError,
        "generator optimizer's learning rate",
    ),
    (
        "wgan",
        ["WeightClip.clip_value = -0.01"],
        ValueError,
        "clip_value must be a finite number > 0",
    ),
    ("wgan", ["WeightClip.clip_value = 0"], ValueError, "clip_value"),
    ("wgan", ["Schedule.critic_steps = 0"], ValueError, "critic_steps must be an integer >= 1"),
    ("dcgan", ["Schedule.generator_steps = -1"], ValueError, "generator_steps must be"),
    ("gan", ["NUM_STEPS = 0"], ValueError, r"NUM_STEPS \(train.num_steps\) must be an integer"),
    ("gan", ["NUM_STEPS = 'many'"], ValueError, "NUM_STEPS"),
    ("gan", ["BATCH_SIZE = -8"], ValueError, "BATCH_SIZE"),
    (
        "gan",
        ["load_images.source = 'idx'", "load_images.data_dir = '/nonexistent/idx'"],
        DatasetNotFoundError,
        "/nonexistent/idx",
    ),
    ("gan", ["load_images.source = 'imagenet21k'"], ValueError, "imagenet21k"),
    ("gan", ["train.strategy = 'tpu_pod'"], ValueError, "Unknown strategy 'tpu_pod'"),
    (
        "gan",
        ["build_generator.blocks = [{'block': 'densse', 'units': 784}]"],
        ValueError,
        "Unknown block 'densse'",
    ),
    (
        "gan",
        [
            "build_generator.blocks = [{'block': 'dense', 'units': 784},"
            "{'block': 'reshape', 'target_shape': (14, 56, 1)}]"
        ],
        ValueError,
        r"generator outputs images of shape \(14, 56, 1\).*\(28, 28, 1\)",
    ),
    (
        "gan",
        [
            "build_critic.blocks = [{'block': 'flatten'},"
            "{'block': 'dense', 'units': 1, 'activation': 'sigmoid'}]"
        ],
        ValueError,
        "critic ends in a sigmoid",
    ),
    ("gan", ["VALUE_RANGE = (-1.0, 1.0)"], ValueError, "ends in sigmoid"),
    ("wgan", ["Schedule.share_noise = True"], ValueError, "share_noise"),
    ("gan", ["Latent.scale = -1.0"], ValueError, "Latent.scale"),
    ("gan", ["Intervals.log_every = 0"], ValueError, "Intervals.log_every must be an integer >= 1"),
    (
        "gan",
        [
            "LATENT_DIM = 100",
            "build_generator.blocks = [{'block': 'reshape', 'target_shape': (28, 28, 1)}]",
        ],
        ValueError,
        r"layer 0 \(Reshape\) cannot take an input of shape \(None, 100\)",
    ),
    (
        "gan",
        ["load_images.source = 'idx'", "load_images.data_dir = '{tmp}/corrupt_idx'"],
        ValueError,
        "magic",
    ),
    (
        "gan",
        ["load_images.source = 'folder'", "load_images.data_dir = '{tmp}/empty'"],
        DatasetNotFoundError,
        "empty",
    ),
    (
        "gan",
        ["load_images.source = 'folder'", "load_images.data_dir = '{tmp}/mixed'"],
        ValueError,
        "image_size",
    ),
    ("gan", ["train.strategy = 'multi_worker_mirrored'"], ValueError, "TF_CONFIG is malformed"),
    ("gan", ["Numerics.precision = 'float8'"], ValueError, "Numerics.precision must be one of"),
    ("gan", ["Numerics.non_finite = 'ignore'"], ValueError, "Numerics.non_finite must be"),
    ("dcgan", ["critic/Adam.beta_1 = 1.5"], ValueError, "beta_1 must lie in"),
    ("gan", ["BATCH_SIZE = 128"], ValueError, "larger than the number of images"),
    (
        "gan",
        ["Intervals.eval_every = -1"],
        ValueError,
        "Intervals.eval_every must be an integer >= 0",
    ),
]


@pytest.fixture
def bad_files(tmp_path, monkeypatch):
    """The files some cases point at: a corrupt IDX folder, an empty and a mixed image folder."""
    from PIL import Image

    (tmp_path / "corrupt_idx").mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (tmp_path / "corrupt_idx" / name).write_bytes(b"\x00\x00\x09\x09garbage")
    (tmp_path / "empty").mkdir()
    (tmp_path / "mixed").mkdir()
    Image.new("L", (28, 28)).save(tmp_path / "mixed" / "a.png")
    Image.new("L", (32, 30)).save(tmp_path / "mixed" / "b.png")
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {}}')
    return tmp_path


@pytest.mark.parametrize(
    "experiment, bindings, error, pattern", CASES, ids=[" ".join(c[1])[:40] for c in CASES]
)
def test_refused_before_training(experiment, bindings, error, pattern, bad_files, tmp_path):
    bindings = [b.replace("{tmp}", str(bad_files)) for b in bindings]
    with pytest.raises(error, match=pattern):
        config.parse([str(GIN / f"{experiment}.gin"), str(GIN / "testing" / "tiny.gin")], bindings)
        trainer = config.make_trainer()
        trainer.fit(str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_missing_gin_file_lists_shipped_files():
    with pytest.raises(config.ConfigError, match="not found.*wgan.gin"):
        config.parse(["gin/wgann.gin"])


@pytest.mark.slow
def test_main_exits_non_zero_with_the_message_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    result = run_main(
        "--gin_file=gin/wgan.gin",
        "--gin_file=gin/testing/tiny.gin",
        "--gin_param=train.loss='wassersteen'",
        f"--output_dir={out}",
    )
    assert result.returncode == 2
    assert "ganpipe: error:" in result.stderr and "Unknown loss 'wassersteen'" in result.stderr
    assert not out.exists()


def test_output_dir_under_a_file_is_refused(tmp_path):
    from ganpipe.rundir import RunDirectory, RunDirectoryError

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(RunDirectoryError, match="not writable.*is not a directory"):
        RunDirectory(str(blocker / "run"), "x").check()


def test_table_has_at_least_30_cases():
    assert len(CASES) >= 30


def test_checkpoint_from_an_incompatible_model_is_refused(tmp_path):
    import shutil

    from ganpipe.training import writers
    from tests.conftest import make_trainer

    make_trainer("gan").fit(str(tmp_path / "gan"))
    trainer = make_trainer("dcgan")
    import tensorflow as tf

    checkpoint = tf.train.Checkpoint(generator=trainer.generator, critic=trainer.critic)
    shutil.copytree(tmp_path / "gan" / "checkpoints", tmp_path / "copied")
    with pytest.raises(ValueError, match="does not fit the models"):
        writers.Checkpointer(str(tmp_path / "copied"), checkpoint, 3).restore()
