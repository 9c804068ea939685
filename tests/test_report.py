"""``bigbench report`` end to end: the command, the page in a real browser, the Markdown summary,
bad input, and the CI example's commands."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from browser import distinct_colours, find_chromium, inspect_page
from conftest import ReportResults

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def report_dir(report_results: ReportResults, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of the session's run and smoke bench, made through the CLI."""
    from conftest import Cli

    out = tmp_path_factory.mktemp("report") / "report"
    result = Cli()("report", report_results.run, report_results.bench, "--out", out)
    assert result.exit_code == 0, result.stderr
    assert f"report: {out / 'report.html'}" in result.stdout.replace("\n", "")
    return out


def test_the_report_folder_holds_the_page_the_summary_and_every_figure(report_dir: Path) -> None:
    names = {p.name for p in report_dir.iterdir()}
    assert {"report.html", "report.md"} <= names
    stems = {Path(n).stem for n in names if n.endswith(".png")}
    assert stems == {Path(n).stem for n in names if n.endswith(".svg")}
    assert {"power-smoke", "loss", "throughput", "latency", "energy", "tradeoff"} == stems


def test_the_page_is_self_contained(report_dir: Path) -> None:
    page = (report_dir / "report.html").read_text(encoding="utf-8")
    # Every image is a data: URL and nothing refers to another file or the network.
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == 6 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r'(href|src)="(?!data:|#)', page)
    assert "<script" not in page and "http://" not in page and "https://" not in page
    # The tables carry the results and their provenance, with the reasons of every n/a.
    assert "Training runs" in page and "Benchmarks" in page and "Provenance" in page
    assert "cnn/train/fp32/bs16" in page and "rapl" in page
    assert "n/a (CPU run: no device allocator to measure)" in page


@pytest.mark.skipif(find_chromium() is None,
                    reason="no Chromium here (Debian's chromium package; .ci/run installs it)")
def test_the_page_in_a_real_browser(report_dir: Path) -> None:
    page = inspect_page(report_dir / "report.html")
    assert page.external_requests() == []
    assert page.console_errors == []
    assert len(page.images) == 6
    assert all(image.loaded and image.natural_width > 0 for image in page.images), page.images
    assert page.title.startswith("bigbench report")
    assert distinct_colours(page.screenshot) > 100  # figures, not a blank page


def test_the_markdown_summary(report_results: ReportResults, report_dir: Path, cli) -> None:
    text = (report_dir / "report.md").read_text(encoding="utf-8")
    assert text.startswith("## bigbench report (1 runs, 1 benchmarks)")
    run_row = next(line for line in text.splitlines() if line.startswith("| smoke |"))
    cells = [c.strip() for c in run_row.strip("|").split("|")]
    record = json.loads((report_results.run / "run.json").read_text())
    assert cells[1] == record["status"] == "completed"
    assert cells[4] == f"{record['throughput']['samples_per_s']:,.1f}"
    assert re.fullmatch(r"[\d.]+ mJ/sample \((low|ok)\)", cells[7]), cells[7]
    assert "loss n/a" not in text  # the run has its loss: no false footnote
    assert "MFU n/a" in text or "mfu n/a" in text  # a CPU has no peak: the reason is given
    assert "| cnn/train/fp32/bs16 | ok |" in text
    assert "Figures in report.html: 6 of 6 drawn." in text
    printed = cli("report", report_results.run, report_results.bench, "--out",
                  report_dir.parent / "again", "--markdown")
    assert printed.exit_code == 0 and printed.stdout.startswith("## bigbench report")


def test_one_run_gets_its_report_in_its_run_directory(report_results: ReportResults, tmp_path,
                                                      cli) -> None:
    run = shutil.copytree(report_results.run, tmp_path / "run")
    result = cli("report", run)
    assert result.exit_code == 0, result.stderr
    assert (run / "report" / "report.html").is_file()
    # The bench figures are missing with why, on stderr, instead of empty axes.
    assert "n/a: Throughput" in result.stderr and "no bench results given" in result.stderr
    again = cli("report", run)  # a report folder is refreshed in place
    assert again.exit_code == 0, again.stderr


def test_a_run_with_nothing_measured_still_makes_a_report(report_results: ReportResults,
                                                          tmp_path, cli) -> None:
    run = shutil.copytree(report_results.run, tmp_path / "failed")
    record = json.loads((run / "run.json").read_text())
    # A run killed mid-way: run.json as written at the start, no measured section at all.
    for key in ("progress", "throughput", "memory", "energy", "flops", "eval", "time",
                "windows", "error", "files", "compile", "carbon", "segments"):
        record.pop(key, None)
    record.update(status="running", finished_at=None, stop_reason=None, stop_detail=None)
    (run / "run.json").write_text(json.dumps(record))
    (run / "power.csv").unlink()
    (run / "metrics.jsonl").write_text('{"event": "train", "step": 2, "loss"')  # torn line
    result = cli("report", run, "--out", tmp_path / "report")
    assert result.exit_code == 0, result.stderr
    page = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    assert "<img" not in page  # nothing to draw, and no empty axes either
    assert page.count('class="missing"') >= 6
    assert "No figures: the run is running" in page


@pytest.mark.parametrize("bad", ["missing", "not-json", "other-schema"])
def test_unusable_results_are_one_line_each(bad: str, tmp_path, cli) -> None:
    path = tmp_path / "result.json"
    if bad == "not-json":
        path.write_text("{ not json")
    elif bad == "other-schema":
        path.write_text(json.dumps({"schema": "something/1"}))
    result = cli("report", path, "--out", tmp_path / "report")
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in result.stderr
    assert not (tmp_path / "report").exists()


def test_train_and_bench_print_the_report_command(report_results: ReportResults,
                                                  write_config, tmp_path, cli) -> None:
    from conftest import TINY_CNN

    out = tmp_path / "run"
    trained = cli("train", write_config(TINY_CNN), "--out", out)
    assert trained.exit_code == 0
    assert f"figures: bigbench report {out}" in trained.stderr.replace("\n", "")
    bench = tmp_path / "bench"
    benched = cli("bench", "--device", "cpu", "--models", "rnn", "--batch-sizes", "4", "--mode",
                  "infer", "--duration", "0.02", "--repeats", "1", "--warmup", "1", "--out", bench)
    assert benched.exit_code == 0, benched.stderr
    assert f"figures: bigbench report {bench}" in benched.stderr.replace("\n", "")


def test_the_ci_example_uses_real_commands_and_options(cli) -> None:
    """Every bigbench command in docs/ci-example.yml exists and takes the options it passes."""
    workflow = yaml.safe_load((ROOT / "docs" / "ci-example.yml").read_text())
    commands = [line.strip() for step in workflow["jobs"]["benchmark"]["steps"]
                for line in str(step.get("run", "")).splitlines()
                if line.strip().startswith("bigbench ")]
    assert {c.split()[1] for c in commands} == {"bench", "report", "compare"}
    for command in commands:
        words = command.split(">>")[0].split()
        help_text = cli(words[1], "--help").stdout
        for option in (w for w in words[2:] if w.startswith("--")):
            assert option in help_text, f"{option} is not an option of bigbench {words[1]}"


def test_a_refreshed_report_folder_keeps_no_stale_figure(report_results: ReportResults,
                                                          tmp_path, cli) -> None:
    out = tmp_path / "report"
    assert cli("report", report_results.run, report_results.bench, "--out", out).exit_code == 0
    (out / "notes.txt").write_text("mine")
    assert cli("report", report_results.run, "--out", out).exit_code == 0
    pngs = {p.stem for p in out.glob("*.png")}
    assert pngs == {"power-smoke", "loss", "energy", "tradeoff"}  # the bench's are gone
    assert (out / "notes.txt").read_text() == "mine"  # nothing else is touched
    assert cli("report", report_results.run, "--out", out / "notes.txt").exit_code == 2


def test_names_are_drawn_as_text_never_parsed(report_results: ReportResults, tmp_path,
                                              cli) -> None:
    run = shutil.copytree(report_results.run, tmp_path / "run")
    record = json.loads((run / "run.json").read_text())
    record["name"] = "x$\\frac{a$ <b>&"  # invalid maths, and HTML
    (run / "run.json").write_text(json.dumps(record))
    result = cli("report", run, "--out", tmp_path / "report", "--markdown")
    assert result.exit_code == 0, result.stderr
    assert "drawing failed" not in result.stderr
    assert "&lt;b&gt;" in result.stdout and "<b>" not in result.stdout
    page = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    assert "<b>&" not in page and "&lt;b&gt;&amp;" in page


def test_a_resumed_runs_events_form_one_timeline(tmp_path) -> None:
    from bigbench.reporting.inputs import _last_per_step, _one_timeline

    events = [{"event": "train", "step": s, "time_s": t, "loss": 1.0}
              for s, t in ((10, 1.0), (20, 2.0), (30, 3.0),  # first process, killed at 35
                           (30, 0.5), (40, 1.5))]            # resumed from its step-25 checkpoint
    timeline = _last_per_step(_one_timeline(events))
    assert [e["step"] for e in timeline] == [10, 20, 30, 40]
    assert [e["time_s"] for e in timeline] == [1.0, 2.0, 3.5, 4.5]  # step 30: the later one
