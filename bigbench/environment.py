"""Provenance recorded with every result: versions, OS, CPU, device, git commit."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import bigbench
from bigbench.devices import cpu_model_name, describe

if TYPE_CHECKING:
    import torch


def git_commit(folder: Path) -> str | None:
    """The commit of the git checkout holding ``folder`` (suffixed ``-dirty``), else None."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True,
                                text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=folder, capture_output=True, text=True, timeout=5,
                               check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if dirty else commit


def collect(device: torch.device) -> dict[str, Any]:
    """Everything needed to tell whether two results are comparable."""
    import torch

    return {
        "bigbench": bigbench.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None,
        "os": f"{platform.system()} {platform.release()}",
        "hostname": platform.node(),
        "cpu": cpu_model_name(),
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": describe(device).as_dict(),
        "git_commit": git_commit(Path(bigbench.__file__).resolve().parent),
        "argv": sys.argv,
    }
