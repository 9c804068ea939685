"""A process's place in a job from its launcher's environment (torchrun, srun, sbatch), the job's
shape, each rank's GPU, and ending a job's whole process tree. No GPU and no SLURM needed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import psutil
import pytest
import torch

from bigbench.benchmark.scaling import _kill
from bigbench.distributed.env import job_shape, rank_from_env, slurm_step
from bigbench.errors import ConfigError, DeviceError
from bigbench.rank import SINGLE, Rank
from bigbench.workload.build import rank_device

TORCHRUN = {"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "4",
            "GROUP_WORLD_SIZE": "2", "ROLE_WORLD_SIZE": "8"}

#: What ``sbatch --nodes 2 --ntasks-per-node 4`` sets in its batch script (one process).
BATCH = {"SLURM_JOB_ID": "7", "SLURM_PROCID": "0", "SLURM_NTASKS": "8", "SLURM_LOCALID": "0",
         "SLURM_NNODES": "2", "SLURM_JOB_NUM_NODES": "2", "SLURM_NTASKS_PER_NODE": "4",
         "SLURM_TASKS_PER_NODE": "4(x2)"}

#: Task 6 of ``srun`` (step 0) in that job.
SRUN = {**BATCH, "SLURM_STEP_ID": "0", "SLURM_PROCID": "6", "SLURM_LOCALID": "2",
        "SLURM_STEP_NUM_TASKS": "8", "SLURM_STEP_NUM_NODES": "2",
        "SLURM_STEP_TASKS_PER_NODE": "4(x2)"}


# --- rank_from_env ------------------------------------------------------------------------------

def test_torchrun_sets_the_rank() -> None:
    assert rank_from_env(TORCHRUN) == (Rank(5, 8, 1), "torchrun")


def test_a_task_of_an_srun_step_is_a_rank() -> None:
    assert rank_from_env(SRUN) == (Rank(6, 8, 2), "slurm")
    assert rank_from_env({**SRUN, "SLURM_STEP_ID": "12"}) == (Rank(6, 8, 2), "slurm")


def test_torchrun_under_srun_wins() -> None:
    assert rank_from_env({**SRUN, **TORCHRUN}) == (Rank(5, 8, 1), "torchrun")


@pytest.mark.parametrize("step", [None, "", "batch", "extern", "interactive", "4294967294",
                                  "4294967295", "4294967291", "4294967292", "4294967290",
                                  "-1", "0+1"])
def test_a_batch_script_is_a_single_process(step: str | None) -> None:
    env = dict(BATCH) if step is None else {**BATCH, "SLURM_STEP_ID": step}
    assert not slurm_step(env)
    assert rank_from_env(env) == (SINGLE, None)


def test_the_steps_size_wins_over_the_jobs() -> None:
    # srun -n 2 inside an allocation of 8 tasks: the step has 2 ranks
    env = {**SRUN, "SLURM_PROCID": "1", "SLURM_LOCALID": "1", "SLURM_STEP_NUM_TASKS": "2"}
    assert rank_from_env(env) == (Rank(1, 2, 1), "slurm")
    # without SLURM_STEP_NUM_TASKS, SLURM_NTASKS
    env = {k: v for k, v in SRUN.items() if k != "SLURM_STEP_NUM_TASKS"}
    assert rank_from_env(env) == (Rank(6, 8, 2), "slurm")
    # a step of one task is a single process
    env = {**SRUN, "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_STEP_NUM_TASKS": "1"}
    assert rank_from_env(env) == (SINGLE, None)


@pytest.mark.parametrize("env,message", [
    ({**SRUN, "SLURM_STEP_NUM_TASKS": "4"}, "not a place in a job"),
    ({**SRUN, "SLURM_LOCALID": "-1"}, "not a place in a job"),
    ({**SRUN, "SLURM_PROCID": "six"}, "whole numbers"),
    ({**TORCHRUN, "RANK": "8"}, "not a place in a job"),
])
def test_inconsistent_variables_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        rank_from_env(env)


# --- job_shape ----------------------------------------------------------------------------------

def test_the_shape_of_a_torchrun_job() -> None:
    assert job_shape(8, TORCHRUN) == (2, 4)
    # nodes only: the ranks per node follow when they divide evenly
    env = {k: v for k, v in TORCHRUN.items() if k != "LOCAL_WORLD_SIZE"}
    assert job_shape(8, env) == (2, 4)
    assert job_shape(7, env) == (2, None)
    # agents with different --nproc-per-node: no one figure per node
    assert job_shape(6, {**TORCHRUN, "WORLD_SIZE": "6", "RANK": "1"}) == (2, None)


def test_the_shape_of_an_srun_step() -> None:
    assert job_shape(8, SRUN) == (2, 4)
    env = {**SRUN, "SLURM_STEP_NUM_TASKS": "6", "SLURM_STEP_NUM_NODES": "3",
           "SLURM_STEP_TASKS_PER_NODE": "2(x3)"}
    assert job_shape(6, env) == (3, 2)
    # the nodes from the layout alone; the job's allocation counts less
    env = {**BATCH, "SLURM_STEP_ID": "0", "SLURM_STEP_TASKS_PER_NODE": "2(x3)",
           "SLURM_NNODES": "5", "SLURM_JOB_NUM_NODES": "5"}
    assert job_shape(6, env) == (3, 2)
    # uneven nodes: 2, 2, 2 and 1
    env = {**SRUN, "SLURM_STEP_NUM_NODES": "4", "SLURM_STEP_TASKS_PER_NODE": "2(x3),1"}
    assert job_shape(7, env) == (4, None)
    # 3 and 1 would divide 4 ranks by 2 nodes evenly, but the layout says otherwise
    env = {**SRUN, "SLURM_STEP_TASKS_PER_NODE": "3,1"}
    assert job_shape(4, env) == (2, None)
    # no layout: SLURM_NTASKS_PER_NODE, else world size ÷ nodes
    env = {k: v for k, v in SRUN.items() if k not in ("SLURM_STEP_TASKS_PER_NODE",)}
    assert job_shape(8, env) == (2, 4)
    env = {k: v for k, v in env.items() if k != "SLURM_NTASKS_PER_NODE"}
    assert job_shape(8, env) == (2, 4)
    env = {k: v for k, v in env.items() if not k.endswith("NODES") and k != "SLURM_NNODES"}
    assert job_shape(8, env) == (None, None)


def test_an_unknown_shape_is_none() -> None:
    assert job_shape(4, {}) == (None, None)
    assert job_shape(8, BATCH) == (None, None)  # a batch script's figures are the allocation's
    assert job_shape(1, {}) == (1, 1)
    assert job_shape(8, {**SRUN, "SLURM_STEP_TASKS_PER_NODE": "lots",
                         "SLURM_STEP_NUM_NODES": "x", "SLURM_JOB_NUM_NODES": "",
                         "SLURM_NNODES": "0", "SLURM_NTASKS_PER_NODE": "?"}) == (None, None)


# --- rank_device --------------------------------------------------------------------------------

@pytest.fixture
def no_launcher(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in {*TORCHRUN, *SRUN, "SLURM_GPUS_PER_TASK"}:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _gpus(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


def test_each_rank_takes_the_gpu_of_its_local_rank(no_launcher: pytest.MonkeyPatch) -> None:
    _gpus(no_launcher, 8)
    for name, value in TORCHRUN.items():
        no_launcher.setenv(name, value)
    assert rank_device(torch.device("cuda"), Rank(5, 8, 1)) == torch.device("cuda", 1)
    assert rank_device(torch.device("cpu"), Rank(5, 8, 1)) == torch.device("cpu")
    assert rank_device(torch.device("cuda"), SINGLE) == torch.device("cuda")


def test_a_torchrun_rank_beyond_the_gpus_is_refused(no_launcher: pytest.MonkeyPatch) -> None:
    _gpus(no_launcher, 1)
    for name, value in TORCHRUN.items():
        no_launcher.setenv(name, value)
    with pytest.raises(DeviceError, match="needs cuda:1 but this node has 1 GPU"):
        rank_device(torch.device("cuda"), Rank(5, 8, 1))


def test_an_srun_task_that_sees_its_own_gpu_takes_it(no_launcher: pytest.MonkeyPatch) -> None:
    # srun --gpus-per-task=1: local rank 2 sees one GPU, cuda:0
    for name, value in SRUN.items():
        no_launcher.setenv(name, value)
    _gpus(no_launcher, 1)
    # Without --gpus-per-task the one GPU is the node's: two tasks would share it.
    with pytest.raises(DeviceError, match="needs cuda:2 but this node has 1 GPU"):
        rank_device(torch.device("cuda"), Rank(6, 8, 2))
    no_launcher.setenv("SLURM_GPUS_PER_TASK", "1")
    assert rank_device(torch.device("cuda"), Rank(6, 8, 2)) == torch.device("cuda", 0)
    _gpus(no_launcher, 2)  # two visible GPUs are the node's: local rank 3 has none of its own
    with pytest.raises(DeviceError, match="needs cuda:3 but this node has 2 GPU"):
        rank_device(torch.device("cuda"), Rank(6, 8, 3))
    _gpus(no_launcher, 4)  # every task sees the node's 4 GPUs
    assert rank_device(torch.device("cuda"), Rank(6, 8, 2)) == torch.device("cuda", 2)
    _gpus(no_launcher, 0)
    with pytest.raises(DeviceError, match="has 0 GPU"):
        rank_device(torch.device("cuda"), Rank(6, 8, 2))


# --- ending a job's process tree ----------------------------------------------------------------

#: A job whose worker starts a session of its own (as torchelastic's do), out of the job's
#: process group; with IGNORE it shrugs off SIGTERM. The worker prints its pid when ready.
JOB = textwrap.dedent("""\
    import subprocess, sys, time
    worker = ("import os, signal, time\\n"
              + ("signal.signal(signal.SIGTERM, signal.SIG_IGN)\\n" if IGNORE else "")
              + "print(os.getpid(), flush=True)\\n"
              "time.sleep(120)\\n")
    subprocess.Popen([sys.executable, "-c", worker], start_new_session=True)
    time.sleep(120)
    """)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE  # nobody reaped it yet
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("ignore", [False, True], ids=["terminated", "killed"])
def test_kill_ends_the_whole_process_tree(ignore: bool) -> None:
    job = subprocess.Popen([sys.executable, "-c", f"IGNORE = {ignore}\n" + JOB],
                           stdout=subprocess.PIPE, start_new_session=True)
    assert job.stdout is not None
    worker = None
    try:
        worker = int(job.stdout.readline())
        assert psutil.Process(worker).ppid() == job.pid
        assert os.getpgid(worker) != os.getpgid(job.pid)  # out of reach of os.killpg
        _kill(job, grace_s=1.0)
        assert job.returncode is not None
        assert _gone(worker)
    finally:
        job.stdout.close()
        for pid in (job.pid, worker):
            if pid is not None and not _gone(pid):
                psutil.Process(pid).kill()
        job.wait()
