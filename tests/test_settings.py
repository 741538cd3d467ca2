"""train's settings in groups (``ganpipe.settings``): each group's gin binding reaches the
trainer, and every flat binding train took before the groups (``settings.MOVED``) still works
wherever a user may have written it, read as its new home with a warning naming it."""

import ast
import inspect
import logging
import shutil

import pytest

from ganpipe import config, gan, rundir, settings
from ganpipe.eval import evaluation
from ganpipe.eval import run as eval_run
from tests.conftest import GIN, make_trainer, parse
from tests.test_compat import FIXTURES

# A value for each moved name that differs from its default, and what else it needs to be valid.
OLD_VALUES = {
    "log_every": ("7", ()),
    "sample_every": ("7", ()),
    "checkpoint_every": ("7", ()),
    "keep_checkpoints": ("7", ()),
    "num_samples": ("7", ()),
    "eval_every": ("7", ()),
    "eval_samples": ("7", ()),
    "precision": ("'mixed_bfloat16'", ()),
    "non_finite": ("'skip'", ()),
    "max_skips": ("7", ()),
    "deterministic": ("True", ()),
    "jit_compile": ("True", ()),
    "rounds_per_call": ("7", ()),
    "generator_ema": ("0.5", ()),
    "generator_ema_start": ("7", ("EMA.decay = 0.5",)),
    "plots": ("False", ()),
    "saved_model": ("False", ()),
}


def test_the_table_names_every_moved_binding_and_only_real_new_homes():
    assert sorted(OLD_VALUES) == sorted(settings.MOVED)
    parameters = inspect.signature(gan.train).parameters
    for old, new in settings.MOVED.items():
        assert old not in parameters  # the flat name is gone from train
        group, field = new.split(".")
        kind = next(g for g in settings.GROUPS.values() if g.__name__ == group)
        assert field in inspect.signature(kind).parameters
    for name, kind in settings.GROUPS.items():
        assert parameters[name].default == kind()  # an unbound group keeps its defaults


@pytest.mark.parametrize(
    "binding, group, field, value",
    [
        ("Intervals.log_every = 7", "intervals", "log_every", 7),
        ("Intervals.keep_checkpoints = 5", "intervals", "keep_checkpoints", 5),
        ("Numerics.max_skips = 3", "numerics", "max_skips", 3),
        ("Numerics.non_finite = 'skip'", "numerics", "non_finite", "skip"),
        ("EMA.decay = 0.75", "ema", "decay", 0.75),
        ("Outputs.saved_model = True", "outputs", "saved_model", True),  # tiny.gin: False
    ],
)
def test_each_groups_binding_reaches_the_trainer(binding, group, field, value):
    built = make_trainer("gan", binding)
    assert getattr(getattr(built.settings, group), field) == value
    # Bound on its own, the group's class is what train gets: config.parse binds every group.
    kind = settings.GROUPS[group].__name__
    assert f"train.{group} = @{kind}()" in config.parse([str(GIN / "wgan.gin")], [binding])


def test_a_group_bound_explicitly_and_scoped_is_used():
    params = ("train.intervals = @fast/Intervals()", "fast/Intervals.log_every = 3")
    built = make_trainer("gan", *params)
    assert built.settings.intervals.log_every == 3
    assert built.settings.intervals.sample_every == 1  # tiny.gin's unscoped binding, inherited


def test_unbound_groups_keep_their_defaults():
    parse("wgan", tiny=False)  # wgan.gin binds nothing of Outputs
    assert config.train_setting("outputs") == settings.Outputs()
    assert config.train_setting("Outputs.plots") is True


def _bind_old(tmp_path, where, old, value, extra):
    """Binds train.<old> = value in a --gin_param, a gin file, or a file that file includes."""
    binding = f"train.{old} = {value}"
    files, params = [str(GIN / "gan.gin")], [*extra]
    if where == "gin_param":
        params.insert(0, binding)
    else:
        # Named for the test: gin keeps searching the folders of earlier parses for includes.
        name = f"old_{old}_{where.replace(' ', '_')}.gin"
        (tmp_path / name).write_text(f"# an old file\n{binding}\n")
        files.append(str(tmp_path / name))
        if where == "included file":
            (tmp_path / "outer.gin").write_text(f"include '{name}'\n")
            files[-1] = str(tmp_path / "outer.gin")
    return config.parse(files, params)


@pytest.mark.parametrize("where", ["gin_param", "gin file", "included file"])
@pytest.mark.parametrize("old", sorted(settings.MOVED))
def test_every_old_name_is_read_as_its_new_home_and_says_so(tmp_path, caplog, where, old):
    value, extra = OLD_VALUES[old]
    new = settings.MOVED[old]
    with caplog.at_level(logging.WARNING, logger="absl"):
        text = _bind_old(tmp_path, where, old, value, extra)
    said = [r.getMessage() for r in caplog.records if f"train.{old} is now" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith(f"train.{old} is now {new} ")
    assert f"\n{new} = {value}\n" in text and f"train.{old} " not in text
    assert config.train_setting(old) == ast.literal_eval(value)  # the old name reads it too
    assert config.train_setting(new) == ast.literal_eval(value)


def test_old_and_new_names_build_the_same_trainer():
    old = [f"train.{name} = {value}" for name, (value, _) in OLD_VALUES.items()]
    new = [f"{settings.MOVED[name]} = {value}" for name, (value, _) in OLD_VALUES.items()]
    # Not both XLA and determinism (nor determinism at all: it is process-wide), no evaluator.
    both = ["Numerics.deterministic = False", "train.evaluator = None"]
    assert make_trainer("gan", *old, *both).settings == make_trainer("gan", *new, *both).settings


def test_an_old_name_with_a_bad_value_is_refused_under_its_new_name():
    with pytest.raises(ValueError, match=r"Intervals\.log_every must be an integer >= 1"):
        make_trainer("gan", "train.log_every = 0")
    with pytest.raises(ValueError, match="EMA.decay is the decay"):
        make_trainer("gan", "train.generator_ema = 2.0")


@pytest.mark.parametrize(
    "binding, hint",
    [
        ("Intervals.log_evry = 5", "did you mean ['log_every'"),
        ("Interval.log_every = 5", "did you mean ['Intervals']"),
        ("Numeric.precision = 'float32'", "did you mean ['Numerics']"),
        ("EMA.decy = 0.9", "did you mean ['decay']"),
        ("train.intervals = @Intervalz()", "did you mean ['Intervals']"),
        ("train.log_evry = 5", "did you mean ['Intervals.log_every'"),
        ("train.generator_em = 0.9", "EMA.decay"),
    ],
)
def test_a_misspelt_group_binding_is_refused_with_a_hint(binding, hint):
    with pytest.raises(config.ConfigError) as error:
        parse("gan", binding)
    assert hint in str(error.value)


def test_a_group_of_the_wrong_kind_is_refused():
    with pytest.raises(ValueError, match=r"train.ema must be @EMA\(\) \(a settings.EMA\)"):
        make_trainer("gan", "train.ema = @Intervals()")
    with pytest.raises(config.ConfigError, match="'Numerics.nothing' is not a setting"):
        parse("gan")
        config.train_setting("Numerics.nothing")


# --- a run directory written with the old names -------------------------------------------------


def test_an_old_run_directory_gives_its_settings_under_both_names():
    eval_run.parse_run_config(str(FIXTURES / "old_run"))  # its config.gin: train.generator_ema...
    setup = eval_run.generator_setup()
    assert (setup.generator_ema, setup.precision) == (0.9, "float32")
    assert config.train_setting("generator_ema_start") == config.train_setting("EMA.start") == 1
    assert config.train_setting("intervals").log_every == 1


def test_an_old_run_directory_restores_its_generator_weight_average():
    restored, setup = eval_run.restore_run_generator(str(FIXTURES / "old_run"))
    assert restored.weights == evaluation.AVERAGE
    assert restored.step == 2 and setup.generator_ema == 0.9


def test_an_old_operative_config_parses():
    text = config.parse([str(FIXTURES / "old_run" / rundir.OPERATIVE_CONFIG_FILE)])
    assert "EMA.decay = 0.9" in text and "train.generator_ema" not in text


def test_an_old_run_directory_is_resumed_by_the_same_experiment_and_by_its_new_spelling(tmp_path):
    run = tmp_path / "old_run"
    shutil.copytree(FIXTURES / "old_run", run)
    old = config.parse([str(FIXTURES / "old_run.gin")], ["NUM_STEPS = 4"])
    assert rundir.RunDirectory(str(run), old).check()  # a resume, not a refusal
    spelled = (FIXTURES / "old_run.gin").read_text()
    for name, new in settings.MOVED.items():
        spelled = spelled.replace(f"train.{name} =", f"{new} =")
    (tmp_path / "new.gin").write_text(spelled)  # includes the shipped gan.gin
    new_text = config.parse([str(tmp_path / "new.gin")], ["NUM_STEPS = 4"])
    assert "train.generator_ema" not in spelled and rundir.RunDirectory(str(run), new_text).check()
    changed = config.parse([str(tmp_path / "new.gin")], ["Intervals.log_every = 3"])
    with pytest.raises(rundir.RunDirectoryError, match=r"\+Intervals.log_every = 3"):
        rundir.RunDirectory(str(run), changed).check()
