"""How the CLI reads: help that reflows at any width, completion, plain output when piped."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import typer.main
from typer.testing import CliRunner

from bigbench.cli import app
from bigbench.cli.completion import (
    complete_device,
    complete_models,
    complete_set,
    rejoin_words,
)
from bigbench.cli.help import reflow

ANSI = "\x1b["
BOX_DRAWING = re.compile("[\u2500-\u257f]")
#: Environment variables that would make rich treat the runner's output as a terminal.
TERMINAL_ENV = {"FORCE_COLOR": None, "TTY_COMPATIBLE": None, "NO_COLOR": None}


def _commands(command, path=()) -> list[tuple[tuple[str, ...], object]]:
    """Every visible command and group under the root, with its path."""
    found = [(path, command)]
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        if not sub.hidden:
            found += _commands(sub, (*path, name))
    return found


COMMANDS = _commands(typer.main.get_command(app))


def _invoke(*args: str, **env: str | None):
    return CliRunner().invoke(app, list(args), prog_name="bigbench",
                              env={**TERMINAL_ENV, **env})


def _help_at(width: int, *path: str) -> str:
    """``bigbench PATH --help`` in a real process at ``width`` columns (Click's test runner
    forces 80 columns, so it cannot show how help uses a wider terminal)."""
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE",
                                                            "NO_COLOR")}
    done = subprocess.run([sys.executable, "-m", "bigbench", *path, "--help"], text=True,
                          capture_output=True, env={**env, "COLUMNS": str(width)}, check=True)
    return done.stdout


def test_every_command_is_covered() -> None:
    paths = {" ".join(path) for path, _ in COMMANDS}
    assert paths >= {"", "train", "bench", "compare", "report", "models", "data", "devices",
                     "schema", "config", "config validate", "config show", "config schema",
                     "config reference", "energy", "energy probe", "energy measure"}


def _description(output: str) -> list[str]:
    """The lines between the usage line and the first panel or section (the command's own
    help): rich panels at 100 columns and wider, Click's "Options:" sections below."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if "Usage:" in line) + 1
    sections = ("Arguments:", "Options:", "Commands:")
    end = next((i for i, line in enumerate(lines)
                if line.startswith(("╭", "+")) or line in sections), len(lines))
    return lines[start:end]


def _paragraphs(lines: list[str]) -> list[list[str]]:
    paragraphs: list[list[str]] = [[]]
    for line in lines:
        if line.strip():
            paragraphs[-1].append(line.rstrip())
        elif paragraphs[-1]:
            paragraphs.append([])
    return [p for p in paragraphs if p]


@pytest.mark.parametrize("width", [80, 120])
@pytest.mark.parametrize(("path", "command"), COMMANDS,
                         ids=[" ".join(p) or "bigbench" for p, _ in COMMANDS])
def test_help_reflows_at_the_terminal_width(path, command, width: int) -> None:
    output = _help_at(width, *path)
    assert not re.search("[\u2500-\u257f]", output), "box drawing in piped help"
    assert "…" not in output  # nothing cut short
    assert max(len(line) for line in output.splitlines()) <= width
    # A flag takes no value: no type placeholder beside --json, --compile/--no-compile, -h.
    assert "<bool>" not in output and "BOOLEAN" not in output
    examples = [line.strip() for line in (command.help or "").splitlines()
                if line[:1].isspace() and line.strip()]
    description = _description(output)
    for paragraph in _paragraphs(description):
        if paragraph[0].strip() in examples:
            continue
        # Greedy wrapping: each line of prose is full, i.e. the next word did not fit on it.
        # A docstring's own hard line breaks would leave short lines mid-paragraph.
        for line, following in zip(paragraph, paragraph[1:], strict=False):
            assert len(line) + 1 + len(following.split()[0]) > width - 2, (line, following)
    # Examples stay one command per line, whole and indented.
    shown = [line.strip() for line in description]
    for example in examples:
        assert example in shown, example
        assert len(example) <= 76, f"example wider than an 80-column help: {example}"


def test_bench_help_keeps_sentences_and_examples() -> None:
    output = _invoke("bench", "--help", COLUMNS="80").stdout
    joined = " ".join(output.split())
    assert ("Exit code 1 when a point failed (out of memory and skipped points are results, "
            "not failures).") in joined
    assert "warm-up outside the measured window" in joined
    lines = [line.strip() for line in output.splitlines()]
    start = lines.index("Examples:")
    assert lines[start + 2:start + 6] == [
        "bigbench bench --device cpu --suite smoke",
        "bigbench bench --device cuda --models cnn,lstm --precision fp32,bf16",
        "bigbench bench configs/cnn.yaml --mode train --repeats 5 --markdown",
        "bigbench bench --suite lm --device cpu --seq-lens 64,256 --gen-tokens 32",
    ]
    # The bool flags are listed without a placeholder; the options with values keep theirs.
    flags = [line for line in output.splitlines() if "--compile" in line or "--json" in line]
    assert flags and all("<" not in line for line in flags)
    assert any("--steps" in line and "<int range>" in line for line in output.splitlines())


def test_reflow_joins_paragraph_lines_and_keeps_indented_lines() -> None:
    doc = """Summary line.

    A paragraph hard-wrapped
    at a narrow width.

    Examples:

      tool run --a
      tool run --b
    """
    assert reflow(doc) == ("Summary line.\n\nA paragraph hard-wrapped at a narrow width.\n\n"
                           "Examples:\n\n  tool run --a\n  tool run --b")
    assert reflow("Example:\n  tool x\nAfter.") == "Example:\n  tool x\nAfter."
    assert reflow(None) is None


def test_completion_options_exist() -> None:
    root = typer.main.get_command(app)
    names = {opt for param in root.params for opt in param.opts}
    assert {"--install-completion", "--show-completion"} <= names
    output = _invoke("--help", COLUMNS="120").stdout
    assert "--show-completion" in output and "--install-completion" in output


def test_set_completes_config_keys_and_values() -> None:
    assert [value for value, _ in complete_set("train.b")] == ["train.batch_size="]
    keys = [value for value, _ in complete_set("")]
    assert {"device=", "train.optimizer.lr=", "model.name=", "model.channels=",
            "data.size=", "measure.energy="} <= set(keys)
    assert all(key.endswith("=") for key in keys)
    assert {"model.name=gpt", "model.name=gru"} == {v for v, _ in complete_set("model.name=g")}
    assert "device=cuda:0" in {v for v, _ in complete_set("device=cu")}
    assert {v for v, _ in complete_set("train.compile=")} >= {"train.compile=true",
                                                              "train.compile=false"}


def _complete(words: str) -> list[str]:
    """What bash completion offers for the last of ``words``."""
    result = _invoke(_BIGBENCH_COMPLETE="complete_bash", COMP_WORDS=words,
                     COMP_CWORD=str(len(words.split()) - 1))
    assert result.exit_code == 0, result.output
    return result.stdout.split()


def test_options_complete_through_the_shell_protocol() -> None:
    assert _complete("bigbench train --set train.b") == ["train.batch_size="]
    assert _complete("bigbench config validate c.yaml --set train.b") == ["train.batch_size="]
    assert _complete("bigbench bench --set train.b") == ["train.batch_size="]
    assert "cnn,gpt" in _complete("bigbench bench --models cnn,g")
    assert _complete("bigbench bench --suite sm") == ["smoke"]
    assert {"cuda", "cuda:0"} <= set(_complete("bigbench train --device cu"))
    assert _complete("bigbench bench --precision fp32,b") == ["fp32,bf16"]


def _bash_complete(*words: str, **env: str) -> list[str]:
    """What ``bigbench`` answers a completion request exactly as bash's script sends it:
    ``COMP_WORDS`` as bash split the line (``=`` and ``:`` are words of their own), joined
    with newlines as ``"${COMP_WORDS[*]}"`` is under the script's ``IFS``; ``COMP_CWORD``
    points at the last word (the one under the cursor)."""
    result = _invoke(_BIGBENCH_COMPLETE="complete_bash", COMP_WORDS="\n".join(words),
                     COMP_CWORD=str(len(words) - 1), **env)
    assert result.exit_code == 0, result.output
    return result.stdout.split()


def test_set_completes_across_the_words_bash_splits_at_equals() -> None:
    # A key: the reply ends in "=", and the script adds no space after it (see below).
    assert _bash_complete("bigbench", "train", "--set", "train.max_st") == ["train.max_steps="]
    # Its value: bash replaces only what follows "=", so the reply is the value alone.
    assert _bash_complete("bigbench", "train", "--set", "train.compile", "=", "t") == ["true"]
    assert set(_bash_complete("bigbench", "train", "--set", "train.compile", "=")) == \
        {"true", "false"}
    # Model and dataset names after model.name= and data.name=.
    assert set(_bash_complete("bigbench", "bench", "--set", "model.name", "=", "g")) == \
        {"gpt", "gru"}
    assert _bash_complete("bigbench", "train", "--set", "data.name", "=", "di") == ["digits"]
    # ":" splits too: cuda:<TAB> completes the index alone.
    assert _bash_complete("bigbench", "train", "--set", "device", "=", "cuda", ":",
                          CUDA_VISIBLE_DEVICES="") == ["0"]
    assert _bash_complete("bigbench", "train", "--device", "cuda", ":",
                          CUDA_VISIBLE_DEVICES="") == ["0"]
    # --opt=value: Click completes the value, bash keeps "--device=".
    assert {"cuda", "cuda:0"} <= set(_bash_complete("bigbench", "train", "--device", "=",
                                                    "cu"))
    # Earlier split arguments are joined again, so the next --set still completes keys.
    assert _bash_complete("bigbench", "train", "--set", "train.compile", "=", "true", "--set",
                          "train.b") == ["train.batch_size="]


def test_models_and_datasets_complete_through_the_shell_protocol() -> None:
    assert set(_bash_complete("bigbench", "bench", "--models", "cnn,g")) == \
        {"cnn,gpt", "cnn,gru"}
    assert _bash_complete("bigbench", "bench", "--models", "l") == ["lstm"]
    assert _bash_complete("bigbench", "bench", "--set", "data.name", "=", "tok") == ["tokens"]


def test_rejoin_words_undoes_bash_word_breaks() -> None:
    assert rejoin_words(["--set", "a.b", "=", "c", "--device", "cuda", ":", "0"]) == \
        [["--set"], ["a.b", "=", "c"], ["--device"], ["cuda", ":", "0"]]
    assert rejoin_words(["a.b", "="]) == [["a.b", "="]]
    assert rejoin_words([]) == []


def _bash() -> str:
    import shutil

    bash = shutil.which("bash")
    if bash is None or sys.platform == "win32":
        pytest.skip("needs bash and a pseudo-terminal")
    version = subprocess.run([bash, "-c", "echo ${BASH_VERSINFO[0]}"], capture_output=True,
                             text=True).stdout.strip()
    if not version.isdigit() or int(version) < 4:
        pytest.skip("bash completion needs bash 4 or newer")
    return bash


def _type_in_bash(bash: str, tmp_path, keys: str) -> list[str]:
    """Type ``keys`` into an interactive bash that sourced ``bigbench --show-completion bash``;
    returns the argument lines of each ``bigbench`` command line it then ran."""
    import os
    import pty
    import select
    import time

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    program = bin_dir / "bigbench"  # what the completion script runs: this checkout's CLI
    program.write_text(f'#!/bin/sh\nexec "{sys.executable}" -c "import sys; '
                       f"sys.argv[0] = 'bigbench'; from bigbench.cli import main; main()\" "
                       '"$@"\n')
    program.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
           "HOME": str(tmp_path), "INPUTRC": "/dev/null", "TERM": "dumb",
           "CUDA_VISIBLE_DEVICES": "", "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    script = subprocess.run([str(program), "--show-completion", "bash"], capture_output=True,
                            text=True, env=env, check=True).stdout
    assert "compopt -o nospace" in script
    ran = tmp_path / "ran.txt"
    rc = tmp_path / "rc"
    # A shell function stands in for the program when a line is run (its arguments are
    # recorded); the completion script's `env bigbench` still finds the real one on PATH.
    rc.write_text(f"PS1='$ '\n{script}\nbigbench() {{ printf '%s\\n' \"$*\" >> {ran}; }}\n")
    pid, fd = pty.fork()
    if pid == 0:  # the child: an interactive bash reading the pseudo-terminal
        os.execve(bash, [bash, "--noprofile", "--rcfile", str(rc), "-i"], env)
    os.write(fd, (keys + "exit\n").encode())
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # drain the terminal until bash exits
        if select.select([fd], [], [], 0.5)[0]:
            try:
                if not os.read(fd, 4096):
                    break
            except OSError:  # the child closed the terminal: it exited
                break
    else:
        os.kill(pid, 9)
    os.waitpid(pid, 0)
    return ran.read_text().splitlines() if ran.exists() else []


def test_bash_completes_set_keys_values_models_and_devices_end_to_end(tmp_path) -> None:
    """Real bash, real readline, the installed script: Tab after each partial word."""
    bash = _bash()
    lines = _type_in_bash(bash, tmp_path, "".join([
        "bigbench train --set train.max_st\t12\n",      # key=, no space, value typed after
        "bigbench train --set train.compile=t\t\n",     # a value after "="
        "bigbench train --set data.name=dig\t\n",       # a dataset name
        "bigbench bench --models cnn,gp\t\n",           # a model name in a list
        "bigbench train --device cuda:\t\n",            # after ":"
    ]))
    assert lines == ["train --set train.max_steps=12", "train --set train.compile=true",
                     "train --set data.name=digits", "bench --models cnn,gpt",
                     "train --device cuda:0"]


def test_models_and_devices_complete_the_last_item() -> None:
    assert complete_models("cnn,g") == ["cnn,gpt", "cnn,gru"]
    assert "cnn,cnn" not in complete_models("cnn,")
    assert "gpt" in complete_models("")
    assert complete_device("a") == ["auto"]
    assert "cuda:0" in complete_device("cuda")


def test_completion_does_not_import_torch() -> None:
    code = ("import sys\n"
            "from bigbench.cli.completion import complete_set, complete_models, "
            "complete_device\n"
            "assert complete_set('train.b') and complete_models('cnn,g') and "
            "complete_device('c')\n"
            "print('torch' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_no_color_means_no_escape_codes_in_errors() -> None:
    # FORCE_COLOR makes the runner's pipe count as a terminal, so colour would be on...
    forced = _invoke("bench", "--bogus", FORCE_COLOR="1")
    assert forced.exit_code == 2 and ANSI in forced.stderr
    # ...and NO_COLOR turns every style off, for Typer's own error output too.
    plain = _invoke("bench", "--bogus", FORCE_COLOR="1", NO_COLOR="1")
    assert plain.exit_code == 2 and "--bogus" in plain.stderr
    assert ANSI not in plain.stderr and ANSI not in plain.stdout
    # Afterwards colour comes back: the switch holds for one run only.
    assert ANSI in _invoke("bench", "--bogus", FORCE_COLOR="1").stderr


def test_no_color_applies_to_bigbench_consoles(monkeypatch) -> None:
    from bigbench.cli.common import err_console, out_console

    monkeypatch.setenv("FORCE_COLOR", "1")
    for make in (err_console, out_console):
        monkeypatch.delenv("NO_COLOR", raising=False)
        console = make()
        with console.capture() as colored:
            console.print("[yellow]warning:[/] [bold]x[/]")
        assert ANSI in colored.get()
        monkeypatch.setenv("NO_COLOR", "1")
        console = make()
        with console.capture() as plain:
            console.print("[yellow]warning:[/] [bold]x[/]")
        assert plain.get() == "warning: x\n"


def test_piped_usage_errors_are_plain_text() -> None:
    result = _invoke("bench", "--bogus")
    assert result.exit_code == 2
    assert "No such option: --bogus" in result.stderr
    assert not BOX_DRAWING.search(result.stderr) and ANSI not in result.stderr


def test_piped_tables_have_no_box_drawing() -> None:
    result = _invoke("models", COLUMNS="100")
    assert result.exit_code == 0
    assert "333,526" in result.stdout and "| cnn" in result.stdout
    assert not BOX_DRAWING.search(result.stdout) and ANSI not in result.stdout


def test_box_drawing_when_asked_for() -> None:
    result = _invoke("data", TTY_COMPATIBLE="1", NO_COLOR="1")
    assert result.exit_code == 0
    assert BOX_DRAWING.search(result.stdout) and ANSI not in result.stdout
    assert not BOX_DRAWING.search(_invoke("data").stdout)


def test_narrow_help_never_cuts_an_option_or_its_help() -> None:
    """Below 100 columns the help is Click's layout: every option name and every word of its
    help appears whole (Typer's rich table would cut them with an ellipsis)."""
    output = _invoke("bench", "--help", COLUMNS="80").stdout
    assert "…" not in output
    assert "--energy-min-window / --no-energy-min-window" in output
    assert "[default: runs/<UTC time>-bench-<suite>]" in " ".join(output.split())
    assert "\\[" not in output  # rich's escapes are plain brackets here
