"""``bigbench energy probe`` and ``bigbench energy measure -- COMMAND``."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from typing import Any

import typer

from bigbench.cli.common import out_console, print_json, user_errors
from bigbench.cli.help import BigbenchCommand, BigbenchGroup
from bigbench.errors import BigbenchError
from bigbench.measuring.process_rss import TreeRssSampler

app = typer.Typer(help="Find and use this machine's energy meters (NVML, RAPL).",
                  no_args_is_help=True,
                  cls=BigbenchGroup)

POWERCAP_OPTION = typer.Option(None, "--powercap-root", metavar="PATH",
                               help="Where powercap sysfs is mounted (default: "
                               "$BIGBENCH_POWERCAP_ROOT, else /sys/class/powercap).")


@app.command(cls=BigbenchCommand)
def probe(json_: bool = typer.Option(False, "--json", help="Print JSON."),
          powercap_root: str | None = POWERCAP_OPTION) -> None:
    """Show which energy meters work here and, for those that don't, why and how to fix it.

    Example: bigbench energy probe
    """
    from bigbench.measuring.energy.discovery import probe_meters

    found = probe_meters(powercap_root)
    if json_:
        print_json(found)
        return
    working, broken = found["working"], found["unavailable"]
    console = out_console()
    for meter in working:
        how = meter["counter"] or f"{meter['power']} (integrated; no energy counter)"
        console.print(f"[green]✓[/] {meter['kind']:<4} {meter['name']}: {how}")
    for meter in broken:
        console.print(f"[red]✗[/] {meter['kind']:<4} {meter['name']}: {meter['reason']}",
                      soft_wrap=True)
    if not working:
        console.print("no energy meter works here: runs will report energy as unavailable")


@app.command(cls=BigbenchCommand,
             context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@user_errors
def measure(
    command: list[str] = typer.Argument(..., metavar="-- COMMAND [ARGS]...",
                                        help="The command to run and measure.",
                                        show_default=False),
    interval_ms: int = typer.Option(50, "--interval-ms", min=5, max=1000,
                                    help="Milliseconds between power samples."),
    json_: bool = typer.Option(False, "--json", help="Print one JSON object to stdout."),
    powercap_root: str | None = POWERCAP_OPTION,
) -> None:
    """Run any command and report the energy it used on every GPU and CPU package.

    Like perf stat for joules: duration, energy and average power per device (with the
    method that measured it), and the command's peak RSS. The command's exit code is passed
    through.

    Examples:

      bigbench energy measure -- python train.py --epochs 1
      bigbench energy measure --json -- sleep 5
    """
    from bigbench.measuring.energy.discovery import all_meters
    from bigbench.measuring.energy.monitor import EnergyMonitor, default_min_window_s

    meters = all_meters(powercap_root)
    # The same rule as training runs: GPU counters step, so GPU windows need seconds.
    monitor = EnergyMonitor(meters, interval_ms / 1000.0,
                            min_window_s=default_min_window_s(meters))
    monitor.start()
    token = monitor.begin()
    started = time.perf_counter()
    # The terminal's Ctrl-C reaches the child directly; bigbench waits and still reports.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        try:
            child = subprocess.Popen(command)
        except OSError as exc:
            raise BigbenchError(f"cannot run {command[0]!r}: {exc.strerror or exc}") from None
        rss = TreeRssSampler(child.pid, interval_ms / 1000.0)
        rss.start()
        exit_code = child.wait()
        rss.stop()
    finally:
        signal.signal(signal.SIGINT, previous)
        duration = time.perf_counter() - started
        segments = monitor.end(token)
        monitor.stop()
    report = _report(monitor, segments, duration, exit_code, rss.peak_bytes)
    for line in report["warnings"]:
        sys.stderr.write(f"warning: {line}\n")
    sys.stderr.flush()
    if json_:
        print_json(report)
    else:
        _print_report(report)
    raise typer.Exit(exit_code if exit_code >= 0 else 128 - exit_code)


def _report(monitor: Any, segments: dict[str, Any], duration: float, exit_code: int,
            peak_rss_bytes: int | None) -> dict[str, Any]:
    from bigbench.measuring.energy.report import (
        DEVICE_SUMMARY_KEYS,
        energy_warnings,
        measured_total,
    )

    entries = monitor.aggregate([segments])
    devices = []
    for entry in entries:
        item = {k: entry.get(k) for k in DEVICE_SUMMARY_KEYS}
        if entry["kind"] == "gpu":
            item["uuid"] = entry.get("uuid")
            item["counter_j"] = entry.get("counter_j")
            item["counter_vs_integral_diff"] = entry.get("counter_vs_integral_diff")
        devices.append(item)
    devices += [u.as_dict() for u in monitor.meters.unavailable]
    total_j, bound_j = measured_total(entries)  # half-widths add, like the energies
    report = {"duration_s": duration, "exit_code": exit_code,
              "total_j": total_j, "total_uncertainty_j": bound_j,
              "min_window_s": monitor.min_window_s,
              "peak_rss_bytes": peak_rss_bytes, "devices": devices,
              "warnings": energy_warnings(entries)}
    if peak_rss_bytes is None:
        report["peak_rss_reason"] = "the command ended before its memory could be sampled"
    return report



def _energy_text(device: dict[str, Any]) -> str:
    text = f"{device['energy_j']:.2f} J"
    bound = device.get("uncertainty_j")
    if bound is None:
        return text + " ± n/a"
    if device["energy_j"] > 0:
        return text + f" ± {bound / device['energy_j']:.0%}"
    return text + f" ± {bound:.2f} J"


def _print_report(report: dict[str, Any]) -> None:
    from rich.table import Table

    from bigbench.run_summary import human_bytes

    table = Table(title=f"energy of the command — {report['duration_s']:.2f} s, "
                        f"exit code {report['exit_code']}")
    for column in ("device", "energy", "avg power", "method", "quality"):
        table.add_column(column)
    for d in report["devices"]:
        if d["measured"]:
            table.add_row(f"{d['kind']} {d['name']}", _energy_text(d),
                          f"{d['avg_power_w']:.1f} W", d["method"], d["quality"])
        else:
            why = d.get("reason") or "; ".join(d.get("quality_reasons") or [])
            table.add_row(f"{d['kind']} {d['name']}", f"n/a ({why})", "", "", "")
    console = out_console()
    console.print(table)
    total, bound = report["total_j"], report["total_uncertainty_j"]
    if total is None:
        console.print("total: n/a (no device measured)")
    else:
        console.print(f"total: {total:.2f} J" + (f" ± {bound:.2f} J" if bound is not None
                                                  else " (no error bound)"))
    rss = human_bytes(report["peak_rss_bytes"])
    console.print(f"peak RSS: {rss}" if rss else f"peak RSS: n/a ({report['peak_rss_reason']})")
