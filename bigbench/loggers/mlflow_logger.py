"""``output.loggers: [mlflow]``: the run as an MLflow run.

Where: ``output.mlflow_tracking_uri``, else ``$MLFLOW_TRACKING_URI``, else a local file store
in ``<run>/mlruns``; the experiment is the config's name. What:

- parameters: the resolved config, flattened (``train.batch_size``, ``model.name`` …);
- metrics: every figure of run.json's throughput, energy, eval and flops sections that is not
  null (``throughput.samples_per_s``, ``energy.total_j``, ``eval.accuracy`` …), and the
  training curves at their steps (``train/loss``, ``train/samples_per_s``, ``eval/accuracy``,
  ``power_w/<device>``);
- artifacts: run.json, config.yaml, metrics.jsonl, metrics.csv and power.csv when written, and
  the HTML report (``report/``, built — or refreshed — here as ``bigbench report`` would; a
  report that cannot be built is a warning);
- tags: ``bigbench.run_dir``, ``bigbench.status``; the MLflow run ends FINISHED, KILLED
  (interrupted) or FAILED as run.json says. A resumed run continues its MLflow run.

Nothing talks to the tracking server during training: events are kept in memory (one small
tuple per figure per log interval) and sent in batches when the run is over.

MLflow 3.x refuses its file store (``./mlruns``) unless ``MLFLOW_ALLOW_FILE_STORE`` is true
(the file store is in maintenance mode; the SQLite store needs SQLAlchemy, which
``mlflow-skinny`` lacks). This logger opts in for file stores it writes unless the variable is
set; to browse one: ``MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri <run>/mlruns``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

if TYPE_CHECKING:
    from bigbench.config.schema import ExperimentConfig

FOLDER = "mlruns"
FINAL_SECTIONS = ("throughput", "energy", "eval", "flops")
#: Final figures that are positions, not results.
_NOT_METRICS = {"eval.step", "eval.epoch"}
#: run.json files logged as artifacts when they exist (never weights or checkpoints).
ARTIFACTS = ("run.json", "config.yaml", "metrics.jsonl", "metrics.csv", "power.csv")
_STATUS = {"completed": "FINISHED", "interrupted": "KILLED"}
_RUN_DIR_TAG = "bigbench.run_dir"
_BATCH = 100  # MLflow's limit of parameters per batch; metrics allow 1000


def check_reachable(uri: str, timeout_s: float = 3.0) -> str | None:
    """Why an http(s) tracking server cannot be reached, or None (other stores: None).

    Checked before training: MLflow's client retries an unreachable server for minutes,
    which would hold the process long after the run ended.
    """
    import socket
    from urllib.parse import urlparse

    parsed = urlparse(uri)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return None
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout_s):
            return None
    except OSError as exc:
        return f"cannot reach the MLflow tracking server {parsed.hostname}:{port} ({exc})"


def configured_uri(config: ExperimentConfig) -> str | None:
    """The tracking URI the user set: the config's, else $MLFLOW_TRACKING_URI (None: none)."""
    return config.output.mlflow_tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")


def tracking_uri(config: ExperimentConfig, run_dir: Path) -> str:
    """Where the run goes: the URI the user set, else the run directory's <run>/mlruns."""
    return configured_uri(config) or (run_dir.resolve() / FOLDER).as_uri()


def check_server(config: ExperimentConfig) -> None:
    """Refuse an unreachable tracking server before training, not minutes after it.

    Raises:
        ConfigError: the user's http(s) tracking server does not answer.
    """
    from bigbench.errors import ConfigError

    uri = configured_uri(config)
    problem = check_reachable(uri) if uri else None
    if problem is not None:
        raise ConfigError(f"output.mlflow_tracking_uri {uri}: {problem}; start the server or "
                          "unset it to use the run directory's local store")


def is_file_store(uri: str) -> bool:
    """A plain path or a file: URI (MLflow's file store)."""
    return urlparse(uri).scheme in ("", "file") or re.match(r"^[A-Za-z]:[\\/]", uri) is not None


@contextlib.contextmanager
def allow_file_store(uri: str) -> Iterator[None]:
    """Let MLflow 3.x open a file store (``MLFLOW_ALLOW_FILE_STORE``), unless the user set it."""
    name = "MLFLOW_ALLOW_FILE_STORE"
    if not is_file_store(uri) or name in os.environ:
        yield
        return
    os.environ[name] = "true"
    try:
        yield
    finally:
        os.environ.pop(name, None)


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"train": {"batch_size": 32}}`` → ``{"train.batch_size": 32}``; lists stay values."""
    if not isinstance(value, Mapping):
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, item in value.items():
        flat.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def final_metrics(record: Mapping[str, Any]) -> dict[str, float]:
    """The numeric, non-null figures of run.json's result sections (``reasons`` left out)."""
    metrics: dict[str, float] = {}
    for section in FINAL_SECTIONS:
        body = record.get(section)
        if not isinstance(body, Mapping):
            continue
        for key, value in flatten({k: v for k, v in body.items() if k != "reasons"},
                                  section).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) \
                    and key not in _NOT_METRICS:
                metrics[key] = float(value)
    return metrics


def metric_name(name: str) -> str:
    """A name MLflow accepts everywhere (letters, digits, ``_ - . /`` and spaces)."""
    return re.sub(r"[^\w./\- ]", "_", name)


class MlflowLogger:
    """Keeps the curves in memory; logs everything to MLflow at ``finish``."""

    name = "mlflow"

    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.config: ExperimentConfig | None = None
        self.history: list[tuple[str, float, int, int]] = []  # key, value, ms, step
        self._start_ms: int | None = None  # when training started, ms since the epoch

    def start(self, config: ExperimentConfig, run_dir: Path) -> None:
        self.config = config
        # The MLflow run is created at the end; it starts when the training did.
        self._start_ms = int(time.time() * 1000)

    def log_train(self, event: Mapping[str, Any]) -> None:
        self._keep("train", event, ("loss", "lr", "samples_per_s"))

    def log_eval(self, event: Mapping[str, Any]) -> None:
        skip = {"event", "time_s", "step", "epoch", "samples", "reasons", "power_w"}
        self._keep("eval", event, tuple(k for k in event if k not in skip))

    def finish(self, record: Mapping[str, Any], run_dir: Path) -> None:
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.tracking import MlflowClient

        assert self.config is not None, "finish before start"
        report = self._report(run_dir)
        uri = tracking_uri(self.config, run_dir)
        with allow_file_store(uri):
            client = MlflowClient(tracking_uri=uri)
            run_id, logged = self._run(client, run_dir)
        params = {metric_name(k): _param_value(v) for k, v in
                  flatten(self.config.model_dump(mode="json")).items()}
        changed = sorted(k for k, v in params.items() if k in logged and logged[k] != v)
        if changed:
            self.warnings.append(f"output.loggers: 'mlflow': parameters {', '.join(changed)} "
                                 "changed on resume; MLflow keeps the first values")
        new = [Param(k, v) for k, v in params.items() if k not in logged]
        tags = [RunTag("bigbench.status", str(record.get("status"))),
                RunTag("bigbench.stop_reason", str(record.get("stop_reason")))]
        for i in range(0, max(len(new), 1), _BATCH):
            client.log_batch(run_id, params=new[i:i + _BATCH], tags=tags if i == 0 else [])
        now = int(time.time() * 1000)
        step = int((record.get("progress") or {}).get("steps") or 0)
        metrics = [Metric(metric_name(k), v, ms, s) for k, v, ms, s in self.history]
        metrics += [Metric(metric_name(k), v, now, step) for k, v in final_metrics(record).items()]
        for i in range(0, len(metrics), 1000):
            client.log_batch(run_id, metrics=metrics[i:i + 1000])
        self.history = []
        for name in ARTIFACTS:
            if (run_dir / name).is_file():
                client.log_artifact(run_id, str(run_dir / name))
        if report is not None:
            client.log_artifacts(run_id, str(report), "report")
        client.set_terminated(run_id, _STATUS.get(str(record.get("status")), "FAILED"))

    def _keep(self, prefix: str, event: Mapping[str, Any], keys: tuple[str, ...]) -> None:
        ms, step = int(time.time() * 1000), int(event["step"])
        figures = {f"{prefix}/{k}": event.get(k) for k in keys}
        figures.update({f"power_w/{d}": w for d, w in (event.get("power_w") or {}).items()})
        for key, value in figures.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) \
                    and value == value and abs(value) != float("inf"):
                self.history.append((key, float(value), ms, step))

    def _run(self, client: Any, run_dir: Path) -> tuple[str, dict[str, str]]:
        """The MLflow run of this run directory (a resumed run's earlier one) and its params."""
        assert self.config is not None
        name = self.config.name
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            experiment_id = experiment.experiment_id
        else:
            try:
                experiment_id = client.create_experiment(name)
            except Exception:  # another run created it meanwhile
                experiment_id = client.get_experiment_by_name(name).experiment_id
        key = str(run_dir.resolve())
        if "'" not in key:
            found = client.search_runs([experiment_id],
                                       filter_string=f"tags.`{_RUN_DIR_TAG}` = '{key}'",
                                       max_results=1)
            if found:
                return found[0].info.run_id, dict(found[0].data.params)
        run = client.create_run(experiment_id, run_name=run_dir.name, tags={_RUN_DIR_TAG: key},
                                start_time=self._start_ms)
        return run.info.run_id, {}

    def _report(self, run_dir: Path) -> Path | None:
        """``<run>/report``, built (or refreshed, as ``bigbench report`` would) from the final
        files; an earlier report when this one fails; None when there is none."""
        folder = run_dir / "report"
        try:
            from bigbench.reporting.build import build_report

            build_report([run_dir], folder)
        except Exception as exc:  # the report is a bonus: the run and its MLflow record stand
            first_line = (str(exc).strip().splitlines() or [""])[0]
            self.warnings.append(f"output.loggers: 'mlflow': the report was not built "
                                 f"({type(exc).__name__}: {first_line})")
            return folder if (folder / "report.html").is_file() else None
        return folder


def _param_value(value: Any) -> str:
    """A parameter as MLflow stores it: strings as they are, anything else as JSON."""
    text = value if isinstance(value, str) else json.dumps(value)
    return text[:6000]
