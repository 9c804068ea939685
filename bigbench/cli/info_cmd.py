"""``bigbench models``, ``bigbench data`` and ``bigbench devices``."""

from __future__ import annotations

import json
from typing import Any

import typer

from bigbench.cli.common import out_console, print_json

JSON_OPTION = typer.Option(False, "--json", help="Print JSON instead of a table.")


def _fmt_defaults(defaults: dict[str, Any]) -> str:
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in defaults.items())


def models(json_: bool = JSON_OPTION) -> None:
    """List registered models with their default arguments and parameter counts.

    Parameter counts are for each model's reference input (28×28 grey images in 10 classes for
    cnn; length-20 sequences over 10 tokens in 2 classes for rnn/lstm/gru; GPT-2's 50,257-token
    vocabulary for gpt). gpt also lists every size preset (n_layer, n_head, d_model, context)
    with its parameter count at that vocabulary, under "sizes" in --json.

    Example: bigbench models --json
    """
    from bigbench.catalog import model_catalog

    rows = model_catalog()
    if json_:
        print_json(rows)
        return
    from rich.table import Table

    table = Table(title="Models", show_lines=True, caption="Parameter counts for each model's "
                  "reference input; gpt at GPT-2's vocabulary of 50,257 tokens (a byte-level "
                  "tiny gpt has 124,672).")
    for column in ("name", "params", "summary", "defaults"):
        table.add_column(column, justify="right" if column == "params" else "left")
    for row in rows:
        table.add_row(row["name"], f"{row['params']:,}", row["summary"],
                      _fmt_defaults(row["defaults"]))
        for size in row.get("sizes", []):
            table.add_row(f"{row['name']} size={size['size']}", f"{size['params']:,}",
                          f"n_layer {size['n_layer']}, n_head {size['n_head']}, d_model "
                          f"{size['d_model']}, context {size['context']}", "")
    out_console().print(table)


def data(json_: bool = JSON_OPTION) -> None:
    """List registered datasets and their arguments.

    Example: bigbench data
    """
    from bigbench.catalog import dataset_catalog

    rows = dataset_catalog()
    if json_:
        print_json(rows)
        return
    from rich.table import Table

    table = Table(title="Datasets", show_lines=True)
    for column in ("name", "summary", "arguments"):
        table.add_column(column)
    for row in rows:
        args = ", ".join(f"{k} (required)" if a["required"] else f"{k}={json.dumps(a['default'])}"
                         for k, a in row["arguments"].items())
        table.add_row(row["name"], row["summary"], args)
    out_console().print(table)


def devices(json_: bool = JSON_OPTION) -> None:
    """Show the CPU, CUDA devices and whether NVML (GPU power/energy) answers.

    Example: bigbench devices
    """
    from bigbench.catalog import device_report

    info = device_report()
    cuda = info["cuda_devices"]
    if json_:
        print_json(info)
        return
    console = out_console()
    cpu = info["cpu"]
    console.print(f"[bold]CPU[/]   {cpu['name']} — {cpu['logical_cpus']} logical CPUs, "
                  f"torch uses {cpu['torch_threads']} threads")
    console.print(f"[bold]torch[/] {info['torch']} (CUDA build: {info['cuda_build'] or 'none'})")
    if cuda:
        for d in cuda:
            gib = d["total_memory_bytes"] / 2**30
            console.print(f"[bold]cuda:{d['index']}[/] {d['name']} — {gib:.1f} GiB, "
                          f"compute {d['capability']}, {d['uuid']}")
    else:
        console.print("[bold]CUDA[/]  no CUDA devices visible")
    nvml = info["nvml"]
    if nvml["available"]:
        console.print(f"[bold]NVML[/]  driver {nvml['driver_version']}, "
                      f"{nvml['device_count']} GPU(s)")
    else:
        console.print(f"[bold]NVML[/]  unavailable: {nvml['reason']}")
