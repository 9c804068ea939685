"""``bigbench compare BASE NEW``."""

from __future__ import annotations

from pathlib import Path

import typer

from bigbench.cli.common import err_console, out_console, print_json, user_errors


@user_errors
def compare(
    base: Path = typer.Argument(..., help="Baseline bench.json, or a bench or run directory.",
                                show_default=False),
    new: Path = typer.Argument(..., help="New bench.json, or a bench or run directory.",
                               show_default=False),
    metric: str = typer.Option("samples_per_s,j_per_sample", "--metric",
                               help="Comma-separated metrics: samples_per_s, j_per_sample, "
                               "latency_p50_s, latency_p99_s, device_peak_allocated_bytes, mfu, "
                               "tokens_per_s, j_per_token."),
    fail_above: float = typer.Option(5.0, "--fail-above", min=0.0, metavar="PCT",
                                     help="Regression threshold in percent."),
    json_: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
) -> None:
    """Compare two results; exit 1 when a metric regressed beyond the threshold and the noise.

    Points are matched by model, mode, precision, batch size, compile and channels_last. Lower
    throughput or MFU, and higher J/sample, latency or memory, are worse. A difference inside
    both sides' median ± IQR/2 ranges is noise, not a regression.

    Exit codes: 0 no regression, 1 regression (named), 2 bad input.

    Examples:

      bigbench compare runs/base/bench.json runs/new/bench.json
      bigbench compare base/ new/ --metric samples_per_s --fail-above 10
    """
    from dataclasses import asdict

    from bigbench.comparison import compare as run_compare
    from bigbench.comparison import load_side, parse_metrics

    metrics = parse_metrics(metric)
    result = run_compare(load_side(base), load_side(new), metrics, fail_above)
    console = err_console()
    for warning in result.env_warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    if json_:
        print_json({"rows": [asdict(r) for r in result.rows], "only_base": result.only_base,
                    "only_new": result.only_new, "env_warnings": result.env_warnings,
                    "regressions": [r.point + " " + r.metric for r in result.regressions]})
    else:
        _print(result, fail_above)
    raise typer.Exit(1 if result.regressions else 0)


def _verdict(row) -> str:  # noqa: ANN001
    if row.regression:
        return "[red]REGRESSION[/]"
    if row.within_noise:
        return "noise"
    return "better" if (row.change_pct or 0) * (1 if _higher_better(row.metric) else -1) > 0 \
        else "worse (under threshold)"


def _higher_better(metric: str) -> bool:
    from bigbench.comparison import METRICS

    return METRICS[metric].higher_is_better


def _print(result, fail_above: float) -> None:  # noqa: ANN001
    from rich.table import Table

    table = Table(title="bigbench compare")
    for column in ("point", "metric", "base", "new", "change", "verdict"):
        table.add_column(column, justify="right" if column in ("base", "new", "change")
                         else "left", no_wrap=column in ("point", "metric", "verdict"))
    unmeasured: dict[str, int] = {}
    for row in result.rows:
        if row.ratio is None:
            unmeasured[row.metric] = unmeasured.get(row.metric, 0) + 1
            continue
        table.add_row(row.point, row.metric, _num(row.base), _num(row.new),
                      f"{row.change_pct:+.1f}%", _verdict(row))
    console = out_console()
    console.print(table)
    for metric, count in unmeasured.items():
        console.print(f"{metric}: n/a for {count} point(s) (not measured on both sides)")
    if result.only_base:
        console.print(f"only in base: {', '.join(result.only_base)}")
    if result.only_new:
        console.print(f"only in new: {', '.join(result.only_new)}")
    if result.regressions:
        for row in result.regressions:
            direction = "lower" if row.change_pct < 0 else "higher"
            console.print(f"regression: {row.point} {row.metric} {direction} by "
                          f"{abs(row.change_pct):.1f}% (threshold {fail_above:g}%)")
    else:
        console.print(f"no regression beyond {fail_above:g}%")


def _num(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.4g}"
