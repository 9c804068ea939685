"""The report's figures drawn from real results: a short training run measured against a live
fake powercap tree and a smoke-suite benchmark, plus copies of both edited down to nothing."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from conftest import ReportResults

from bigbench.reporting import style
from bigbench.reporting.figures import ReportFigure, _Config, _pareto, draw_figures
from bigbench.reporting.inputs import load_inputs

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
NO_RAPL = "RAPL: no powercap interface at /nowhere (a virtual machine or container without RAPL)"
BENCH_KEYS = ["throughput", "latency", "energy", "tradeoff"]


@pytest.fixture
def results(report_results: ReportResults) -> ReportResults:
    """One training run (with power.csv and measured energy) and one smoke benchmark."""
    return report_results


def copy_run(source: Path, dest: Path, edit=None, metrics=None) -> Path:
    """A copy of a run directory, its run.json passed through ``edit`` (a dict → None)."""
    shutil.copytree(source, dest)
    record = json.loads((dest / "run.json").read_text())
    if edit:
        edit(record)
    (dest / "run.json").write_text(json.dumps(record))
    if metrics is not None:
        (dest / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in metrics))
    return dest


def copy_bench(source: Path, dest: Path, edit) -> Path:
    """A copy of a bench directory, every point passed through ``edit`` (a dict → None)."""
    dest.mkdir()
    document = json.loads((source / "bench.json").read_text())
    for point in document["points"]:
        edit(point)
    (dest / "bench.json").write_text(json.dumps(document))
    return dest


def check_png(path: Path, height: int | None = style.PIXELS[1]) -> None:
    """The PNG decodes, has the standard width (and height), and is a real picture."""
    image = matplotlib.image.imread(path)
    assert image.shape[1] == style.PIXELS[0]
    assert image.shape[0] == height if height else image.shape[0] >= style.PIXELS[1]
    rgba = (image * 255).astype(np.uint8).reshape(-1, image.shape[-1])
    colours = np.unique(rgba[:, :3].astype(np.uint32) @ np.array([1 << 16, 1 << 8, 1]))
    assert len(colours) > 50, f"{path.name} looks blank"


def check_svg(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    assert ET.fromstring(text).tag.endswith("svg")
    return text


def by_key(figures: list[ReportFigure]) -> dict[str, ReportFigure]:
    keys = [f.key for f in figures]
    assert len(keys) == len(set(keys)), keys
    return dict(zip(keys, figures, strict=True))


def test_every_figure_drawn_from_a_run_and_a_bench(results: ReportResults,
        tmp_path: Path) -> None:
    from matplotlib import _pylab_helpers

    out = tmp_path / "figures"
    figures = by_key(draw_figures(load_inputs([results.run, results.bench]), out))
    assert list(figures) == ["power-smoke", "loss", *BENCH_KEYS]
    for figure in figures.values():
        assert figure.missing is None, (figure.key, figure.missing)
        assert figure.title and figure.caption.endswith(".")
        assert figure.png == out / f"{figure.key}.png" and figure.svg == out / f"{figure.key}.svg"
        # The energy bar chart grows taller with its rows; every other figure is 800×450.
        check_png(figure.png, None if figure.key == "energy" else style.PIXELS[1])
        check_svg(figure.svg)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{key}.{ext}" for key in figures for ext in ("png", "svg"))
    assert _pylab_helpers.Gcf.get_num_fig_managers() == 0  # nothing left in pyplot

    power = figures["power-smoke"]
    assert "measured-window average" in check_svg(power.svg)
    for window in ("idle", "warmup", "measured", "eval"):
        assert f"<!-- {window} -->" in check_svg(power.svg)  # each window named on the plot
    assert "W" in power.caption and "(s)" in power.caption
    # Every bench point and the run have energy from the fake tree, all of quality "low".
    energy = check_svg(figures["energy"].svg)
    assert "<!-- run smoke (low) -->" in energy and "<!-- cnn/train/fp32/bs16 (low) -->" in energy
    assert "quality low" in figures["energy"].caption
    assert "Pareto front" in figures["tradeoff"].caption
    assert "acc " in check_svg(figures["tradeoff"].svg)  # the run's accuracy annotated


def test_nothing_measured_gives_reasons_not_empty_axes(results: ReportResults,
        tmp_path: Path) -> None:
    def no_energy(record: dict) -> None:
        energy = record["energy"]
        energy.update(status="unavailable", reason=NO_RAPL, quality=None, windows={})
        for name in ("total_j", "uncertainty_j", "j_per_sample", "j_per_sample_uncertainty",
                     "samples_per_j", "avg_power_w", "peak_power_w"):
            energy[name] = None
            energy["reasons"][name] = NO_RAPL
        energy["devices"] = [{"kind": "cpu", "name": "RAPL", "energy_j": None,
                              "measured": False, "reason": NO_RAPL}]
        record["throughput"].update(samples_per_s=None, tokens_per_s=None)
        record["files"]["power"] = None

    run = copy_run(results.run, tmp_path / "run", no_energy, metrics=[])
    (run / "power.csv").unlink()

    def skipped(point: dict) -> None:
        for name in ("model", "samples_per_s", "tokens_per_s", "latency_s", "steps", "memory",
                     "energy", "flops", "compile", "wall_s"):
            point.pop(name, None)
        big = point["settings"]["batch_size"] > 16
        point.update(status="oom" if big else "skipped",
                     reason="out of memory" if big else "precision not supported here")

    bench = copy_bench(results.bench, tmp_path / "bench", skipped)
    out = tmp_path / "figures"
    figures = by_key(draw_figures(load_inputs([run, bench]), out))
    assert list(figures) == ["power-smoke", "loss", *BENCH_KEYS]
    for figure in figures.values():
        assert figure.png is None and figure.svg is None
        assert figure.missing and figure.caption, figure.key
    assert not list(out.iterdir())
    power = figures["power-smoke"].missing
    assert power == f"no power samples: energy was not measured ({NO_RAPL})"
    assert "no run has training loss" in figures["loss"].missing
    for key in ("throughput", "latency"):
        assert figures[key].missing.startswith("no bench point was measured: 4 skipped "
                                               "(precision not supported here); 4 oom")
    assert "precision not supported here" in figures["energy"].missing
    assert NO_RAPL in figures["energy"].missing and NO_RAPL in figures["tradeoff"].missing


def test_missing_inputs_are_named(results: ReportResults,
        tmp_path: Path) -> None:
    only_run = by_key(draw_figures(load_inputs([results.run]), tmp_path / "a"))
    for key in ("throughput", "latency"):
        assert only_run[key].missing.startswith("no bench results given")
    assert only_run["energy"].missing is None  # the run alone has a bar
    only_bench = by_key(draw_figures(load_inputs([results.bench]), tmp_path / "b"))
    assert only_bench["power"].missing.startswith("no training runs given")
    assert only_bench["loss"].missing.startswith("no training runs given")
    assert only_bench["throughput"].missing is None


def test_loss_overlays_several_runs(results: ReportResults,
        tmp_path: Path) -> None:
    first = [json.loads(line) for line in (results.run / "metrics.jsonl").open()]
    lower = [{**e, "loss": e["loss"] * 0.8} if "loss" in e else e for e in first]

    def rename(record: dict) -> None:
        record["name"] = "smoke-b"
        record["data"]["entropy_floor"] = 1.25  # as a language model's generated corpus has

    other = copy_run(results.run, tmp_path / "other", rename, metrics=lower)
    figures = by_key(draw_figures(load_inputs([results.run, other]), tmp_path / "figures"))
    assert {"power-smoke", "power-smoke-b"} <= set(figures)
    loss = figures["loss"]
    svg = check_svg(loss.svg)
    for label in ("smoke: train loss", "smoke-b: train loss", "smoke: eval loss",
                  "smoke-b: eval accuracy", "smoke-b: entropy floor 1.25 nats/token"):
        assert f"<!-- {label} -->" in svg
    assert "entropy floor" in loss.caption and "smoke-b" in loss.caption
    check_png(loss.png)


def test_language_model_points_get_a_per_token_panel(results: ReportResults,
        tmp_path: Path) -> None:
    def as_lm(point: dict) -> None:
        if point["settings"]["model"] != "rnn":
            return
        point["settings"]["seq_len"] = 32
        point["tokens_per_s"] = {k: v * 32 if isinstance(v, float) else v
                                 for k, v in point["samples_per_s"].items()}
        point["tokens_per_s"]["values"] = [v * 32 for v in point["samples_per_s"]["values"]]
        per_token = dict(point["energy"]["j_per_sample"])
        per_token["median"] /= 32
        point["energy"]["j_per_token"] = per_token

    bench = copy_bench(results.bench, tmp_path / "bench", as_lm)
    figures = by_key(draw_figures(load_inputs([bench]), tmp_path / "figures"))
    throughput = figures["throughput"]
    assert "tokens/s" in throughput.caption and "samples/s" in throughput.caption
    svg = check_svg(throughput.svg)
    assert "<!-- throughput (tokens/s) -->" in svg and "<!-- throughput (samples/s) -->" in svg
    assert "<!-- rnn/train/fp32/seq32 -->" in svg
    assert "per token" in figures["energy"].caption
    assert "energy per token" in check_svg(figures["tradeoff"].svg)
    check_png(figures["tradeoff"].png)


def test_pareto_front_minimises_time_and_energy() -> None:
    def config(time_s: float, energy_j: float) -> _Config:
        return _Config(f"{time_s}/{energy_j}", "b", "sample", energy_j, None, "ok", [], time_s)

    points = [config(1, 5), config(2, 3), config(3, 4), config(4, 1), config(2, 6)]
    assert [c.label for c in _pareto(points)] == ["1/5", "2/3", "4/1"]


def test_series_differ_in_more_than_colour() -> None:
    styles = style.series_styles(12)
    shapes = {(s.marker, s.linestyle) for s in styles}
    assert len(shapes) == 12 and len({s.color for s in styles}) == len(style.COLORS)
    assert style.PIXELS == (800, 450)


def test_a_legend_too_long_to_fit_says_how_many_entries_it_left_out(tmp_path: Path) -> None:
    from matplotlib.lines import Line2D

    from bigbench.reporting.figures import MAX_LEGEND, _legend

    with style.context():
        figure = style.new_figure()
        handles = [Line2D([], [], label=f"series {i}") for i in range(MAX_LEGEND + 10)]
        _legend(figure, handles)
        labels = [t.get_text() for t in figure.legends[0].get_texts()]
    assert len(labels) == MAX_LEGEND
    assert labels[-1] == "… and 11 more (see the tables)"
