"""Language models end to end: gpt (and lstm) learn a corpus down to its entropy floor through
``bigbench train``; run.json's per-token figures, tied weights on disk, resume, FLOPs against
the PaLM / nanoGPT formula, prefill and decode through the KV cache, the lm bench suite, the
memory pre-check and the ``text`` dataset.

Every training run uses one thread: on a shared 2-core machine two OpenMP threads stall each
other, which makes a run ten to a hundred times slower.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import signal
import time

import pytest
import torch
from conftest import load_run
from fakes import LivePowercap
from safetensors import safe_open

from bigbench.checkpoint import load_weights
from bigbench.config import load_config
from bigbench.config.schema import OptimizerConfig
from bigbench.data import build_data
from bigbench.data.info import DataInfo
from bigbench.data.tensors import sequential_batches
from bigbench.measuring.energy import rapl
from bigbench.models import MODELS, build_model
from bigbench.models.gpt import train_flops_per_token
from bigbench.workload.build import workload_from_module
from bigbench.workload.steps import build_step, cached_step_flops, step_flops
from bigbench.workload.task import LANGUAGE_MODELING

VOCAB, WINDOW = 16, 32

#: A 2-layer, width-32 gpt (about 29k parameters) on an order-1 Markov source over 16 tokens:
#: 300 steps take about 4 s on one core and end about 0.02-0.03 nats above the floor.
GPT_CORPUS = f"""\
name: lm
model: {{name: gpt, n_layer: 2, n_head: 2, d_model: 32, context: {WINDOW}}}
data: {{name: corpus, vocab_size: {VOCAB}, order: 1, context: {WINDOW}, size: 2000,
        test_size: 200}}
train:
  max_steps: 300
  batch_size: 32
  optimizer: {{name: adamw, lr: 0.003, weight_decay: 0.01}}
  warmup_steps: 5
  log_every: 50
  threads: 1
device: cpu
"""

#: Measured +0.018 … +0.028 nats above the floor (seeds 0-3); ln(16) is 2.77.
GPT_MARGIN = 0.25
#: An lstm on an order-2 source (the floor is 1.11): measured +0.16 after 200 steps.
LSTM_MARGIN = 0.45
#: Power of the fake RAPL package zone, W.
PACKAGE_W = 40.0


@pytest.fixture
def one_thread() -> None:
    """In-process steps outside ``bigbench train`` (conftest restores the count afterwards)."""
    torch.set_num_threads(1)


@pytest.fixture
def live_powercap(tmp_path, monkeypatch):
    """A fake powercap tree whose package counter advances in real time at PACKAGE_W."""
    root = tmp_path / "powercap"
    live = LivePowercap(root, {"intel-rapl:0": PACKAGE_W}, period_s=0.005).start()
    monkeypatch.setenv(rapl.ROOT_ENV, str(root))
    yield root
    live.stop()


def _lm_info(window: int, vocab: int = VOCAB) -> DataInfo:
    return DataInfo(sample_shape=(window,), num_classes=vocab, vocab_size=vocab,
                    task="language_modeling")


def _gpt(info: DataInfo, **args):
    return build_model(MODELS.get("gpt").config_class(name="gpt", **args), info)


def _check_per_token_figures(record: dict) -> None:
    """run.json's language-model figures agree with each other."""
    assert record["task"] == "language_modeling"
    window = record["data"]["sample_shape"][0]
    throughput = record["throughput"]
    assert throughput["tokens_per_s"] == pytest.approx(throughput["samples_per_s"] * window)
    ev = record["eval"]
    assert ev["perplexity"] == pytest.approx(math.exp(ev["loss"]))
    assert ev["bits_per_token"] == pytest.approx(ev["loss"] / math.log(2))
    assert 0 < ev["accuracy"] <= 1


def test_gpt_learns_the_corpus_down_to_its_entropy_floor(cli, write_config, tmp_path) -> None:
    config = write_config(GPT_CORPUS)
    out = tmp_path / "run"
    result = cli("train", config, "--out", out)
    assert result.exit_code == 0, result.stderr
    assert "bug in bigbench" not in result.stderr  # run.json matches its schema
    record = load_run(out)
    assert record["status"] == "completed" and record["progress"]["steps"] == 300
    _check_per_token_figures(record)
    floor = record["data"]["entropy_floor"]
    assert 0 < floor < math.log(VOCAB)
    ev = record["eval"]
    assert ev["entropy_floor"] == floor
    assert ev["loss_above_floor"] == pytest.approx(ev["loss"] - floor)
    # 200 test windows are a sample: their loss may dip a little under the floor, not far.
    assert floor - 0.05 < ev["loss"] < floor + GPT_MARGIN, ev
    assert ev["loss"] < 0.5 * math.log(VOCAB)
    assert record["model"]["args"]["tie_weights"] is True

    # The tied LM head is stored once, as the token embedding ...
    weights = out / "model.safetensors"
    with safe_open(str(weights), framework="pt") as handle:
        keys = set(handle.keys())
    assert "wte.weight" in keys and "lm_head.weight" not in keys
    # ... and loads back: two fresh models (different initialisations) become the same model,
    # still tied, and reproduce the run's eval loss on the test split.
    cfg = load_config(out / "config.yaml")
    data = build_data(cfg.data, torch.device("cpu"))
    models = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        model = build_model(cfg.model, data.info).module.eval()
        load_weights(model, weights)
        assert model.lm_head.weight is model.wte.weight
        models.append(model)
    x = data.test.x[:4]
    with torch.no_grad():
        torch.manual_seed(3)
        untrained = build_model(cfg.model, data.info).module.eval()(x)
        a, b = models[0](x), models[1](x)
    assert torch.equal(a, b) and not torch.allclose(a, untrained)
    metrics = LANGUAGE_MODELING.evaluate(models[0], sequential_batches(data.test, 64), None)
    assert metrics["loss"] == pytest.approx(ev["loss"], rel=1e-5)
    assert metrics["accuracy"] == pytest.approx(ev["accuracy"], abs=1 / (200 * WINDOW))


def test_measured_energy_per_token(cli, write_config, tmp_path, live_powercap) -> None:
    config = write_config(GPT_CORPUS.replace("max_steps: 300", "max_steps: 60")
                          .replace("log_every: 50", "log_every: 20"))
    out = tmp_path / "run"
    result = cli("train", config, "--out", out)
    assert result.exit_code == 0, result.stderr
    record = load_run(out)
    _check_per_token_figures(record)
    energy = record["energy"]
    assert energy["status"] == "measured"
    assert energy["j_per_sample"] is not None and energy["j_per_token"] is not None
    assert energy["j_per_token"] == pytest.approx(energy["j_per_sample"] / WINDOW)
    assert energy["j_per_sample"] == pytest.approx(
        energy["total_j"] / record["throughput"]["measured_samples"])
    assert "j_per_token" not in (energy.get("reasons") or {})
    # The fake package zone draws PACKAGE_W: J/token × tokens/s is that power.
    assert energy["j_per_token"] * record["throughput"]["tokens_per_s"] == pytest.approx(
        PACKAGE_W, rel=0.25)


def test_without_meters_energy_per_token_is_null_with_a_reason(cli, write_config,
                                                               tmp_path) -> None:
    config = write_config(GPT_CORPUS.replace("max_steps: 300", "max_steps: 8")
                          .replace("log_every: 50", "log_every: 4")
                          .replace("warmup_steps: 5", "warmup_steps: 2"))
    assert cli("train", config, "--out", tmp_path / "run").exit_code == 0
    energy = load_run(tmp_path / "run")["energy"]
    assert energy["status"] == "unavailable"
    assert energy["j_per_token"] is None and energy["reasons"]["j_per_token"]


def test_lstm_learns_an_order_two_corpus(cli, write_config, tmp_path) -> None:
    config = write_config(f"""\
        name: lstm-lm
        model: {{name: lstm, hidden_size: 64}}
        data: {{name: corpus, vocab_size: {VOCAB}, order: 2, context: {WINDOW}, size: 2000,
                test_size: 200}}
        train:
          max_steps: 200
          batch_size: 32
          optimizer: {{name: adam, lr: 0.01}}
          warmup_steps: 5
          log_every: 50
          threads: 1
        device: cpu
        """)
    out = tmp_path / "run"
    result = cli("train", config, "--out", out)
    assert result.exit_code == 0, result.stderr
    record = load_run(out)
    assert record["model"]["family"] == "recurrent"
    _check_per_token_figures(record)
    ev = record["eval"]
    floor = ev["entropy_floor"]
    assert ev["loss_above_floor"] == pytest.approx(ev["loss"] - floor)
    assert floor - 0.05 < ev["loss"] < floor + LSTM_MARGIN, ev
    assert ev["loss"] < 0.6 * math.log(VOCAB)
    # It uses both tokens of context: the best bigram model (counted on the train split) is
    # far worse (measured 2.46 against the lstm's 1.27).
    assert ev["loss"] < _bigram_test_loss(out) - 0.5


def _bigram_test_loss(run_dir) -> float:
    """Test loss of next-token frequencies given the previous token, counted on the train
    split (add-0.1 smoothing)."""
    data = build_data(load_config(run_dir / "config.yaml").data, torch.device("cpu"))
    counts = torch.full((VOCAB, VOCAB), 0.1)
    counts.index_put_((data.train.x.reshape(-1), data.train.y.reshape(-1)),
                      torch.ones(data.train.x.numel()), accumulate=True)
    probs = counts / counts.sum(dim=1, keepdim=True)
    return -probs[data.test.x.reshape(-1), data.test.y.reshape(-1)].log().mean().item()


def test_interrupted_gpt_run_resumes_to_the_same_weights(cli, write_config, tmp_path,
                                                         monkeypatch) -> None:
    from bigbench import training_loop

    # Dropout and a cosine schedule: the resume must restore RNG and schedule state too.
    config = write_config(
        GPT_CORPUS.replace("max_steps: 300", "max_steps: 40")
        .replace("log_every: 50", "log_every: 5\n  checkpoint_every: 10\n"
                                  "  schedule: {name: cosine}")
        .replace("context: 32}", "context: 32, dropout: 0.1}", 1)
        .replace("size: 2000", "size: 400"))
    reference = tmp_path / "reference"
    assert cli("train", config, "--out", reference).exit_code == 0

    original = training_loop.TrainingLoop._step

    def step_then_signal(self, done: int) -> None:  # as tests/interrupting.py, in-process
        original(self, done)
        if done == 25:
            os.kill(os.getpid(), signal.SIGINT)

    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(training_loop.TrainingLoop, "_step", step_then_signal)
        stopped = cli("train", config, "--out", out)
    assert stopped.exit_code == 130, stopped.stderr
    record = load_run(out)
    assert record["status"] == "interrupted" and record["progress"]["steps"] == 25

    resumed = cli("train", "--resume", out)
    assert resumed.exit_code == 0, resumed.stderr
    record, expected = load_run(out), load_run(reference)
    assert record["status"] == "completed" and record["progress"]["steps"] == 40
    assert [s["steps"] for s in record["segments"]] == [[0, 25], [25, 40]]
    with safe_open(str(reference / "model.safetensors"), framework="pt") as a, \
            safe_open(str(out / "model.safetensors"), framework="pt") as b:
        assert set(a.keys()) == set(b.keys())
        differ = [k for k in a.keys() if not torch.equal(a.get_tensor(k), b.get_tensor(k))]
    assert not differ, f"resumed weights differ: {differ}"
    assert record["eval"]["loss"] == expected["eval"]["loss"]
    _check_per_token_figures(record)


@pytest.mark.parametrize(
    "geometry",
    [
        {"n_layer": 2, "n_head": 2, "d_model": 64, "window": 128, "vocab": 256},
        {"n_layer": 4, "n_head": 4, "d_model": 128, "window": 256, "vocab": 512, "rope": True},
        {"size": "124m", "window": 1024, "vocab": 50257},  # GPT-2 small
    ],
    ids=["tiny", "mini-rope", "gpt2-124m"],
)
def test_flops_match_the_palm_formula(geometry, one_thread) -> None:
    args = dict(geometry)
    window, vocab, gen = args.pop("window"), args.pop("vocab"), 4
    info = _lm_info(window, vocab)
    # Room for the decode step's generated tokens: context = window + gen.
    with torch.device("meta"):
        built = _gpt(info, context=window + gen, **args)
    workload = workload_from_module(built, info, torch.device("meta"),
                                    optimizer=OptimizerConfig())
    resolved = built.args
    position_table = 0 if resolved["rope"] else resolved["context"] * resolved["d_model"]
    per_token = train_flops_per_token(built.params - position_table, resolved["n_layer"],
                                      window, resolved["d_model"])
    flops = step_flops(workload)
    train, forward = flops["train_step_per_sample"], flops["forward_per_sample"]
    assert train / window == pytest.approx(per_token, rel=0.05)
    assert train == pytest.approx(3 * forward, rel=0.01)
    # Prefill computes the output head at the last position only: the other window − 1
    # positions' head matmuls (2·vocab·d_model each) are not done.
    head = 2 * resolved["vocab_size"] * resolved["d_model"]
    assert cached_step_flops(workload, "prefill") == forward - (window - 1) * head
    decode = cached_step_flops(workload, "decode", gen_tokens=gen)
    assert decode * window == pytest.approx(forward, rel=0.05)
    # Decoding attends to a longer past than the window's average: a little more per token.
    assert decode * window > forward


def test_decode_cycles_over_its_positions_and_matches_the_full_forward(one_thread) -> None:
    prompt, gen, batch = 8, 3, 2
    vocab = 20
    info = _lm_info(prompt, vocab)
    torch.manual_seed(0)
    built = _gpt(info, n_layer=2, n_head=2, d_model=32, context=prompt + gen)
    model = built.module
    workload = workload_from_module(built, info, torch.device("cpu"))
    with pytest.raises(ValueError, match="exceeds the model's context"):
        build_step(workload, "decode", batch_size=batch, gen_tokens=gen + 1)

    calls: list[tuple[torch.Tensor, torch.Tensor]] = []
    plain_forward = model.forward

    def recording(idx, cache=None, last_only=False):
        logits = plain_forward(idx, cache=cache, last_only=last_only)
        calls.append((idx.clone(), logits.clone()))
        return logits

    model.forward = recording
    step = build_step(workload, "decode", batch_size=batch, gen_tokens=gen)
    assert len(calls) == 1 and calls[0][0].shape == (batch, prompt)  # the prompt, prefilled
    # Only the last position's logits are computed: all that choosing a token needs.
    assert calls[0][1].shape == (batch, 1, vocab)
    prompt_tokens = calls[0][0]
    generator = torch.Generator().manual_seed(1)
    fed = torch.randint(0, vocab, (10, batch), generator=generator)
    chosen = []
    for k in range(10):  # more than 3 cycles: past prompt + gen unless the cache rewinds
        inputs = torch.randint(0, vocab, (batch, prompt), generator=generator)
        inputs[:, 0] = fed[k]  # decode feeds each sequence's first token
        chosen.append(int(step((inputs, inputs))))
    model.forward = plain_forward

    decoded = calls[1:]
    assert len(decoded) == 10
    for k, (idx, logits) in enumerate(decoded):
        assert torch.equal(idx, fed[k][:, None])
        cycle_start = k - k % gen  # the cache rewinds to the prompt every gen tokens
        sequence = torch.cat([prompt_tokens, fed[cycle_start:k + 1].T], dim=1)
        assert sequence.shape[1] == prompt + k % gen + 1 <= prompt + gen
        with torch.inference_mode():
            full = model(sequence)[:, -1]
        torch.testing.assert_close(logits[:, -1], full, atol=1e-5, rtol=1e-5)
        assert chosen[k] == int(full[0].argmax())

    # Prefill: the whole prompt into an empty cache, the first token chosen from the full
    # forward; the cache is reused, so a second prompt must not see the first.
    prefill = build_step(workload, "prefill")
    for seed in (5, 6):
        x = torch.randint(0, vocab, (batch, prompt), generator=torch.Generator().manual_seed(seed))
        with torch.inference_mode():
            expected = int(model(x)[0, -1].argmax())
        assert int(prefill((x, x))) == expected


def test_lm_bench_suite_reports_tokens_and_joules(cli, tmp_path, live_powercap,
                                                  one_thread) -> None:
    from bigbench.benchmark.output import markdown

    out = tmp_path / "bench"
    result = cli("bench", "--suite", "lm", "--device", "cpu", "--seq-lens", "32",
                 "--gen-tokens", "4", "--batch-sizes", "2", "--duration", "0.05",
                 "--repeats", "2", "--warmup", "1", "--json", "--out", out)
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    points = {p["id"]: p for p in document["points"]}
    assert set(points) == {"gpt/train/fp32/bs2/seq32", "gpt/prefill/fp32/bs2/seq32",
                           "gpt/decode/fp32/bs2/seq32/gen4"}
    tokens_per_sample = {"train": 32, "prefill": 32, "decode": 1}
    for point in points.values():
        mode = point["settings"]["mode"]
        assert point["status"] == "ok", point
        tokens = tokens_per_sample[mode]
        assert point["tokens_per_s"]["median"] == pytest.approx(
            point["samples_per_s"]["median"] * tokens)
        assert len(point["tokens_per_s"]["values"]) == 2
        energy = point["energy"]
        assert energy["j_per_sample"]["median"] is not None
        assert energy["j_per_token"]["median"] == pytest.approx(
            energy["j_per_sample"]["median"] / tokens)
        assert point["latency_s"]["p50"] > 0
    flops = {p["settings"]["mode"]: p["flops"]["per_sample"] for p in points.values()}
    # The lm suite's tiny GPT: byte vocabulary, d_model 64; prefill skips 31 positions' head.
    head = 2 * 256 * 64
    assert flops["train"] == pytest.approx(3 * (flops["prefill"] + 31 * head), rel=0.01)
    assert flops["decode"] * 32 == pytest.approx(flops["prefill"] + 31 * head, rel=0.05)
    assert points["gpt/decode/fp32/bs2/seq32/gen4"]["settings"]["gen_tokens"] == 4

    with open(out / "bench.csv") as handle:
        rows = {row["id"]: row for row in csv.DictReader(handle)}
    assert set(rows) == set(points)
    for point_id, row in rows.items():
        assert float(row["tokens_per_s"]) == pytest.approx(
            points[point_id]["tokens_per_s"]["median"])
        assert float(row["j_per_token"]) == pytest.approx(
            points[point_id]["energy"]["j_per_token"]["median"])
    table = markdown(document)  # what --markdown prints
    header = next(line for line in table.splitlines() if line.startswith("| point"))
    cells = [c.strip() for c in header.strip("|").split("|")]
    assert "tokens/s" in cells and "J/token" in cells
    assert json.loads((out / "bench.json").read_text())["points"] == document["points"]


def test_a_model_whose_activations_cannot_fit_is_refused_before_allocating(
        cli, write_config, tmp_path, monkeypatch) -> None:
    from bigbench import memory_budget
    from bigbench.workload import build as workload_build

    # A fixed free memory: a host with 500 GiB free would otherwise start the run.
    monkeypatch.setattr(memory_budget, "available_bytes", lambda device: 64 * 2**30)

    def must_not_build(*args, **kwargs):  # should the check let it through: fail, not allocate
        raise AssertionError("the 1.3b model was built: the memory pre-check let it through")

    monkeypatch.setattr(workload_build, "build_model", must_not_build)
    config = write_config("""\
        name: too-big
        model: {name: gpt, size: 1.3b}
        data: {name: corpus, vocab_size: 256, order: 1, context: 2048, size: 100,
               test_size: 10}
        train: {max_steps: 10, batch_size: 64, warmup_steps: 1}
        device: cpu
        """)
    out = tmp_path / "run"
    start = time.perf_counter()
    result = cli("train", config, "--out", out)
    elapsed = time.perf_counter() - start
    assert result.exit_code == 2
    assert elapsed < 5, f"refused only after {elapsed:.1f} s"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "GiB of activations" in lines[0], result.stderr
    assert "checkpoint_activations" in lines[0] and "Traceback" not in result.stderr
    assert not out.exists()
    # Korthikanti et al.: 34·s·b·h bytes per layer in 16-bit, twice that in fp32.
    reported = float(re.search(r"([\d.]+) GiB of activations", lines[0]).group(1))
    layers, batch, window, width = 24, 64, 2048, 2048
    assert reported == pytest.approx(2 * 34 * window * batch * width * layers / 2**30, rel=0.05)


def test_text_file_with_a_character_tokenizer(cli, write_config, tmp_path) -> None:
    sentences = ["the cat sat on the mat. ", "a dog ran to the park! ",
                 "Zoë drinks café au lait; ", "why? because 42 > 41.\n"]
    text = "".join(sentences[i % len(sentences)] for i in range(200))  # about 4.5 KB
    path = tmp_path / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    config = write_config(f"""\
        name: chars
        model: {{name: gpt, n_layer: 2, n_head: 2, d_model: 32}}
        data: {{name: text, path: {path}, tokenizer: char, context: 32}}
        train:
          max_steps: 50
          batch_size: 16
          optimizer: {{name: adamw, lr: 0.003}}
          warmup_steps: 2
          log_every: 25
          threads: 1
        device: cpu
        """)
    out = tmp_path / "run"
    result = cli("train", config, "--out", out)
    assert result.exit_code == 0, result.stderr
    record = load_run(out)
    assert record["status"] == "completed" and record["progress"]["steps"] == 50
    distinct = len(set(text))
    assert record["data"]["vocab_size"] == distinct == record["model"]["args"]["vocab_size"]
    assert record["data"].get("entropy_floor") is None  # unknown for the user's text
    _check_per_token_figures(record)
    assert record["eval"]["loss"] < 0.6 * math.log(distinct)
