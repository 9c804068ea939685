"""The console summary of a finished run: humanised figures, "n/a (why)" for the unmeasured."""

from __future__ import annotations

from typing import Any


def human_bytes(value: int | None) -> str | None:
    """``1536`` → ``1.5 KiB``."""
    if value is None:
        return None
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return None  # unreachable


def _na(section: dict[str, Any], key: str) -> str:
    reason = section.get("reasons", {}).get(key) or section.get("reason") or "not measured"
    return f"n/a ({reason})"


def summary_rows(record: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) rows of the summary table: work, then speed, accuracy, memory, energy."""
    tp, mem, ev, energy = record["throughput"], record["memory"], record["eval"], record["energy"]
    step = tp["step_time_s"]
    flops = record.get("flops") or {}
    rows = [
        ("status", record["status"] + (f" — {record['stop_detail']}"
                                       if record.get("stop_detail") else "")),
        ("run directory", record["run_dir"]),
        ("model", f"{record['model']['name']} ({record['model']['params']:,} parameters)"),
        ("data", f"{record['data']['name']} ({record['data']['train_size']:,} train / "
                 f"{record['data']['test_size']:,} test)"),
        ("device", record["env"]["device"]["name"]),
        ("steps", f"{record['progress']['steps']:,} ({tp['warmup_steps']} warm-up, "
                  f"{tp['measured_steps']:,} measured)"),
        ("throughput", f"{tp['samples_per_s']:,.1f} samples/s" if tp["samples_per_s"]
         else _na(tp, "samples_per_s")),
    ]
    if tp.get("tokens_per_s"):
        rows.append(("tokens/s", f"{tp['tokens_per_s']:,.0f}"))
    if step["p50"] is not None:
        rows.append(("step time p50/p90/p99",
                     " / ".join(f"{step[q] * 1000:.2f} ms" for q in ("p50", "p90", "p99"))))
    if flops.get("train_step_per_sample"):
        rows += [
            ("FLOPs per sample", f"{flops['train_step_per_sample'] / 1e6:,.1f} MFLOP "
                                 f"(train step, {flops['method']})"),
            ("achieved", f"{flops['achieved_flops_per_s'] / 1e9:,.1f} GFLOP/s"
             if flops.get("achieved_flops_per_s") else _na(flops, "achieved_flops_per_s")),
            ("MFU", f"{flops['mfu']:.1%} of the {flops['peak_dtype']} peak"
             if flops.get("mfu") is not None else _na(flops, "mfu")),
        ]
    rows += [
        ("test accuracy", f"{ev['accuracy']:.2%}" if ev["accuracy"] is not None
         else _na(ev, "accuracy")),
        ("test loss", f"{ev['loss']:.4f}" if ev["loss"] is not None else _na(ev, "loss")),
        ("peak host RSS", human_bytes(mem["host_peak_rss_bytes"]) or _na(mem, "host")),
        ("peak device memory", human_bytes(mem["device_peak_allocated_bytes"])
         or _na(mem, "device_peak_allocated_bytes")),
        ("energy", _energy_text(energy)),
    ]
    if flops.get("train_step_per_sample"):
        rows.append(("FLOPs per joule", f"{flops['flops_per_j'] / 1e9:,.2f} GFLOP/J"
                     if flops.get("flops_per_j") else _na(flops, "flops_per_j")))
    carbon = record.get("carbon")
    if carbon:
        rows.append(("carbon", f"{carbon['measured_window_g']:.3f} gCO2e (measured window)"
                     if carbon.get("measured_window_g") is not None
                     else f"n/a ({carbon.get('reason')})"))
    rows.append(("wall time", f"{record['time']['wall_s']:.1f} s"))
    return rows


def _energy_text(energy: dict[str, Any]) -> str:
    if energy.get("total_j") is None:
        return f"n/a ({energy.get('reason')})"
    methods = sorted({d["method"] for d in energy["devices"] if d.get("measured")})
    text = (f"{energy['total_j']:,.1f} J measured window — {energy['j_per_sample'] * 1000:.3f} "
            f"mJ/sample, {energy['avg_power_w']:.1f} W avg ({', '.join(methods)}; quality "
            f"{energy['quality']})")
    if energy["status"] == "partial":
        text += f"; partial: {energy['reason']}"
    return text


def print_summary(console: Any, record: dict[str, Any]) -> None:
    """Print the summary table."""
    from rich.table import Table

    table = Table(title=f"bigbench train — {record['name']}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for label, value in summary_rows(record):
        table.add_row(label, value)
    console.print(table)
