"""Sweeps: axis parsing, the grid, the shipped GAN-to-WGAN ladder, and a small sweep end to end."""

from __future__ import annotations

import csv
import json
import os
import signal
import time

import pytest
import tensorflow as tf

import gin
from ganpipe import config, sweeps
from ganpipe.models import factories
from tests import prestarted
from tests.conftest import GIN, REPO, run_module

LADDER = GIN / "sweeps" / "gan_to_wgan.gin"


@pytest.mark.parametrize(
    "text, key, values",
    [
        ("train.loss='hinge','wasserstein'", "train.loss", ["'hinge'", "'wasserstein'"]),
        ("VALUE_RANGE=(-1.0, 1.0),(0.0,1.0)", "VALUE_RANGE", ["(-1.0, 1.0)", "(0.0,1.0)"]),
        ("x.y=[1, 2],{'a': 1, 'b': 2}", "x.y", ["[1, 2]", "{'a': 1, 'b': 2}"]),
        ("s.t='a,b',\"c,d\"", "s.t", ["'a,b'", '"c,d"']),
        (" Schedule.critic_steps = 1, 5 ", "Schedule.critic_steps", ["1", "5"]),
        ("train.penalty=None,@GradientPenalty()", "train.penalty", ["None", "@GradientPenalty()"]),
    ],
)
def test_parse_axis_splits_at_top_level_commas_only(text, key, values):
    assert sweeps.parse_axis(text) == (key, values)


@pytest.mark.parametrize(
    "text, problem",
    [
        ("train.loss", "<binding>=<v1>"),
        ("=1,2", "<binding>=<v1>"),
        ("a.b=1,,2", "Empty value"),
        ("a.b=(1,2", "Unclosed"),
        ("a.b='x,y", "Unclosed"),
        ("a.b=1),2", "Unbalanced"),
        ("a.b=1,1", "repeats"),
    ],
)
def test_bad_axes_are_refused_with_the_reason(text, problem):
    with pytest.raises(sweeps.SweepError, match=problem):
        sweeps.parse_axis(text)


def test_grid_is_the_product_of_ladder_and_axes_with_cumulative_rungs():
    sweep = sweeps.make_sweep(
        gin_files=["gan.gin"],
        axes=["a.x=1,2,3", "b.y='p','q'"],
        ladder=[("base", []), ("one", ["c.z = 1"]), ("two", ["d.w = 2", "e.v = 3"])],
    )
    grid = sweeps.cells(sweep)
    assert len(grid) == 3 * 3 * 2
    assert len({cell.name for cell in grid}) == len(grid)
    first, last = grid[0], grid[-1]
    assert first.bindings == ("a.x = 1", "b.y = 'p'")
    assert last.bindings == ("c.z = 1", "d.w = 2", "e.v = 3", "a.x = 3", "b.y = 'q'")
    assert last.coordinates == (("rung", "2_two"), ("a.x", "3"), ("b.y", "'q'"))
    assert last.label == "2_two, x=3, y='q'"


@pytest.mark.parametrize(
    "kwargs, problem",
    [
        ({"gin_files": []}, "needs an experiment"),
        ({"seeds": 0}, "seeds"),
        ({"checkpoint": "newest"}, "checkpoint"),
        ({"ladder": [("a", []), ("a", [])]}, "unique"),
        ({"ladder": [("a", "x.y = 1")]}, "rung must be"),
        ({"gin_params": ["train.seed = 3"]}, "train.seed"),
        ({"axes": ["nothing"]}, "<binding>"),
    ],
)
def test_bad_sweeps_are_refused(kwargs, problem):
    arguments = {"gin_files": ["gan.gin"], **kwargs}
    with pytest.raises(sweeps.SweepError, match=problem):
        sweeps.make_sweep(**arguments)


def _comparable(text: str) -> set[str]:
    return {line for line in text.splitlines() if line.strip() and not line.startswith("#")}


def _ladder():
    sweep = sweeps.load_sweep_file(str(LADDER))
    return sweep, sweeps.cells(sweep)


def test_ladder_has_the_documented_rungs_and_three_seeds():
    sweep, grid = _ladder()
    assert [cell.label for cell in grid] == [
        "0_gan",
        "1_wasserstein_loss",
        "2_no_sigmoid",
        "3_weight_clipping",
        "4_rmsprop",
        "5_five_critic_steps",
        "6_gradient_penalty",
    ]
    assert len(grid) == 7
    assert sweep.seeds >= 3
    budget = [p for p in sweep.gin_params if p.startswith("train.max_train_seconds")]
    assert len(budget) == 1  # one wall-clock budget for every run


def test_ladder_rung_five_is_exactly_the_wgan_experiment():
    sweep, grid = _ladder()
    rung = config.parse(list(sweep.gin_files), sweeps.run_bindings(sweep, grid[5], 0))
    wgan = config.parse([str(GIN / "wgan.gin")], [*sweep.gin_params, "train.seed = 0"])
    # Equal up to the one binding that only the ladder writes explicitly (its default value).
    difference = _comparable(rung) ^ _comparable(wgan)
    assert difference <= {"build_critic.output_activation = None"}


def test_precision_sweep_trains_dcgan_alike_in_float32_and_bfloat16():
    sweep = sweeps.load_sweep_file(str(GIN / "sweeps" / "precision_dcgan.gin"))
    grid = sweeps.cells(sweep)
    assert [cell.bindings for cell in grid] == [
        ("Numerics.precision = 'float32'",),
        ("Numerics.precision = 'mixed_bfloat16'",),
    ]
    assert sweep.seeds >= 3
    steps = set()
    for cell in grid:
        config.parse(list(sweep.gin_files), sweeps.run_bindings(sweep, cell, 0))
        assert gin.query_parameter("Numerics.precision") in ("float32", "mixed_bfloat16")
        steps.add(gin.query_parameter("%NUM_STEPS"))
        # The same number of generator updates, and no wall-clock budget to cut either short.
        assert _query("train.max_train_seconds") is None
    assert steps == {200}


def _query(name):
    try:
        return gin.query_parameter(name)
    except ValueError:
        return None


def test_each_ladder_rung_changes_what_it_names():
    sweep, grid = _ladder()
    seen = []
    for cell in grid:
        config.parse(list(sweep.gin_files), sweeps.run_bindings(sweep, cell, 0))
        critic = config.CONFIGURABLES["build_critic"](input_shape=(28, 28, 1))
        seen.append(
            {
                "loss": _query("train.loss"),
                "sigmoid": factories.final_activation(critic) == "sigmoid",
                "constraint": str(_query("train.critic_constraint")),
                "optimizer": str(_query("train.critic_optimizer")),
                "critic_steps": _query("Schedule.critic_steps"),
                "generator_steps": _query("Schedule.generator_steps"),
                "penalty": str(_query("train.penalty")),
            }
        )
        gin.clear_config()
    changes = [
        {key for key in seen[i] if seen[i][key] != seen[i - 1][key]} for i in range(1, len(seen))
    ]
    assert seen[0]["loss"] == "non_saturating"
    assert (seen[0]["critic_steps"], seen[0]["generator_steps"]) == (1, 1)
    assert not seen[0]["sigmoid"]  # the non-saturating loss applies the sigmoid itself
    assert changes == [
        {"loss", "sigmoid"},  # wasserstein, the sigmoid moved onto the critic's output
        {"sigmoid"},
        {"constraint"},
        {"optimizer"},
        {"critic_steps"},
        {"constraint", "penalty"},
    ]
    assert seen[1]["sigmoid"] and not seen[2]["sigmoid"]
    assert "WeightClip" in seen[3]["constraint"] and seen[6]["constraint"] == "None"
    assert "RMSprop" in seen[4]["optimizer"]
    assert seen[5]["critic_steps"] == 5
    assert "GradientPenalty" in seen[6]["penalty"]


def test_markdown_table_reports_mean_and_sample_std_per_cell():
    grid = [
        sweeps.Cell("00_a", "a", (), (("rung", "a"),)),
        sweeps.Cell("01_b", "b", (), (("rung", "b"),)),
    ]
    rows = [
        {"cell": "00_a", "seed": 0, "status": "done", "fd": 10.0, "steps": 100},
        {"cell": "00_a", "seed": 1, "status": "done", "fd": 14.0, "steps": 110},
        {"cell": "00_a", "seed": 2, "status": "done", "fd": 12.0, "steps": 120},
        {"cell": "01_b", "seed": 0, "status": "non_finite", "steps": 7},
        {"cell": "01_b", "seed": 1, "status": "done", "fd": 5.0, "steps": 50},
    ]
    summary = sweeps.aggregate(rows, grid)
    assert summary[0]["fd"] == pytest.approx((12.0, 2.0))  # sample std of 10, 14, 12
    assert summary[0]["steps"] == pytest.approx((110.0, 10.0))
    assert (summary[1]["runs"], summary[1]["done"], summary[1]["non_finite"]) == (2, 1, 1)
    table = sweeps.markdown_table(summary)
    assert "| a | 3/3 | 110 ± 10 | 12.00 ± 2.00 |" in table
    assert "| b | 1/2 (1 NaN) | 28 ± 30 | 5.00 |" in table


def test_w_estimate_first_and_last_are_means_of_the_first_and_last_fifth(tmp_path):
    path = tmp_path / "metrics.jsonl"
    rows = [
        {"step": 10 * (i + 1), "elapsed_seconds": i, "wasserstein_estimate": i} for i in range(10)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 11')
    summary = sweeps.summarize_training(str(path))
    assert summary["steps"] == 100 and summary["train_seconds"] == 9
    assert summary["w_estimate_first"] == pytest.approx(0.5)  # rows 0 and 1
    assert summary["w_estimate_last"] == pytest.approx(8.5)  # rows 8 and 9


def _sweep_args(output_dir, *extra):
    return (
        f"--gin_file={GIN / 'gan.gin'}",
        f"--gin_file={GIN / 'testing' / 'tiny.gin'}",
        "--gin_param=NUM_STEPS = 3",
        # Real images, so that the pinned Fashion-MNIST evaluator scores the runs.
        "--gin_param=load_images.source = 'fashion_mnist'",
        "--gin_param=load_images.limit = 256",
        "--axis=Schedule.critic_steps=1,2",
        "--gin_param=Schedule.share_noise = False",
        "--seeds=1",
        "--eval_samples=200",
        f"--output_dir={output_dir}",
        *extra,
    )


def _logged_steps(run_dir):
    return [
        json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()
    ]


@pytest.mark.slow  # end to end: ganpipe.main and ganpipe.evaluate processes per run
@pytest.mark.skipif(
    not os.path.isdir("/usr/share/datasets/fashion-mnist"),
    reason="scoring needs the Fashion-MNIST test split",
)
def test_small_sweep_interrupted_resumed_scored_then_rerun_without_training(tmp_path):
    # Two cells, one seed each, trained side by side (--parallel=2). tests/held_run.py holds the
    # first run to reach step 30 until the stop signal has arrived, so the sweep is interrupted
    # mid-run however fast the machine. What more seeds add (the mean and std per cell, more
    # seeds extending a sweep) is tested without training, above and below.
    out, held = tmp_path / "sweep", tmp_path / "held_at"
    (tmp_path / "held.gin").write_text("import tests.held_run\n")
    args = _sweep_args(
        out,
        f"--gin_file={tmp_path / 'held.gin'}",
        "--gin_param=NUM_STEPS = 40",
        "--gin_param=Intervals.checkpoint_every = 50",
        "--gin_param=Intervals.sample_every = 1000",
        "--parallel=2",
    )
    hold = {"GANPIPE_TEST_HOLD_AT": "30", "GANPIPE_TEST_HOLD_MARKER": str(held)}
    process = prestarted.popen(
        ["-m", "ganpipe.sweep", *args],
        cwd=REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **hold},
    )
    deadline = time.monotonic() + 300
    try:
        while not held.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert held.exists() and process.poll() is None, "no run was held at step 30"
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 4, stderr[-3000:]
    stopped_at = int(held.read_text())  # the held round finished, was logged and checkpointed
    assert 30 <= stopped_at < 40
    run_dirs = sorted(out.glob("runs/*/seed0"))
    assert len(run_dirs) == 2
    unfinished = [d for d in run_dirs if not (d / "result.json").exists()]
    assert stopped_at in [_logged_steps(d)[-1] for d in unfinished]
    for run_dir in unfinished:
        # Every round up to the stop logged once, and the resume starts from there (the runs'
        # checkpoint_every is 50): the signal checkpointed each run.
        steps = _logged_steps(run_dir)
        assert steps == list(range(1, steps[-1] + 1))
        latest = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
        assert latest.endswith(f"ckpt-{steps[-1]}")

    result = run_module("ganpipe.sweep", *args, timeout=900, env=hold)  # held_at exists: no hold
    assert result.returncode == 0, result.stderr[-3000:]
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert {(r["Schedule.critic_steps"], r["seed"]) for r in rows} == {("1", "0"), ("2", "0")}
    assert len(rows) == 2
    for row in rows:
        assert row["status"] == "done" and int(row["steps"]) == 40
        assert float(row["fd"]) > 0 and 0 <= float(row["precision"]) <= 1
        run_dir = out / "runs" / row["cell"] / f"seed{row['seed']}"
        assert _logged_steps(run_dir) == list(range(1, 41))
        assert (run_dir / "generator.keras").is_file() and (run_dir / "eval.json").is_file()
        operative = (run_dir / "operative_config.gin").read_text()
        assert f"train.seed = {row['seed']}" in operative
        assert f"Schedule.critic_steps = {row['Schedule.critic_steps']}" in operative
    assert rows[0]["fd"] != rows[1]["fd"]  # the two cells trained different models
    table = (out / "results.md").read_text()
    assert table.count("| 1/1 |") == 2
    assert (out / "fd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list(out.glob("hparams/*/seed*/events.out.tfevents.*"))) == 2

    stamps = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/result.json")}
    again = run_module("ganpipe.sweep", *args, timeout=300, env=hold)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "0 to run" in again.stderr
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps

    other = run_module("ganpipe.sweep", *args, "--first_seed=1", timeout=300)
    assert other.returncode == 2 and "another sweep (different first_seed)" in other.stderr


def _directory_runner(output_dir, **kwargs):
    sweep = sweeps.make_sweep(gin_files=["gan.gin"], axes=["a.x=1,2"], **kwargs)
    runner = sweeps.Runner(sweep, str(output_dir))
    runner.check_directory()
    return runner


def test_more_seeds_extend_a_sweep_and_anything_else_is_another_sweep(tmp_path, caplog):
    _directory_runner(tmp_path, seeds=2)
    with caplog.at_level("INFO", logger="absl"):
        runner = _directory_runner(tmp_path, seeds=3)
    assert "from 2 to 3 seeds" in caplog.text
    assert json.loads((tmp_path / "sweep.json").read_text())["seeds"] == 3
    assert sorted({seed for _, seed in runner.jobs()}) == [0, 1, 2]
    for changed, what in (({"seeds": 2}, "seeds"), ({"seeds": 3, "first_seed": 1}, "first_seed")):
        with pytest.raises(sweeps.SweepError, match=f"another sweep \\(different {what}\\)"):
            _directory_runner(tmp_path, **changed)


def test_first_seed_shifts_the_seeds_and_a_sweep_json_without_it_means_zero(tmp_path):
    runner = _directory_runner(tmp_path / "later", seeds=2, first_seed=1)
    assert [seed for _, seed in runner.jobs()] == [1, 1, 2, 2]  # seed-major
    assert runner.run_dir(runner.cells[0], 2).endswith("seed2")
    old = tmp_path / "old"
    _directory_runner(old, seeds=2)
    saved = json.loads((old / "sweep.json").read_text())
    del saved["first_seed"]
    (old / "sweep.json").write_text(json.dumps(saved))
    _directory_runner(old, seeds=2)  # resumes, not refused
    with pytest.raises(sweeps.SweepError, match="first_seed"):
        sweeps.make_sweep(gin_files=["gan.gin"], first_seed=-1)


def test_a_sweep_written_with_moved_bindings_is_the_same_sweep_under_the_new_names(tmp_path):
    # sweep.json and a result of a sweep run before train's settings were grouped.
    def spec(*names):
        return sweeps.make_sweep(
            gin_files=["gan.gin"], gin_params=[f"{names[0]} = 50"], axes=[f"{names[1]}=0.9,0.99"],
            ladder=[("ema", [f"{names[1]} = 0.5"])], seeds=1,
        )  # fmt: skip

    old, new = (
        spec("train.log_every", "train.generator_ema"),
        spec("Intervals.log_every", "EMA.decay"),
    )
    sweeps.Runner(old, str(tmp_path)).check_directory()
    runner = sweeps.Runner(new, str(tmp_path))
    runner.check_directory()  # resumes, not refused
    cell = runner.cells[0]
    row = {"cell": cell.name, "train.generator_ema": "0.9", "status": "done"}
    (tmp_path / "runs" / cell.name / "seed0").mkdir(parents=True)
    (tmp_path / "runs" / cell.name / "seed0" / sweeps.RESULT).write_text(json.dumps(row))
    assert runner.finished(cell, 0) == {"cell": cell.name, "EMA.decay": "0.9", "status": "done"}
    assert dict(cell.coordinates)["EMA.decay"] == "0.9"  # the same column as the new runs'
    with pytest.raises(sweeps.SweepError, match="different gin_params"):
        sweeps.Runner(spec("Intervals.sample_every", "EMA.decay"), str(tmp_path)).check_directory()


def test_a_typo_stops_the_sweep_before_any_run(tmp_path):
    out = tmp_path / "sweep"
    result = run_module(
        "ganpipe.sweep", *_sweep_args(out, "--axis=Schedule.critc_steps=1,2"), timeout=300
    )
    assert result.returncode == 2
    assert "critc_steps" in result.stderr and "did you mean" in result.stderr
    assert not (out / "runs").exists()


FAST_LADDER = GIN / "sweeps" / "fast_ladder.gin"


def _fast_rungs():
    sweep = sweeps.load_sweep_file(str(FAST_LADDER))
    grid = sweeps.cells(sweep)
    seen = []
    for cell in grid:
        config.parse(list(sweep.gin_files), sweeps.run_bindings(sweep, cell, 0))
        seen.append(
            {
                "loss": _query("train.loss"),
                "constraint": str(_query("train.critic_constraint")),
                "penalty": str(_query("train.penalty")),
                "on": _query("R1Penalty.on"),
                "spectral": _query("build_critic.spectral_norm"),
                "augment": str(_query("train.augment")),
                "ema": _query("EMA.decay"),
                "critic_steps": _query("Schedule.critic_steps"),
            }
        )
        gin.clear_config()
    return sweep, grid, seen


def test_fast_ladder_walks_gan_to_rpgan_with_augmentation_and_average():
    sweep, grid, seen = _fast_rungs()
    assert [c.label for c in grid] == [
        "0_gan", "1_wgan", "2_wgan_gp", "3_sngan", "4_ns_r1", "5_rpgan_r1_r2", "6_diffaugment",
        "7_ema",
    ]  # fmt: skip
    assert sweep.seeds == 3 and "train.max_train_seconds = 240" in sweep.gin_params
    assert [s["loss"] for s in seen] == [
        "non_saturating", "wasserstein", "wasserstein", "hinge", "non_saturating", "rpgan",
        "rpgan", "rpgan",
    ]  # fmt: skip
    assert "WeightClip" in seen[1]["constraint"] and seen[2]["constraint"] == "None"
    assert "GradientPenalty" in seen[2]["penalty"] and seen[3]["penalty"] == "None"
    assert seen[3]["spectral"] and not seen[4]["spectral"]
    assert "R1Penalty" in seen[4]["penalty"] and (seen[4]["on"], seen[5]["on"]) == ("real", "both")
    assert seen[5]["augment"] == "None" and "DiffAugment" in seen[6]["augment"]
    assert [s["ema"] for s in seen] == [None] * 7 + [0.995]
    assert [s["critic_steps"] for s in seen] == [1, 5, 5, 1, 1, 1, 1, 1]


def test_fast_ladder_ns_r1_rung_with_the_average_is_the_recipe_it_was_run_with():
    # The ladder pins what the unconditional recipe was when the ladder ran (R1 on every update,
    # Adam 2e-4); with the average, its NS + R1 rung is exactly that recipe, and the pins are the
    # only differences from today's gin/recommended_unconditional.gin.
    sweep, grid, seen = _fast_rungs()
    names = ("train.loss", "train.penalty", "R1Penalty.gamma", "R1Penalty.on", "R1Penalty.every",
             "generator/Adam.beta_1", "critic/Adam.beta_2", "generator/Adam.learning_rate",
             "critic/Adam.learning_rate", "Schedule.critic_steps", "EMA.decay",
             "EMA.start", "train.batch_size", "train.augment",
             "train.num_classes")  # fmt: skip

    def bound(files, params):
        config.parse(files, params)
        values = {name: str(_query(name)) for name in names}
        gin.clear_config()
        return values

    average = ["EMA.decay = 0.995", "EMA.start = 200"]
    rung = bound(list(sweep.gin_files), [*sweeps.run_bindings(sweep, grid[4], 0), *average])
    recipe = [str(GIN / "recommended_unconditional.gin")]
    assert list(sweep.gin_files) == recipe
    assert rung == bound(recipe, [*sweep.gin_params, "train.seed = 0"])
    today = bound(recipe, ["train.seed = 0"])
    differs = {name for name in names if rung[name] != today[name]}
    assert differs == {"R1Penalty.every", "generator/Adam.learning_rate",
                       "critic/Adam.learning_rate"}  # fmt: skip
    assert (today["R1Penalty.every"], rung["R1Penalty.every"]) == ("16", "1")
    assert seen[4]["spectral"] is False  # bound off again; the recipe leaves the default


def test_recommended_is_the_unconditional_recipe_made_class_conditional():
    def lines(name):
        config.parse([str(GIN / f"{name}.gin")], [])
        text = gin.config_str()
        gin.clear_config()
        return {line for line in text.splitlines() if line and not line.startswith("#")}

    conditional, unconditional = lines("recommended"), lines("recommended_unconditional")
    assert unconditional <= conditional  # every binding of the unconditional recipe holds
    assert conditional - unconditional == {
        "train.num_classes = 10",
        "build_generator.conditioning = 'class_batch_norm'",
        "build_critic.conditioning = 'projection'",
        "Intervals.num_samples = 100",
    }


@pytest.mark.parametrize("name", ["fast_ladder", "gan_to_wgan", "precision_dcgan"])
def test_every_cell_of_every_shipped_sweep_builds_its_trainer(name):
    # Parsing alone misses refusals that only the trainer's settings make (an average's start
    # without an average, a rung undoing half of a pair): build every cell, tiny.
    sweep = sweeps.load_sweep_file(str(GIN / "sweeps" / f"{name}.gin"))
    built = {}
    for cell in sweeps.cells(sweep):
        files = [*sweep.gin_files, str(GIN / "testing" / "tiny.gin")]
        config.parse(
            files, [*sweeps.run_bindings(sweep, cell, 0), "train.max_train_seconds = None"]
        )
        try:
            config.make_trainer()
        except Exception as error:
            raise AssertionError(f"{name}, cell {cell.label}: {error}") from error
        built[cell.label] = gin.operative_config_str()
        gin.clear_config()
    # Every cell built its trainer, and no two the same one (a cell whose bindings changed
    # nothing the trainer used would).
    assert list(built) == [cell.label for cell in sweeps.cells(sweep)] and len(built) > 1
    assert len(set(built.values())) == len(built)


def test_combining_sweep_directories_refuses_a_run_given_twice_or_outside_the_grid(tmp_path):
    from benchmarks import combine_sweeps

    header = "cell,label,seed,status,fd,steps\n"
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text(header + "00_x,x,0,done,10.0,5\n01_y,y,0,done,20.0,\n")
    second.write_text(header + "00_x,x,1,done,12.0,6\n")
    rows = combine_sweeps.read_rows([str(first), str(second)], {"00_x", "01_y"})
    assert [(r["cell"], r["seed"]) for r in rows] == [("00_x", "0"), ("01_y", "0"), ("00_x", "1")]
    assert "steps" not in rows[1]  # an empty field is a value not measured, not a zero
    with pytest.raises(SystemExit, match="also in"):
        combine_sweeps.read_rows([str(first), str(first)], {"00_x", "01_y"})
    with pytest.raises(SystemExit, match="not in the sweep's grid"):
        combine_sweeps.read_rows([str(first)], {"00_x"})
