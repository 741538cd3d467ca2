"""plots/metrics.png and samples/timeline.png: what they show, and what they may cost."""

import json

import numpy as np
import pytest
from PIL import Image

from ganpipe import rundir
from ganpipe.training import plots
from ganpipe.training.callbacks import Plots, Round

ROWS = [
    {"step": s, "elapsed_seconds": s / 10, "critic_loss": -s / 5, "generator_loss": 1.0 + s,
     "critic_real": 2.0 * s, "critic_fake": -1.0 * s, "gradient_penalty": 0.1 / s,
     "steps_per_second": 10.0}
    for s in range(1, 11)
] + [{"step": 10, "elapsed_seconds": 1.0, "eval_fd": 120.0, "eval_kid": 0.5}]  # fmt: skip


def test_series_holds_each_metric_by_step_and_the_score_gap():
    data = plots.series(ROWS)
    assert "real_minus_fake" not in plots.series([{**ROWS[0], "wasserstein_estimate": 1.0}])
    steps, values = data["real_minus_fake"]
    np.testing.assert_array_equal(steps, np.arange(1, 11))
    np.testing.assert_array_equal(values, 3.0 * np.arange(1, 11))  # real 2s - fake (-s)
    assert data["eval_fd"][0].tolist() == [10] and data["eval_fd"][1].tolist() == [120.0]
    assert "elapsed_seconds" not in data and "step" not in data


def test_panels_put_losses_scores_and_each_metric_in_its_place():
    chosen = {title: (members, log) for title, members, log in plots.panels(plots.series(ROWS))}
    assert chosen["losses"] == (("critic_loss", "generator_loss"), False)
    scores = [t for t in chosen if t.startswith("critic scores")][0]
    assert chosen[scores][0] == ("critic_real", "critic_fake", "real_minus_fake")
    assert chosen["Fréchet distance (evaluator)"] == (("eval_fd",), True)
    assert chosen["gradient penalty"] == (("gradient_penalty",), True)
    assert chosen["steps per second"] == (("steps_per_second",), False)


def test_the_metrics_figure_is_a_png_and_needs_rows(tmp_path):
    path = tmp_path / "metrics.png"
    assert plots.metrics_figure(ROWS, str(path))
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 500 and image.height > 200
    assert not plots.metrics_figure([], str(tmp_path / "none.png"))
    assert not (tmp_path / "none.png").exists()


@pytest.mark.parametrize(
    ("low", "high", "labelled"),
    [(0.15, 3.5, {"0.2", "0.3", "0.4", "0.6", "1", "2", "3"}),  # over a decade: 2, 3, 4, 6
     (0.5, 0.9, {"0.5", "0.6", "0.7", "0.8", "0.9"}),  # under a decade: every minor tick
     (1.0, 150.0, {"1", "10", "100"})],  # two decades: the decades only
)  # fmt: skip
def test_log_axes_label_plain_numbers_that_do_not_crowd(low, high, labelled):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure()
    axes = figure.add_subplot()
    axes.plot([0, 1], [low, high])
    plots.plain_log_axis(axes)
    axes.set_ylim(low, high)
    FigureCanvasAgg(figure).draw()
    labels = axes.yaxis.get_majorticklabels() + axes.yaxis.get_minorticklabels()
    ticks = [(tick.get_position()[1], tick.get_text()) for tick in labels]
    shown = {text for value, text in ticks if text and low <= value <= high}
    assert shown == labelled


def test_read_metrics_skips_a_half_written_last_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n" + '{"step": 2, "crit')
    assert rundir.read_metrics(str(path)) == [ROWS[0]]


@pytest.mark.parametrize("count", [1, 5, 8, 9, 40])
def test_pick_spreads_up_to_eight_keeping_the_first_and_last(count):
    items = list(range(count))
    chosen = plots.pick(items)
    assert len(chosen) == min(count, 8) and chosen == sorted(set(chosen))
    assert chosen[0] == 0 and chosen[-1] == count - 1
    if count > 8:
        gaps = np.diff(chosen)
        assert gaps.max() - gaps.min() <= 1  # even spacing


def _grids(folder, steps, size=(20, 12)):
    folder.mkdir(exist_ok=True)
    for i, step in enumerate(steps):
        pixels = np.full((size[1], size[0], 3), 20 * i, np.uint8)
        Image.fromarray(pixels).save(folder / f"step_{step:06d}.png")


def test_the_timeline_places_the_grids_in_step_order_side_by_side(tmp_path):
    samples = tmp_path / "samples"
    _grids(samples, [1, 10, 100])
    path = samples / rundir.TIMELINE
    assert plots.timeline(str(samples), str(path))
    with Image.open(path) as image:
        sheet = np.asarray(image.convert("RGB"))
    assert sheet.shape[1] == 3 * 20 + 2 * 6 and sheet.shape[0] == 12 + 16
    for i in range(3):  # grid i (by step) at x = i * 26, with its own fill
        assert (sheet[:12, i * 26 : i * 26 + 20] == 20 * i).all()
    assert plots.grids(str(samples)) == [
        (s, str(samples / f"step_{s:06d}.png")) for s in (1, 10, 100)
    ]
    assert not plots.timeline(str(tmp_path / "empty"), str(tmp_path / "t.png"))


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def seconds(self):
        return self.now


def _round(previous, step, **kwargs):
    return Round(previous=previous, step=step, metrics={}, first=previous == 0, **kwargs)


def test_plots_refresh_at_the_interval_only_within_one_percent_of_training_time(tmp_path, caplog):
    (tmp_path / rundir.METRICS).write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    _grids(tmp_path / rundir.SAMPLES, [1, 2])
    clock = FakeClock()
    callback = Plots(
        str(tmp_path / rundir.METRICS), str(tmp_path / rundir.SAMPLES),
        str(tmp_path / rundir.PLOTS), every=10, clock=clock,
    )  # fmt: skip
    callback.begin(0)
    figure = tmp_path / rundir.PLOTS / rundir.METRICS_PLOT
    clock.now = 199.0  # the first drawing's cost is guessed at 1 s: room for two needs 200 s
    callback.after_round(_round(9, 10))
    assert (callback.drawn, callback.skipped) == (0, 1) and not figure.exists()
    callback.skipped = 0
    clock.now = 1e6
    callback.after_round(_round(1, 2))  # not at the interval: nothing
    assert callback.drawn == 0 and not figure.exists()
    callback.after_round(_round(9, 10))  # at the interval, a large budget: drawn
    assert callback.drawn == 1 and figure.exists()
    assert (tmp_path / rundir.SAMPLES / rundir.TIMELINE).exists()
    # Room is kept for this refresh and the end's: spent + 2 x cost within 1%, else skipped.
    assert callback.cost == callback.spent > 0
    clock.now = 100 * 3 * callback.spent * (1 - 1e-9)
    callback.after_round(_round(19, 20))
    assert (callback.drawn, callback.skipped) == (1, 1)
    callback.after_round(_round(20, 21, evaluated={"eval_fd": 1.0}))  # an evaluation, same rule
    assert (callback.drawn, callback.skipped) == (1, 2)
    clock.now = 1e6
    callback.after_round(_round(20, 21, evaluated={"eval_fd": 1.0}))
    assert callback.drawn == 2
    figure.unlink()
    clock.now = 0.0
    with caplog.at_level("INFO", logger="absl"):
        callback.end(_round(21, 22, final=True), None)  # the end always draws
    assert callback.drawn == 3 and figure.exists()
    assert "Plots: drawn 3 times (2 refreshes skipped" in caplog.text


def test_a_drawing_failure_is_logged_and_the_run_goes_on(tmp_path, caplog):
    clock = FakeClock()
    clock.now = 1e6
    (tmp_path / rundir.METRICS).write_text(json.dumps(ROWS[0]) + "\n")
    blocker = tmp_path / "plots_is_a_file"
    blocker.write_text("")
    callback = Plots(
        str(tmp_path / rundir.METRICS), str(tmp_path), str(blocker), every=1, clock=clock
    )
    callback.after_round(_round(0, 1))
    assert callback.drawn == 1 and "Could not draw the run's plots" in caplog.text
