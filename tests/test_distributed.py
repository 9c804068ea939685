"""Distributed training on 2 CPU ranks (gloo): the launcher, DDP, one run directory, refusals.

Each job starts real worker processes through torchrun's launcher, so these tests take a few
seconds each; both ranks share this machine's cores.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from bigbench.distributed.env import rank_from_env, slurm_rendezvous
from bigbench.errors import ConfigError
from bigbench.rank import SINGLE, Rank

ROOT = Path(__file__).resolve().parents[1]

CNN = """\
name: ddp
model: {name: cnn, channels: [4, 8], hidden: [16]}
data: {name: digits, size: 512, test_size: 64}
train:
  max_steps: 6
  batch_size: BATCH
  warmup_steps: 1
  log_every: 3
  drop_last: true
  optimizer: {name: sgd, lr: 0.05, momentum: 0.9}
device: cpu
"""

RNN = """\
name: ddp-rnn
model: {name: rnn, hidden_size: 16}
data: {name: tokens, size: 512, test_size: 64}
train:
  max_steps: 6
  batch_size: BATCH
  warmup_steps: 1
  log_every: 3
  optimizer: {name: sgd, lr: 0.05}
device: cpu
"""


def _bigbench(*args: object, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "bigbench", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, env=env)


def test_rank_from_the_launchers_environment() -> None:
    assert rank_from_env({}) == (SINGLE, None)
    assert rank_from_env({"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == \
        (Rank(1, 4, 1), "torchrun")
    assert rank_from_env({"SLURM_PROCID": "3", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1",
                          "SLURM_STEP_ID": "0"}) == (Rank(3, 8, 1), "slurm")
    assert rank_from_env({"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0"}) == (SINGLE, None)
    with pytest.raises(ConfigError, match="not a place in a job"):
        rank_from_env({"RANK": "4", "WORLD_SIZE": "4", "LOCAL_RANK": "0"})
    with pytest.raises(ConfigError, match="whole numbers"):
        rank_from_env({"RANK": "x", "WORLD_SIZE": "4", "LOCAL_RANK": "0"})
    assert slurm_rendezvous({"SLURM_LAUNCH_NODE_IPADDR": "10.0.0.1", "SLURM_JOB_ID": "7"}) == \
        {"MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "20007"}
    with pytest.raises(ConfigError, match="MASTER_ADDR"):
        slurm_rendezvous({})


@pytest.fixture(scope="module")
def two_rank_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, str]:
    folder = tmp_path_factory.mktemp("ddp")
    config = folder / "cnn.yaml"
    config.write_text(CNN.replace("BATCH", "8"))
    out = folder / "runs" / "two"
    out.parent.mkdir()
    result = _bigbench("train", config, "--nproc-per-node", 2, "--out", out)
    assert result.returncode == 0, result.stderr
    return out, json.loads((out / "run.json").read_text()), result.stdout


def test_a_two_rank_job_writes_one_run_with_job_figures(two_rank_run) -> None:
    out, record, stdout = two_rank_run
    assert [p.name for p in out.parent.iterdir()] == ["two"]  # one run directory
    assert record["status"] == "completed"
    job = record["distributed"]
    assert job["world_size"] == 2 and job["global_batch_size"] == 16
    assert job["strategy"] == "ddp" and job["backend"] == "gloo"
    assert [r["rank"] for r in job["ranks"]] == [0, 1]
    measured = record["throughput"]["measured_samples"]  # rank 0's: 5 steps × 8
    assert measured == 40 and job["samples"] == 2 * measured
    slowest = max(r["time_s"] for r in job["ranks"])
    assert job["samples_per_s"] == pytest.approx(job["samples"] / slowest)
    # No energy meter in tests: null with the reason, never 0.
    assert job["energy"]["total_j"] is None
    # DDP's gradient all-reduce, timed by its communication hook: in flight for part of
    # each step (it overlaps the backward pass, so a share, never more than the step).
    for figures in (job, *job["ranks"]):
        assert 0 < figures["communication_per_step_s"] < job["step_time_s"]["max"]
        assert 0 < figures["communication_share"] < 1
    assert (job["nnodes"], job["nproc_per_node"]) == (1, 2)
    assert stdout.count("bigbench train — ddp") == 1  # only rank 0 prints
    assert "job throughput" in stdout


@pytest.mark.parametrize("template", [CNN, RNN], ids=["cnn", "rnn"])
def test_two_ranks_reach_the_weights_of_one_rank_with_twice_the_batch(template, tmp_path,
                                                                       two_rank_run) -> None:
    """Each step the two shards are the two halves of the single rank's batch (one seeded
    permutation), and DDP averages their gradients: the same SGD steps."""
    config_two, config_one = tmp_path / "two.yaml", tmp_path / "one.yaml"
    config_two.write_text(template.replace("BATCH", "8"))
    config_one.write_text(template.replace("BATCH", "16"))
    if template is CNN:
        two = two_rank_run[0]
    else:
        two = tmp_path / "two"
        assert _bigbench("train", config_two, "--nproc-per-node", 2, "--out",
                         two).returncode == 0
    one = tmp_path / "one"
    assert _bigbench("train", config_one, "--out", one).returncode == 0
    a, b = load_file(two / "model.safetensors"), load_file(one / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert (a[key] - b[key]).abs().max().item() < 1e-5, key
    # The logged loss is the job's (summed over the ranks), and each rank evaluates half
    # the test split: both equal the single rank's.
    logs = [[json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
            for run in (two, one)]
    losses = [[e["loss"] for e in log if e["event"] == "train"] for log in logs]
    assert len(losses[0]) == 2 and losses[0] == pytest.approx(losses[1], abs=1e-5)
    evals = [[e for e in log if e["event"] == "eval"][-1] for log in logs]
    assert evals[0]["loss"] == pytest.approx(evals[1]["loss"], abs=1e-5)
    assert evals[0]["accuracy"] == evals[1]["accuracy"]


def test_refusals_before_anything_starts(tmp_path) -> None:
    config = tmp_path / "cnn.yaml"
    config.write_text(CNN.replace("BATCH", "8"))
    never = tmp_path / "never"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        result = _bigbench("train", config, "--nproc-per-node", 2, "--rdzv-endpoint",
                           f"127.0.0.1:{port}", "--out", never)
    assert result.returncode == 2 and "already in use" in result.stderr
    result = _bigbench("train", config, "--nproc-per-node", 2, "--set",
                       "distributed.backend=nccl", "--out", never)
    assert result.returncode == 2 and "needs CUDA" in result.stderr
    result = _bigbench("train", config, "--nproc-per-node", 2, "--set",
                       "distributed.backend=mpi", "--out", never)
    assert result.returncode == 2 and "distributed.backend" in result.stderr
    result = _bigbench("train", config, "--nnodes", 2, "--out", never)
    assert result.returncode == 2 and "rdzv_endpoint" in result.stderr
    assert not never.exists()


def _workers(launcher_pid: int) -> dict[int, object]:
    """The job's worker processes by rank (their RANK environment variable)."""
    import psutil

    found = {}
    for child in psutil.Process(launcher_pid).children(recursive=True):
        try:
            rank = child.environ().get("RANK")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if rank is not None and "bigbench" in " ".join(child.cmdline()):
            found[int(rank)] = child
    return found


def test_a_killed_rank_ends_the_job_cleanly(tmp_path) -> None:
    import signal
    import time

    import psutil

    config = tmp_path / "long.yaml"
    config.write_text(CNN.replace("BATCH", "8").replace("max_steps: 6", "max_steps: 100000")
                      + "distributed: {timeout_s: 30}\n")
    out = tmp_path / "run"
    launcher = subprocess.Popen([sys.executable, "-m", "bigbench", "train", str(config),
                                 "--nproc-per-node", "2", "--out", str(out)], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # until both ranks train
            workers = _workers(launcher.pid)
            if len(workers) == 2 and (out / "metrics.jsonl").is_file() and \
                    (out / "metrics.jsonl").read_text().count('"train"') >= 2:
                break
            time.sleep(0.5)
        else:
            pytest.fail("the job never started training")
        workers[1].send_signal(signal.SIGKILL)
        _, stderr = launcher.communicate(timeout=90)  # ends: never a hang
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode != 0
    assert "rank 1 failed" in stderr
    assert all(not p.is_running() or p.status() == psutil.STATUS_ZOMBIE
               for p in workers.values())  # no stray processes left behind
    record = json.loads((out / "run.json").read_text())
    assert record["status"] in ("failed", "interrupted")
    assert any(f["rank"] == 1 for f in record["rank_failures"])


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_ctrl_c_stops_every_rank_and_the_job_resumes(strategy, tmp_path) -> None:
    import signal
    import time

    config = tmp_path / "long.yaml"
    config.write_text(CNN.replace("BATCH", "8").replace("max_steps: 6", "max_steps: 400")
                      + f"distributed: {{strategy: {strategy}}}\n")
    out = tmp_path / "run"
    launcher = subprocess.Popen([sys.executable, "-m", "bigbench", "train", str(config),
                                 "--nproc-per-node", "2", "--out", str(out)], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        metrics = out / "metrics.jsonl"
        while time.monotonic() < deadline:
            if metrics.is_file() and metrics.read_text().count('"train"') >= 3:
                break
            time.sleep(0.3)
        else:
            pytest.fail("the job never started training")
        launcher.send_signal(signal.SIGINT)
        launcher.communicate(timeout=90)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode == 130
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "interrupted" and (out / "checkpoint").is_dir()
    stopped_at = record["progress"]["steps"]
    assert 0 < stopped_at < 400
    # Another world size would give every rank other samples: refused, nothing changed.
    refused = _bigbench("train", "--resume", out, "--nproc-per-node", 1, "--force")
    assert refused.returncode == 2 and "trained by 2 rank(s)" in refused.stderr
    # Each rank's own step times so far, for each rank to resume with.
    import torch

    own = torch.load(out / "checkpoint" / "state.pt", weights_only=True)["durations_by_rank"]
    assert len(own) == 2 and len(own[0]) == len(own[1]) > 0
    assert not torch.equal(own[0], own[1])
    resumed = _bigbench("train", "--resume", out)
    assert resumed.returncode == 0, resumed.stderr
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "completed" and record["progress"]["steps"] == 400
    job = record["distributed"]
    assert job["world_size"] == 2 and len(record["segments"]) == 2
    assert job["strategy"] == strategy
    if strategy == "ddp":  # the communication figures cover the resumed process's steps
        assert all(0 < row["communication_steps"] < 400 - stopped_at + 1
                   for row in job["ranks"])


def test_fsdp_shards_and_reaches_the_weights_of_ddp(tmp_path, two_rank_run) -> None:
    """FSDP on CPU (gloo): the same SGD steps as DDP, whole weights in model.safetensors,
    FLOPs counted on the unsharded twin."""
    config = tmp_path / "fsdp.yaml"
    config.write_text(CNN.replace("BATCH", "8") + "distributed: {strategy: fsdp}\n")
    out = tmp_path / "fsdp"
    result = _bigbench("train", config, "--nproc-per-node", 2, "--out", out)
    assert result.returncode == 0, result.stderr
    record = json.loads((out / "run.json").read_text())
    assert record["distributed"]["strategy"] == "fsdp"
    assert record["distributed"]["communication_per_step_s"] is None
    assert "fsdp" in record["distributed"]["reasons"]["communication_per_step_s"]
    assert record["flops"]["train_step_per_sample"] == \
        two_rank_run[1]["flops"]["train_step_per_sample"]
    a, b = load_file(out / "model.safetensors"), load_file(two_rank_run[0] / "model.safetensors")
    for key in b:
        assert (a[key] - b[key]).abs().max().item() < 1e-5, key
    refused = _bigbench("train", config, "--nproc-per-node", 2, "--set",
                        "train.channels_last=true", "--out", tmp_path / "never")
    assert refused.returncode == 2 and "contiguous" in refused.stderr


def test_torchrun_itself_starts_the_job(tmp_path) -> None:
    """``torchrun -m bigbench train``: bigbench reads the ranks torchrun set; a target is
    reached by the job."""
    config = tmp_path / "cnn.yaml"
    config.write_text(CNN.replace("BATCH", "8"))
    out = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node",
                             "2", "-m", "bigbench", "train", str(config), "--out", str(out),
                             "--set", "train.eval_every=3", "--set", "train.target_accuracy=0.01"],
                            cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    record = json.loads((out / "run.json").read_text())
    job = record["distributed"]
    assert job["world_size"] == 2 and (job["nnodes"], job["nproc_per_node"]) == (1, 2)
    assert job["communication_per_step_s"] > 0
    # The target's figures are the job's: both ranks' samples (3 steps × 2 × 8).
    target = record["target"]
    assert target["steps_to_target"] == 3 and target["samples_to_target"] == 48
    assert target["time_to_target_s"] > 0


def test_fsdp_shards_a_transformer_with_tied_weights(tmp_path) -> None:
    """GPT: its blocks are sharded one by one; the tied embedding and head stay one tensor
    with the root, and the saved weights load back into a plain model. The evaluation
    shards are of unequal batch counts."""
    config = tmp_path / "gpt.yaml"
    config.write_text("name: g\nmodel: {name: gpt, size: tiny}\n"
                      "data: {name: corpus, vocab_size: 32, order: 2, context: 32, size: 512, "
                      "test_size: 65}\ntrain: {max_steps: 4, batch_size: 4, warmup_steps: 1, "
                      "log_every: 2, optimizer: {name: adamw, lr: 0.003}}\ndevice: cpu\n"
                      "distributed: {strategy: fsdp}\n")
    out = tmp_path / "run"
    result = _bigbench("train", config, "--nproc-per-node", 2, "--out", out)
    assert result.returncode == 0, result.stderr
    weights = load_file(out / "model.safetensors")
    assert (weights["wte.weight"] == weights["lm_head.weight"]).all()
    # 65 test windows: rank 0 evaluates 33 (9 batches), rank 1 32 (8) and one forward more,
    # which every FSDP forward needs from every rank; the job's evaluation covers all 65.
    evaluation = json.loads((out / "run.json").read_text())["eval"]
    assert evaluation["samples"] == 65 and evaluation["loss"] > 0
    # Refused where a rank's own decision would desynchronise the ranks.
    refused = _bigbench("train", config, "--nproc-per-node", 2, "--set",
                        "train.on_nan=skip_step", "--out", tmp_path / "never")
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        "error: train.on_nan: skip_step is not supported with several ranks: a rank skipping "
        "its update would skip the gradient all-reduce the others wait in; use on_nan: stop"]
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize("fault_rank", [0, 1])
def test_a_rank_that_raises_alone_ends_the_job_with_its_error(fault_rank, tmp_path) -> None:
    """One rank's step raises: that rank issues no further collective (the others are not at
    the same point), writes what it can and exits; the others fail in their next collective.
    The job ends well inside distributed.timeout_s, and run.json says what happened."""
    config = tmp_path / "cnn.yaml"
    config.write_text(CNN.replace("BATCH", "8").replace("max_steps: 6", "max_steps: 40")
                      + "distributed: {timeout_s: 120}\n")
    out = tmp_path / "run"
    env = {**os.environ, "BIGBENCH_FAULT_RANK": str(fault_rank), "BIGBENCH_FAULT_STEP": "4"}
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node",
                             "2", str(ROOT / "tests" / "rank_fault.py"), "train", str(config),
                             "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                            timeout=240, env=env)
    assert result.returncode != 0
    assert time.monotonic() - started < 100  # not the 120 s collective timeout
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "failed" and record["stop_reason"] == "error"
    if fault_rank == 0:
        assert "injected fault at step 4" in record["error"]["message"]
        assert "ended on its own" in record["distributed_error"]["error"]
    else:  # rank 0 learns of it from its next collective
        assert "injected fault at step 4" in result.stderr
    assert "distributed" not in record


def test_two_nodes_rendezvous_at_node_0(tmp_path, two_rank_run) -> None:
    """Two launchers, one per "node" (here on one host), meet at node 0's endpoint: one job of
    2 ranks, one run directory written by rank 0, the same weights as 2 ranks on one node."""
    config = tmp_path / "cnn.yaml"
    config.write_text(CNN.replace("BATCH", "8"))
    port = _free_port()
    out = tmp_path / "run"
    args = [sys.executable, "-m", "bigbench", "train", str(config), "--nproc-per-node", "1",
            "--nnodes", "2", "--rdzv-endpoint", f"127.0.0.1:{port}", "--out", str(out)]
    node1 = subprocess.Popen([*args, "--node-rank", "1"], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        node0 = subprocess.run([*args, "--node-rank", "0"], cwd=ROOT, capture_output=True,
                               text=True, timeout=240)
        node1.communicate(timeout=60)
    finally:
        if node1.poll() is None:
            node1.kill()
    assert node0.returncode == 0 and node1.returncode == 0, node0.stderr
    job = json.loads((out / "run.json").read_text())["distributed"]
    assert (job["world_size"], job["nnodes"], job["nproc_per_node"]) == (2, 2, 1)
    a, b = load_file(out / "model.safetensors"), load_file(two_rank_run[0] / "model.safetensors")
    for key in b:
        assert (a[key] - b[key]).abs().max().item() < 1e-6, key


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _slurm_env(task: int, port: int) -> dict[str, str]:
    """What srun sets for task ``task`` of a 2-task step on one node (torchrun's variables
    removed, in case the tests run under it), with the rendezvous port."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update(SLURM_PROCID=str(task), SLURM_LOCALID=str(task), SLURM_STEP_ID="0",
               SLURM_STEP_NUM_TASKS="2", SLURM_NTASKS="2", SLURM_STEP_NUM_NODES="1",
               SLURM_STEP_TASKS_PER_NODE="2", SLURM_LAUNCH_NODE_IPADDR="127.0.0.1",
               MASTER_PORT=str(port))
    return env


def test_srun_tasks_form_one_job_and_a_batch_script_is_one_process(tmp_path,
                                                                   two_rank_run) -> None:
    """Two processes with the variables of an srun step are ranks 0 and 1 of one job; the
    same variables without a step id (a batch script's) make a single process."""
    config = tmp_path / "cnn.yaml"
    config.write_text(CNN.replace("BATCH", "8"))
    out = tmp_path / "srun"
    port = _free_port()
    tasks = [subprocess.Popen([sys.executable, "-m", "bigbench", "train", str(config), "--out",
                               str(out)], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=_slurm_env(task, port))
             for task in (0, 1)]
    try:
        outputs = [task.communicate(timeout=240) for task in tasks]
    finally:
        for task in tasks:
            if task.poll() is None:
                task.kill()
    assert [t.returncode for t in tasks] == [0, 0], outputs[0][1]
    assert outputs[1] == ("", "")  # rank 1 stays quiet
    job = json.loads((out / "run.json").read_text())["distributed"]
    assert (job["world_size"], job["nnodes"], job["nproc_per_node"]) == (2, 1, 2)
    a, b = load_file(out / "model.safetensors"), load_file(two_rank_run[0] / "model.safetensors")
    for key in b:
        assert (a[key] - b[key]).abs().max().item() < 1e-6, key
    # Under srun the step sets the ranks: a --nproc-per-node that disagrees is a mistake.
    refused = subprocess.run([sys.executable, "-m", "bigbench", "train", str(config),
                              "--nproc-per-node", "4", "--out", str(tmp_path / "never")],
                             cwd=ROOT, capture_output=True, text=True, timeout=120,
                             env=_slurm_env(0, port))
    assert refused.returncode == 2 and "rank 0 of 2" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    batch = _slurm_env(1, port)
    del batch["SLURM_STEP_ID"]
    single = subprocess.run([sys.executable, "-m", "bigbench", "train", str(config), "--out",
                             str(tmp_path / "batch")], cwd=ROOT, capture_output=True, text=True,
                            timeout=240, env=batch)
    assert single.returncode == 0, single.stderr
    assert "distributed" not in json.loads((tmp_path / "batch" / "run.json").read_text())


def test_fsdp_clips_by_the_global_norm_as_ddp_does(tmp_path) -> None:
    """train.grad_clip under FSDP: the norm is over the whole model, not a rank's shard, so the
    clipped steps (every step clips at 0.01) reach DDP's weights."""
    runs = {}
    for strategy in ("ddp", "fsdp"):
        config = tmp_path / f"{strategy}.yaml"
        config.write_text(CNN.replace("BATCH", "8").replace("log_every: 3", "log_every: 3\n"
                                                            "  grad_clip: 0.01")
                          + f"distributed: {{strategy: {strategy}}}\n")
        runs[strategy] = tmp_path / strategy
        result = _bigbench("train", config, "--nproc-per-node", 2, "--out", runs[strategy])
        assert result.returncode == 0, result.stderr
    a, b = (load_file(runs[s] / "model.safetensors") for s in ("ddp", "fsdp"))
    for key in a:
        assert (a[key] - b[key]).abs().max().item() < 1e-6, key
