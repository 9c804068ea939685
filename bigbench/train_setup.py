"""What ``bigbench train`` and :func:`bigbench.train` settle before training starts.

The config with its shorthands applied (``device``, ``seed`` and the loggers are ``--set``s of
``device``, ``train.seed`` and ``output.loggers``) and, for ``--resume RUN_DIR``, the run to
continue. One implementation for the command and the Python API, so both refuse the same
mistakes with the same words; nothing here trains or writes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bigbench.errors import ConfigError

if TYPE_CHECKING:
    from bigbench.config import ExperimentConfig
    from bigbench.config.loader import ConfigSource
    from bigbench.resume import ResumeInfo


def shorthand_overrides(overrides: Sequence[str], device: str | None = None,
                        seed: int | None = None,
                        loggers: str | Sequence[str] | None = None) -> list[str]:
    """``overrides`` plus the options that are shorthands for config keys.

    Args:
        overrides: ``key.path=value`` strings (``--set``).
        device: Becomes ``device=…``.
        seed: Becomes ``train.seed=…``.
        loggers: ``"tensorboard,csv"`` or ``["tensorboard", "csv"]``; becomes
            ``output.loggers=[…]`` (each name is then checked by the config's schema).
    """
    result = list(overrides)
    if device is not None:
        result.append(f"device={device}")
    if seed is not None:
        result.append(f"train.seed={seed}")
    if loggers is not None:
        names = loggers.split(",") if isinstance(loggers, str) else list(loggers)
        # JSON is YAML: quoted names cannot change the override's structure.
        result.append(f"output.loggers={json.dumps([n.strip() for n in names if n.strip()])}")
    return result


def resolve_training(config: ConfigSource | None, overrides: Sequence[str], *,
                     resume: Path | None = None, force: bool = False,
                     out: Path | None = None) -> tuple[ExperimentConfig, ResumeInfo | None]:
    """The validated config, and what to resume (None for a fresh run).

    A resumed run reads its own config.yaml unless ``config`` is given; either way the result
    must equal the run's recorded config unless ``force`` (then the differences are recorded).

    Raises:
        ConfigError: no config and nothing to resume, ``out`` with ``resume``, an invalid
            config, or a config that differs from the run's without ``force``.
        ResumeError: ``resume`` is not a run that can be continued.
    """
    from bigbench.config.loader import load_source

    if resume is None:
        if config is None:
            raise ConfigError("give a CONFIG to train, or --resume RUN_DIR (Python: "
                              "resume=RUN_DIR)")
        return load_source(config, overrides), None
    from bigbench.resume import ResumeInfo, config_differences, open_run

    if out is not None:
        raise ConfigError("--out and --resume: a resumed run continues in its own directory")
    record, checkpoint = open_run(resume)
    cfg = load_source(resume / "config.yaml" if config is None else config, overrides)
    changes = config_differences(record["config"], cfg.model_dump(mode="json"))
    if changes and not force:
        raise ConfigError(*[f"--resume {resume}: the config differs from the run's; pass "
                            "--force (Python: force=True) to accept:"]
                          + [f"  {c}" for c in changes])
    return cfg, ResumeInfo(resume, record, checkpoint, changes)
