"""``output.loggers``: TensorBoard, MLflow and CSV fed by a real run, and their failure modes."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
from conftest import Cli, load_run

from bigbench.config import load_config
from bigbench.errors import ConfigError
from bigbench.loggers import RunLoggers, build_loggers, check_loggers
from bigbench.loggers.csv_logger import CsvLogger
from bigbench.loggers.mlflow_logger import MlflowLogger, final_metrics, tracking_uri
from bigbench.loggers.tensorboard_logger import TensorBoardLogger

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SHORT = ["--set", "train.max_steps=12", "--set", "train.warmup_steps=2",
         "--set", "train.log_every=2", "--set", "train.threads=1"]


def _metrics_log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One short smoke run with every logger, measured against a live fake powercap tree (so
    each event has power), made once for the tests that read the trackers back."""
    import torch
    from fakes import LivePowercap

    from bigbench.measuring.energy import rapl

    root = tmp_path_factory.mktemp("loggers")
    threads = torch.get_num_threads()
    live = LivePowercap(root / "powercap", {"intel-rapl:0": 40.0}, period_s=0.002).start()
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv(rapl.ROOT_ENV, str(root / "powercap"))
            patch.delenv("MLFLOW_TRACKING_URI", raising=False)
            patch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
            result = Cli()("train", CONFIGS / "smoke.yaml", "--out", root / "run", *SHORT,
                           "--set", "measure.idle_s=0.1",
                           "--set", "output.loggers=[tensorboard,mlflow,csv]")
            assert result.exit_code == 0, result.stderr
            assert "output.loggers" not in result.stderr, result.stderr
    finally:
        live.stop()
        torch.set_num_threads(threads)
    return root / "run"


def test_tensorboard_scalars_follow_the_metrics_log(logged_run: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(logged_run / "tensorboard"))
    events.Reload()
    scalars = events.Tags()["scalars"]
    log = _metrics_log(logged_run)
    train = [e for e in log if e["event"] == "train"]
    loss = events.Scalars("train/loss")
    assert [s.step for s in loss] == [e["step"] for e in train] == [2, 4, 6, 8, 10, 12]
    assert [s.value for s in loss] == pytest.approx([e["loss"] for e in train], rel=1e-6)
    assert [s.step for s in events.Scalars("train/samples_per_s")] == [e["step"] for e in train]
    evals = [e for e in log if e["event"] == "eval"]
    assert [s.value for s in events.Scalars("eval/accuracy")] == \
        pytest.approx([e["accuracy"] for e in evals])
    power = sorted(t for t in scalars if t.startswith("power_w/"))
    assert power == ["power_w/rapl:vm:dram-0", "power_w/rapl:vm:package-0"], scalars
    package = events.Scalars("power_w/rapl:vm:package-0")  # the fake package draws 40 W
    assert [s.step for s in package] == [e["step"] for e in log]
    assert all(s.value == pytest.approx(40.0, rel=0.3) for s in package)


def test_mlflow_run_holds_params_metrics_and_artifacts(logged_run: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=(logged_run / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("smoke")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.tags["bigbench.run_dir"] == str(logged_run.resolve())
    params = run.data.params
    assert params["train.batch_size"] == "32" and params["model.name"] == "cnn"
    assert params["output.loggers"] == '["tensorboard", "mlflow", "csv"]'
    record = load_run(logged_run)
    metrics = run.data.metrics
    assert metrics["throughput.samples_per_s"] == pytest.approx(
        record["throughput"]["samples_per_s"])
    assert metrics["eval.accuracy"] == pytest.approx(record["eval"]["accuracy"])
    assert metrics["flops.forward_per_sample"] == record["flops"]["forward_per_sample"]
    assert "flops.mfu" not in metrics  # null on a CPU: left out, never 0
    assert set(metrics) == set(final_metrics(record)) | {
        "train/loss", "train/lr", "train/samples_per_s", "eval/accuracy", "eval/loss",
        "power_w/rapl_vm_package-0", "power_w/rapl_vm_dram-0"}
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert [m.step for m in history] == [2, 4, 6, 8, 10, 12]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"run.json", "config.yaml", "metrics.jsonl", "metrics.csv", "report"} <= artifacts
    assert "model.safetensors" not in artifacts
    report = {a.path for a in client.list_artifacts(run.info.run_id, "report")}
    assert "report/report.html" in report
    assert (logged_run / "report" / "report.html").is_file()


def test_csv_rows_match_the_metrics_log(logged_run: Path) -> None:
    with open(logged_run / "metrics.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        rows, header = list(reader), reader.fieldnames or []
    log = _metrics_log(logged_run)
    assert header[:7] == ["event", "step", "epoch", "time_s", "loss", "lr", "samples_per_s"]
    assert {"eval_accuracy", "eval_loss"} <= set(header)
    assert header[-2:] == ["power_w/rapl:vm:package-0", "power_w/rapl:vm:dram-0"]
    assert len(rows) == len(log)
    for row, entry in zip(rows, log, strict=True):
        assert row["event"] == entry["event"] and int(row["step"]) == entry["step"]
        assert float(row["time_s"]) == entry["time_s"]
        if entry["event"] == "train":
            assert float(row["loss"]) == entry["loss"]
            assert float(row["samples_per_s"]) == entry["samples_per_s"]
            assert row["eval_accuracy"] == ""
        else:
            assert float(row["eval_accuracy"]) == entry["accuracy"] and row["loss"] == ""
        assert float(row["power_w/rapl:vm:package-0"]) == pytest.approx(40.0, rel=0.3)


@pytest.mark.parametrize("logger", ["mlflow", "tensorboard"])
def test_a_missing_extra_is_one_error_before_anything_is_written(
        cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, logger: str) -> None:
    monkeypatch.setitem(sys.modules, logger, None)  # `import <logger>` now raises ImportError
    runs = tmp_path / "runs"
    result = cli("train", CONFIGS / "smoke.yaml", *SHORT, "--set", f"output.dir={runs}",
                 "--set", f"output.loggers=[csv,{logger}]")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"output.loggers: '{logger}' needs the {logger} extra: " \
           f"pip install 'bigbench[{logger}]'" in lines[0]
    assert not runs.exists()


@pytest.mark.parametrize(("cls", "method"), [(TensorBoardLogger, "log_train"),
                                             (TensorBoardLogger, "start"),
                                             (MlflowLogger, "finish")])
def test_a_failing_logger_costs_only_a_warning(cli, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               cls: type, method: str) -> None:
    def boom(self, *args) -> None:  # noqa: ANN001
        raise RuntimeError("tracker down\nsecond line")

    monkeypatch.setattr(cls, method, boom)
    out = tmp_path / "run"
    result = cli("train", CONFIGS / "smoke.yaml", "--out", out, *SHORT,
                 "--set", f"output.loggers=[{cls.name},csv]")
    assert result.exit_code == 0, result.stderr
    record = load_run(out)
    assert record["status"] == "completed" and record["error"] is None
    assert f"'{cls.name}' failed in {method} (RuntimeError: tracker down)" in \
        " ".join(result.stderr.split())
    assert result.stderr.count("failed in") == 1  # once, not at every event
    rows = (out / "metrics.csv").read_text().splitlines()  # the other logger carried on
    assert len(rows) == 1 + len(_metrics_log(out))


def test_loggers_are_fed_events_with_power_and_failures_are_isolated(tmp_path: Path) -> None:
    class Recorder:
        name, warnings = "recorder", []

        def __init__(self) -> None:
            self.calls: list[tuple] = []

        def start(self, config, run_dir) -> None:  # noqa: ANN001
            self.calls.append(("start", run_dir))

        def log_train(self, event) -> None:  # noqa: ANN001
            self.calls.append(("train", dict(event)))

        def log_eval(self, event) -> None:  # noqa: ANN001
            raise ValueError("bad")

        def finish(self, record, run_dir) -> None:  # noqa: ANN001
            self.calls.append(("finish", record["status"]))

    recorder = Recorder()
    loggers = RunLoggers([recorder], power=lambda: {"gpu0": 250.0})
    loggers.start(load_config(CONFIGS / "smoke.yaml"), tmp_path)
    entry = {"event": "train", "step": 2, "loss": 1.0}
    loggers.log_train(entry)
    assert "power_w" not in entry  # metrics.jsonl's entry is left as it is
    loggers.log_eval({"event": "eval", "step": 2})
    loggers.log_eval({"event": "eval", "step": 4})
    loggers.log_train({"event": "train", "step": 4})  # muted after the failure
    warnings = loggers.finish({"status": "completed"}, tmp_path)
    assert recorder.calls == [("start", tmp_path), ("train", {**entry, "power_w": {"gpu0": 250.0}}),
                              ("finish", "completed")]
    assert len(warnings) == 1 and "'recorder' failed in log_eval (ValueError: bad)" in warnings[0]

    other_rank = RunLoggers([Recorder()])
    other_rank.start(load_config(CONFIGS / "smoke.yaml"), None)  # a rank that does not write
    assert not other_rank


def test_build_and_check(monkeypatch: pytest.MonkeyPatch) -> None:
    loggers = build_loggers(["csv", "tensorboard"], eval_metrics=["accuracy"],
                            power_devices=["cpu:0"])
    assert [lg.name for lg in loggers.loggers] == ["csv", "tensorboard"]
    assert loggers.loggers[0].columns()[-2:] == ["eval_accuracy", "power_w/cpu:0"]
    monkeypatch.setitem(sys.modules, "mlflow", None)
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    with pytest.raises(ConfigError) as raised:
        check_loggers(["csv", "tensorboard", "mlflow"])
    assert len(raised.value.problems) == 2


def test_config_loggers_and_tracking_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    smoke = CONFIGS / "smoke.yaml"
    assert load_config(smoke).output.loggers == []
    with pytest.raises(ConfigError, match="listed more than once"):
        load_config(smoke, ["output.loggers=[csv,csv]"])
    with pytest.raises(ConfigError, match="'wandb' is not allowed"):
        load_config(smoke, ["output.loggers=[wandb]"])
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri(load_config(smoke), tmp_path) == (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracker:5000")
    assert tracking_uri(load_config(smoke), tmp_path) == "http://tracker:5000"
    cfg = load_config(smoke, ["output.mlflow_tracking_uri=sqlite:///x.db"])
    assert tracking_uri(cfg, tmp_path) == "sqlite:///x.db"  # the config wins over the env


def test_a_report_that_cannot_be_built_is_a_warning(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import bigbench.reporting.build as build

    def broken(results, out_dir=None):  # noqa: ANN001, ANN202
        raise RuntimeError("no figures")

    monkeypatch.setattr(build, "build_report", broken)
    logger = MlflowLogger()
    assert logger._report(tmp_path) is None
    assert "the report was not built (RuntimeError: no figures)" in logger.warnings[0]


def test_csv_resumed_run_appends_under_the_first_header(tmp_path: Path) -> None:
    cfg = load_config(CONFIGS / "smoke.yaml")
    first = CsvLogger(["accuracy"])
    first.start(cfg, tmp_path)
    first.log_train({"event": "train", "step": 2, "epoch": 0, "time_s": 1.0, "loss": 0.5})
    first.finish({}, tmp_path)
    second = CsvLogger(["accuracy"])
    second.start(cfg, tmp_path)
    second.log_eval({"event": "eval", "step": 4, "epoch": 0, "time_s": 2.0, "accuracy": 0.9})
    second.finish({}, tmp_path)
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines == ["event,step,epoch,time_s,loss,lr,samples_per_s,eval_accuracy",
                     "train,2,0,1.0,0.5,,,", "eval,4,0,2.0,,,,0.9"]


def test_log_to_is_a_shorthand_for_output_loggers(cli, write_config, tmp_path) -> None:
    from conftest import TINY_CNN

    out = tmp_path / "run"
    result = cli("train", write_config(TINY_CNN), "--out", out, "--log-to", "csv")
    assert result.exit_code == 0, result.stderr
    assert (out / "metrics.csv").is_file() and not (out / "tensorboard").exists()
    assert json.loads((out / "run.json").read_text())["config"]["output"]["loggers"] == ["csv"]
    refused = cli("train", write_config(TINY_CNN), "--out", tmp_path / "no", "--log-to", "nope")
    assert refused.exit_code == 2 and "'nope' is not allowed" in refused.stderr


def test_an_unreachable_tracking_server_is_refused_before_training(cli, write_config,
                                                                   tmp_path) -> None:
    import socket

    from conftest import TINY_CNN

    with socket.socket() as probe:  # a local port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "run"
    result = cli("train", write_config(TINY_CNN), "--out", out, "--log-to", "mlflow",
                 "--set", f"output.mlflow_tracking_uri=http://127.0.0.1:{port}")
    assert result.exit_code == 2
    assert "cannot reach the MLflow tracking server" in result.stderr
    assert not out.exists()


def test_the_mlflow_run_spans_the_training(logged_run: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The MLflow run starts when training did, not when results were sent at the end."""
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=(logged_run / "mlruns").as_uri())
    (run,) = client.search_runs([client.get_experiment_by_name("smoke").experiment_id])
    record = json.loads((logged_run / "run.json").read_text())
    assert run.info.end_time - run.info.start_time >= 1000 * record["time"]["measured_s"]


# --- a crash or an interrupt that escapes the run still finishes every logger ----------------

class CallRecorder:
    """A logger that records every call it gets (and the record's status at finish)."""

    name = "recorder"

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.warnings: list[str] = []

    def start(self, config, run_dir) -> None:  # noqa: ANN001
        self.calls.append(("start",))

    def log_train(self, event) -> None:  # noqa: ANN001
        self.calls.append(("train", event["step"]))

    def log_eval(self, event) -> None:  # noqa: ANN001
        self.calls.append(("eval", event["step"]))

    def finish(self, record, run_dir) -> None:  # noqa: ANN001
        self.calls.append(("finish", record["status"], record.get("stop_reason")))


def _train_with_recorder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                         recorder: CallRecorder, *sets: str, callbacks=None  # noqa: ANN001
                         ) -> CsvLogger:
    """run_training of a tiny CNN whose loggers are ``recorder`` and the real CSV logger (the
    tests here expect it to raise)."""
    from conftest import TINY_CNN

    import bigbench.trainer as trainer
    from bigbench.interrupt import StopRequest

    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_CNN)
    csv_logger = CsvLogger(["accuracy"])
    monkeypatch.setattr(trainer, "build_loggers",
                        lambda *args, **kwargs: RunLoggers([recorder, csv_logger]))
    cfg = load_config(config, ["output.loggers=[csv]", "train.threads=1", "train.log_every=2",
                               *sets])
    trainer.run_training(cfg, out=tmp_path / "run", stop=StopRequest(), callbacks=callbacks)
    return csv_logger


def test_an_exit_inside_the_loop_still_finishes_the_loggers(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    from bigbench import training_loop

    original = training_loop.TrainingLoop._step

    def exit_at_step_5(self, done: int) -> None:  # noqa: ANN001
        original(self, done)
        if done == 5:  # e.g. a library calling sys.exit() mid-run
            raise SystemExit(3)

    monkeypatch.setattr(training_loop.TrainingLoop, "_step", exit_at_step_5)
    recorder = CallRecorder()
    with pytest.raises(SystemExit):
        _train_with_recorder(tmp_path, monkeypatch, recorder)
    assert recorder.calls[0] == ("start",)
    assert ("train", 4) in recorder.calls and ("train", 6) not in recorder.calls
    assert recorder.calls[-1] == ("finish", "failed", "error")
    assert [c[0] for c in recorder.calls].count("finish") == 1
    record = load_run(tmp_path / "run")  # run.json was written before the exit went on
    assert record["status"] == "failed" and record["error"]["type"] == "SystemExit"
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + len(_metrics_log(tmp_path / "run"))  # every event, file closed


def test_an_interrupt_outside_the_loop_still_finishes_the_loggers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bigbench.training_loop import TrainCallbacks

    def second_ctrl_c(message: str) -> None:  # Ctrl-C twice during the idle baseline
        raise KeyboardInterrupt

    recorder = CallRecorder()
    opened: list[CsvLogger] = []
    original_start = CsvLogger.start

    def start(self, config, run_dir) -> None:  # noqa: ANN001
        original_start(self, config, run_dir)
        opened.append(self)

    monkeypatch.setattr(CsvLogger, "start", start)
    with pytest.raises(KeyboardInterrupt):
        _train_with_recorder(tmp_path, monkeypatch, recorder, "measure.idle_s=5",
                             callbacks=TrainCallbacks(on_phase=second_ctrl_c))
    # The record as far as it was written: training had not started.
    assert recorder.calls == [("start",), ("finish", "running", None)]
    assert opened and opened[0]._file is None  # the real logger closed its file
    assert load_run(tmp_path / "run")["status"] == "running"
