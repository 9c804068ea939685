"""``bigbench gpu restore [DIR_OR_STATE_FILE]`` and ``bigbench gpu show``."""

from __future__ import annotations

from pathlib import Path

import typer

from bigbench.cli.common import out_console, print_json, user_errors
from bigbench.cli.help import BigbenchCommand, BigbenchGroup

app = typer.Typer(help="See and restore the GPU settings bigbench changes (power limit, "
                  "locked SM clocks).", no_args_is_help=True, cls=BigbenchGroup)


@app.command(cls=BigbenchCommand)
@user_errors
def restore(
    path: Path = typer.Argument(Path("."), metavar="DIR_OR_STATE_FILE",
                                help="A bench output directory (its gpu_state.json) or the "
                                "state file itself \\[default: the current directory].",
                                show_default=False),
    json_: bool = typer.Option(False, "--json", help="Print what was done as JSON."),
) -> None:
    """Put back the GPU settings a bench or sweep recorded, after it was killed before it could.

    bench --power-limits / --sm-clocks and a sweep with power_limits write gpu_state.json (the
    original power limit, and whether SM clocks were locked) into their output directory before
    they change anything, and restore the GPU themselves on success, errors, Ctrl-C and
    SIGTERM. Only a hard kill (SIGKILL, the kernel's OOM killer) leaves the GPU changed: this
    command sets the recorded power limit back and unlocks the clocks, on the GPU with the
    recorded UUID.
    A state already restored is left alone. Needs the same privilege as setting the limit
    (root).

    Examples:

      sudo .venv/bin/bigbench gpu restore runs/20261129T151537Z-bench-standard
      sudo .venv/bin/bigbench gpu restore runs/my-bench/gpu_state.json --json
    """
    from bigbench.measuring.energy.power_limits import restore_from_file

    done = restore_from_file(path)
    if json_:
        print_json(done)
        return
    gpu = f"GPU {done['uuid']} ({done['name']})"
    if done["already_restored"]:
        out_console().print(f"nothing to do: {done['state_file']} is already restored ({gpu})",
                            soft_wrap=True, highlight=False)
        return
    unlocked = ", SM clocks unlocked" if done["clocks_unlocked"] else ""
    out_console().print(f"{gpu}: power limit restored to {done['power_limit_w']:g} W{unlocked}",
                        soft_wrap=True, highlight=False)


@app.command(cls=BigbenchCommand)
@user_errors
def show() -> None:
    """Print every GPU's power limit, default, allowed range, SM clocks, temperature and
    throttle reasons as JSON (NVML order; null figures carry their reason).

    Example: bigbench gpu show
    """
    from bigbench.measuring.energy.power_limits import describe_gpus

    print_json(describe_gpus())
