"""Bench tables and CSV: energy quality marks, error bounds, older points without them."""

from __future__ import annotations

import csv
import io

from rich.console import Console

from bigbench.benchmark.output import (
    CSV_COLUMNS,
    console_table,
    csv_row,
    display_row,
    footnotes,
    markdown,
    write_outputs,
)

SHORT = ("window of {:.2f} s is shorter than 1 s (measure.min_energy_window_s); counters "
         "update in steps of up to 100 ms")


def _point(batch: int = 16, j: float | None = 0.000512, quality: str | None = "ok",
           reasons: list[str] | None = None, uncertainty: float | None = None,
           new_keys: bool = True) -> dict:
    energy: dict = {"status": "measured" if j else "unavailable", "reason": None,
                    "j_per_sample": {"median": j, "iqr": 0.0 if j else None,
                                     "values": [j] if j else [], "noisy": False},
                    "devices": [{"kind": "cpu", "name": "package-0", "method": "rapl",
                                 "measured": True, "energy_j": 1.0}]}
    if new_keys:
        energy.update(quality=quality, quality_reasons=reasons or [], repeats=[
            {"window": "repeat-0", "energy_j": 1.0, "uncertainty_j": None,
             "j_per_sample": j, "quality": quality, "quality_reasons": reasons or []}])
        energy["j_per_sample"]["uncertainty"] = uncertainty
    return {"id": f"cnn/train/fp32/bs{batch}",
            "settings": {"model": "cnn", "mode": "train", "precision": "fp32",
                         "batch_size": batch, "compile": False, "channels_last": False,
                         "model_args": {}, "sample_shape": [1, 28, 28]},
            "status": "ok", "reason": None, "error": None,
            "samples_per_s": {"median": 2000.0, "iqr": 100.0, "values": [2000.0],
                              "noisy": False},
            "latency_s": {k: 0.008 for k in ("p50", "p90", "p99", "mean", "min", "max")},
            "memory": {"host_peak_rss_bytes": 1 << 28, "device_peak_allocated_bytes": 1 << 20,
                       "device_peak_reserved_bytes": 1 << 21},
            "energy": energy,
            "flops": {"per_sample": 1000, "mfu": 0.25}, "wall_s": 1.0}


def test_low_quality_is_marked_with_its_bound_and_reasons_once() -> None:
    points = [_point(16, reasons=[SHORT.format(0.05)], quality="low", uncertainty=0.0000154),
              _point(64, reasons=[SHORT.format(0.07)], quality="low")]
    assert display_row(points[0])[5] == "0.512 mJ ± 3% (low)"
    assert display_row(points[1])[5] == "0.512 mJ (low)"
    notes = footnotes(points)
    assert notes == [
        f"J/sample (low): {SHORT.format(0.05)} (and 1 similar)",
        "J/sample (low): for quality ok, measure longer repeats: leave --energy-min-window on "
        "(the default lengthens each repeat to the shortest window that can reach ok) or raise "
        "--duration past the window named above"]


def test_the_hint_names_the_repeat_length_when_known() -> None:
    point = _point(quality="low", reasons=["12 power samples (fewer than 60)"])
    point["steps"] = {"warmup": 1, "measured": 10, "repeats": 2, "measured_time_s": 2.6,
                      "min_repeat_s": 1.24}
    assert footnotes([point])[-1] == ("J/sample (low): repeats of 1.24 s still fell short "
                                      "(e.g. missed power samples): measure longer ones, e.g. "
                                      "--duration 2.48")


def test_ok_quality_shows_only_the_bound() -> None:
    point = _point(uncertainty=0.000000512)
    assert display_row(point)[5] == "0.512 mJ ± 0.1%"
    assert not any(note.startswith("J/sample") for note in footnotes([point]))


def test_invalid_quality_is_marked_with_its_reason() -> None:
    point = _point(quality="invalid", reasons=["energy counter went backwards"])
    assert display_row(point)[5] == "0.512 mJ (invalid)"
    assert footnotes([point]) == ["J/sample (invalid): energy counter went backwards"]


def test_older_points_without_quality_keys_still_render() -> None:
    old = _point(new_keys=False)
    assert display_row(old)[5] == "0.512 mJ"
    row = csv_row(old)
    assert row["energy_quality"] is None and row["j_per_sample_uncertainty"] is None
    assert footnotes([old]) == []


def test_csv_has_quality_and_uncertainty_columns(tmp_path) -> None:
    points = [_point(quality="low", reasons=["x"], uncertainty=0.00001),
              _point(j=None, quality=None)]
    document = {"schema": "bigbench.bench/1", "points": points}
    write_outputs(tmp_path, document)
    rows = list(csv.DictReader(io.StringIO((tmp_path / "bench.csv").read_text())))
    assert list(rows[0]) == CSV_COLUMNS
    assert rows[0]["energy_quality"] == "low" and float(rows[0]["j_per_sample_uncertainty"])
    assert rows[1]["energy_quality"] == "" and rows[1]["j_per_sample"] == ""


def test_markdown_and_console_tables_carry_the_marks() -> None:
    points = [_point(quality="low", reasons=["[12] power samples (fewer than 60)"],
                     uncertainty=0.0000154)]
    document = {"schema": "bigbench.bench/1", "status": "completed", "label": "smoke",
                "started_at": "2026-11-29T14:00:00+00:00", "finished_at": None,
                "env": {"bigbench": "0.1.0", "python": "3.11", "torch": "2.13", "cuda": None,
                        "cudnn": None, "os": "Linux", "hostname": "ci", "cpu": "EPYC",
                        "logical_cpus": 2, "torch_threads": 2,
                        "device": {"type": "cpu", "name": "EPYC"}, "git_commit": None,
                        "argv": []},
                "plan": {"steps": None, "duration_s": 0.25, "warmup": 1, "repeats": 3},
                "isolated": False, "matrix": ["cnn/train/fp32/bs16"], "points": points}
    text = markdown(document)
    assert "| 0.512 mJ ± 3% (low) |" in text
    assert "- J/sample (low): [12] power samples (fewer than 60)" in text
    console = Console(width=200, record=True)
    console.print(console_table(points, "bench"))
    shown = console.export_text()
    assert "0.512 mJ ± 3% (low)" in shown and "[12] power samples" in shown
