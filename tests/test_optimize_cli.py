"""``bigbench optimize`` end to end on CPU: the variants, optimize.json, --from, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bigbench.config import load_config
from bigbench.optimize import artifacts

BASE = """\
name: tiny
model: {name: cnn, channels: [8, 16], hidden: [32]}
data: {name: digits, size: 512, test_size: 256}
train:
  max_steps: 40
  batch_size: 32
  warmup_steps: 2
  log_every: 10
  optimizer: {name: sgd, lr: 0.05, momentum: 0.9}
device: cpu
"""

#: The shipped config, shrunk to seconds: less data, one short epoch, short measurements.
SHIPPED = Path(__file__).resolve().parents[1] / "configs" / "optimize-cnn.yaml"
SMALL = ["data.size=512", "data.test_size=256", "train.epochs=1", "train.batch_size=32",
         "train.warmup_steps=2", "optimize.batch_size=32", "optimize.steps=3",
         "optimize.warmup=1", "optimize.repeats=2", "device=cpu"]

NAMES = ["base", "prune-50%", "prune-90%", "structured-50%", "int8-dynamic", "int8-static",
         "distill-cnn", "distill-cnn-baseline"]


@pytest.fixture(scope="module")
def optimized(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, str]:
    """One run of the shipped config (shared: the static variant compiles, which takes a
    while)."""
    from typer.testing import CliRunner

    from bigbench.cli import app

    out = tmp_path_factory.mktemp("optimize") / "out"
    sets = [arg for item in SMALL for arg in ("--set", item)]
    result = CliRunner().invoke(app, ["optimize", str(SHIPPED), *sets, "--out", str(out)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    return out, json.loads((out / "optimize.json").read_text()), result.stdout


def _entry(document: dict, name: str) -> dict:
    return next(v for v in document["variants"] if v["name"] == name)


def test_every_variant_is_built_measured_and_saved(optimized) -> None:
    out, document, stdout = optimized
    assert document["schema"] == "bigbench.optimize/1" and document["status"] == "completed"
    assert [v["name"] for v in document["variants"]] == NAMES
    assert (out / "base" / "run.json").is_file()  # the base trained as a normal run
    for entry in document["variants"]:
        assert entry["status"] == "ok", entry
        assert artifacts.is_variant(out / "variants" / entry["name"])
        assert Path(entry["weights_file"]).stat().st_size == entry["weights_bytes"]
        for batch in ("batch_1", "batch_32"):
            figures = entry["speed"][batch]
            assert figures["status"] == "ok" and figures["rounds"] == 2
            assert figures["samples_per_s"]["median"] > 0
            assert figures["latency_s"]["p50"] <= figures["latency_s"]["p99"]
            # No energy meter in tests: null with the reason, never 0.
            assert figures["j_per_sample"]["median"] is None
            assert figures["reasons"]["j_per_sample"]
        assert 0.0 <= entry["eval"]["accuracy"] <= 1.0
    assert "int8-static †" in stdout and "front" in stdout


def test_pruning_and_structure_figures(optimized) -> None:
    _, document, _ = optimized
    base = _entry(document, "base")
    for amount in (0.5, 0.9):
        entry = _entry(document, f"prune-{amount * 100:g}%")
        assert entry["sparsity"]["prunable_sparsity"] == pytest.approx(amount, abs=1e-3)
        assert entry["nonzero_params"] < base["params"] == entry["params"]
        # Zeros in dense tensors: the same multiply-adds, the same file size.
        assert entry["speed"]["batch_32"]["flops_per_sample"] == \
            base["speed"]["batch_32"]["flops_per_sample"]
    structured = _entry(document, "structured-50%")
    assert structured["model"]["channels"] == [16, 32] and structured["model"]["hidden"] == [50]
    assert structured["params"] < base["params"]
    assert structured["weights_bytes"] < base["weights_bytes"]
    assert structured["speed"]["batch_32"]["flops_per_sample"] < \
        base["speed"]["batch_32"]["flops_per_sample"]
    assert structured["train"]["steps"] == 150


def test_quantized_variants_are_smaller_and_close(optimized) -> None:
    _, document, _ = optimized
    base = _entry(document, "base")
    # int8_dynamic quantizes the linear layers only; int8_static's file also carries its
    # calibration histograms (8 kB per activation), a large share for a model this small.
    for name in ("int8-dynamic", "int8-static"):
        entry = _entry(document, name)
        assert entry["weights_bytes"] < 0.9 * base["weights_bytes"]
        assert abs(entry["delta"]["accuracy"]) <= 0.05
        assert entry["speed"]["batch_32"]["flops_method"].endswith("(float twin)")
    assert _entry(document, "int8-static")["runtime"].startswith("torch.compile")
    dynamic = _entry(document, "int8-dynamic")
    assert set(dynamic["float_layers"]) == {"features.0", "features.3"}  # convs stay float


def test_a_variant_the_device_cannot_run_is_skipped(cli, write_config, tmp_path) -> None:
    config = write_config(BASE.replace("max_steps: 40", "max_steps: 4") + "optimize:\n"
                          "  steps: 2\n  warmup: 0\n  repeats: 1\n  variants: "
                          "[{kind: quantize, method: int4_weight_only}]\n")
    result = cli("optimize", config, "--out", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.stderr
    skipped = _entry(json.loads(result.stdout), "int4-weight-only")
    assert skipped["status"] == "skipped" and "CUDA" in skipped["reason"]
    assert skipped["pareto"] is None and skipped["weights_file"] is None


def test_distillation_has_its_baseline(optimized) -> None:
    _, document, _ = optimized
    student, baseline = _entry(document, "distill-cnn"), _entry(document, "distill-cnn-baseline")
    assert student["recipe"]["alpha"] == 0.5 and baseline["recipe"]["alpha"] == 0.0
    assert student["train"]["steps"] == baseline["train"]["steps"] == 16  # as the base trained
    assert student["params"] == baseline["params"] < _entry(document, "base")["params"]


def test_pareto_marks(optimized) -> None:
    _, document, _ = optimized
    pareto = document["pareto"]
    assert [o["key"] for o in pareto["objectives"]] == ["accuracy", "latency_p50_s",
                                                          "weights_bytes"]
    assert "j_per_sample" in pareto["not_used"]
    marked = [v for v in document["variants"] if v["pareto"] is not None]
    assert {v["name"] for v in marked if not v["pareto"]["dominated"]} == set(pareto["front"])
    assert pareto["front"]
    # prune-50% keeps the base's size and latency and cannot be more accurate than both it and
    # every other variant at once; whatever dominates it is a measured variant.
    for entry in marked:
        assert set(entry["pareto"]["dominated_by"]) <= {v["name"] for v in marked}


def test_variants_load_back_and_feed_from(optimized, cli, tmp_path) -> None:
    out, document, _ = optimized
    loaded = artifacts.load_variant(out / "variants" / "structured-50%")
    assert loaded.built.params == _entry(document, "structured-50%")["params"]
    sets = [arg for item in [*SMALL, "optimize.repeats=1",
                             "optimize.variants=[{kind: quantize, method: int8_dynamic}]"]
            for arg in ("--set", item)]
    again = tmp_path / "again"
    result = cli("optimize", SHIPPED, *sets, "--from", out / "base", "--out", again, "--json")
    assert result.exit_code == 0, result.stderr
    second = json.loads(result.stdout)
    assert second["base"]["source"] == "from"
    assert not (again / "base").exists()  # nothing trained
    assert _entry(second, "base")["eval"] == _entry(document, "base")["eval"]
    # A variant folder is a base too: the structurally pruned model, quantized.
    third = tmp_path / "third"
    result = cli("optimize", SHIPPED, *sets, "--from", out / "variants" / "structured-50%",
                 "--out", third, "--markdown")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("| variant |")
    base = _entry(json.loads((third / "optimize.json").read_text()), "base")
    assert base["params"] == _entry(document, "structured-50%")["params"]


@pytest.mark.parametrize(("variants", "message"), [
    ("[{kind: squash, amount: 0.5}]", "kind"),
    ("[{kind: prune, amount: 1.5}]", "outside (0, 1)"),
    ("[{kind: prune, amount: 0}]", "outside (0, 1)"),
    ("[{kind: distill, student: {name: cnn, num_classes: 12}}]", "num_classes is 12"),
    ("[{kind: prune, amount: 0.5}, {kind: prune, amount: 0.5}]", "used twice"),
])
def test_bad_variants_are_refused_before_training(variants, message, cli, write_config,
                                                  tmp_path) -> None:
    config = write_config(BASE + f"optimize:\n  variants: {variants}\n")
    out = tmp_path / "never"
    result = cli("optimize", config, "--out", out)
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_refusals_before_training(cli, write_config, tmp_path) -> None:
    out = tmp_path / "never"
    no_section = write_config(BASE)
    result = cli("optimize", no_section, "--out", out)
    assert result.exit_code == 2 and "no optimize: section" in result.stderr
    recurrent = write_config(BASE.replace("model: {name: cnn, channels: [8, 16], hidden: [32]}",
                                          "model: {name: lstm}")
                             .replace("name: digits", "name: tokens")
                             + "optimize:\n  variants: [{kind: prune, method: structured, "
                               "amount: 0.5}]\n", "lstm.yaml")
    result = cli("optimize", recurrent, "--out", out)
    assert result.exit_code == 2 and "use method: unstructured" in result.stderr
    config = write_config(BASE + "optimize:\n  variants: [{kind: prune, amount: 0.5}]\n",
                          "ok.yaml")
    empty = tmp_path / "empty"
    empty.mkdir()
    result = cli("optimize", config, "--from", empty, "--out", out)
    assert result.exit_code == 2 and "not a run directory" in result.stderr
    assert not out.exists()


def test_from_a_run_of_another_model_is_refused(cli, write_config, tmp_path) -> None:
    run = tmp_path / "run"
    trained = write_config(BASE.replace("max_steps: 40", "max_steps: 4"), "base.yaml")
    assert cli("train", trained, "--out", run).exit_code == 0
    other = write_config(BASE.replace("channels: [8, 16]", "channels: [8, 8]")
                         + "optimize:\n  variants: [{kind: prune, amount: 0.5}]\n", "other.yaml")
    result = cli("optimize", other, "--from", run, "--out", tmp_path / "never")
    assert result.exit_code == 2
    assert "trained model 'cnn' (channels=[8, 16]" in result.stderr
    (run / "model.safetensors").unlink()
    same = write_config(BASE + "optimize:\n  variants: [{kind: prune, amount: 0.5}]\n",
                        "same.yaml")
    result = cli("optimize", same, "--from", run, "--out", tmp_path / "never")
    assert result.exit_code == 2 and "no model.safetensors" in result.stderr


def test_a_failing_recipe_is_recorded_and_the_others_run(write_config, tmp_path,
                                                         monkeypatch) -> None:
    from bigbench.optimize import run as optimize_run
    from bigbench.optimize import variants

    def broken(*args, **kwargs):
        raise RuntimeError("kernel exploded")

    monkeypatch.setattr(variants, "build_quantize", broken)
    monkeypatch.setattr(optimize_run, "build_quantize", broken)
    config = load_config(write_config(
        BASE.replace("max_steps: 40", "max_steps: 4") + "optimize:\n  steps: 2\n  warmup: 0\n"
        "  repeats: 1\n  variants: [{kind: quantize, method: int8_dynamic}, "
        "{kind: prune, amount: 0.5}]\n"))
    run = optimize_run.run_optimize(config, out=tmp_path / "out")
    document = run.document
    assert document["status"] == "completed"
    failed = _entry(document, "int8-dynamic")
    assert failed["status"] == "failed" and "kernel exploded" in failed["reason"]
    assert _entry(document, "prune-50%")["status"] == "ok"
    assert failed["pareto"] is None


def test_a_stop_keeps_what_was_built(write_config, tmp_path) -> None:
    from bigbench.optimize.run import run_optimize

    config = load_config(write_config(
        BASE.replace("max_steps: 40", "max_steps: 4") + "optimize:\n  variants: "
        "[{kind: prune, amount: [0.5, 0.9]}]\n"))
    built: list[str] = []
    run = run_optimize(config, out=tmp_path / "out",
                       should_stop=lambda: len(built) >= 1,
                       progress=lambda line: built.append(line) if "building" in line else None)
    on_disk = json.loads((tmp_path / "out" / "optimize.json").read_text())
    assert on_disk["status"] == run.document["status"] == "interrupted"
    assert [v["name"] for v in on_disk["variants"]] == ["base", "prune-50%"]


@pytest.mark.parametrize("name", ["int8-static", "int8-dynamic", "structured-50%"])
def test_bench_measures_a_saved_variant(optimized, name, cli, tmp_path) -> None:
    out, document, _ = optimized
    folder = out / "variants" / name
    result = cli("bench", "--from", folder, "--device", "cpu", "--batch-sizes", "4",
                 "--steps", "2", "--warmup", "1", "--repeats", "1", "--out", tmp_path / "b",
                 "--json")
    assert result.exit_code == 0, result.stderr
    assert "bug in bigbench" not in result.stderr  # bench.json matches its schema
    bench = json.loads(result.stdout)
    assert bench["model_from"] == str(folder) and bench["label"] == f"from-{name}"
    [point] = bench["points"]
    assert point["status"] == "ok" and point["settings"]["mode"] == "infer"
    variant = _entry(document, name)
    assert point["model"]["recipe"] == variant["recipe"]
    assert point["model"]["args"] == variant["model"]
    expected = variant["speed"]["batch_32"]["flops_per_sample"]
    assert point["flops"]["per_sample"] == expected
    assert point["flops"]["method"].endswith("(float twin)") == (name != "structured-50%")


def test_bench_from_a_run_and_its_refusals(optimized, cli, tmp_path) -> None:
    out, _, _ = optimized
    result = cli("bench", "--from", out / "base", "--device", "cpu", "--mode", "train,infer",
                 "--batch-sizes", "4", "--steps", "2", "--warmup", "0", "--repeats", "1",
                 "--out", tmp_path / "run", "--json")
    assert result.exit_code == 0, result.stderr
    points = json.loads(result.stdout)["points"]
    assert [p["status"] for p in points] == ["ok", "ok"]
    assert points[0]["model"]["recipe"]["kind"] == "base"
    # A quantized model cannot train: skipped with the reason, not failed.
    result = cli("bench", "--from", out / "variants" / "int8-dynamic", "--device", "cpu",
                 "--mode", "train", "--batch-sizes", "4", "--steps", "2", "--repeats", "1",
                 "--out", tmp_path / "q", "--json")
    assert result.exit_code == 0, result.stderr
    [point] = json.loads(result.stdout)["points"]
    assert point["status"] == "skipped" and "inference only" in point["reason"]
    for extra in (["--suite", "smoke"], ["--models", "cnn"]):
        result = cli("bench", "--from", out / "base", *extra)
        assert result.exit_code == 2 and "not both" in result.stderr
    result = cli("bench", "--from", tmp_path / "nowhere")
    assert result.exit_code == 2 and "no such directory" in result.stderr
    result = cli("bench", "--from", tmp_path, "--out", tmp_path / "never")
    assert result.exit_code == 2 and "not a run directory" in result.stderr


def test_bench_from_in_a_fresh_process(optimized, tmp_path) -> None:
    import bigbench

    out, _, _ = optimized
    result = bigbench.bench(model_from=out / "variants" / "int8-dynamic", device="cpu",
                            isolate=True, batch_sizes=[2], steps=2, warmup=0, repeats=1,
                            out=tmp_path / "iso")
    [point] = result.document.points
    assert point.status == "ok" and point.model.recipe == {"kind": "quantize",
                                                           "method": "int8_dynamic"}


def test_optimize_from_python(optimized, tmp_path) -> None:
    import bigbench

    out, document, _ = optimized
    result = bigbench.optimize_model(
        SHIPPED, overrides=[*SMALL, "optimize.repeats=1",
                            "optimize.variants=[{kind: prune, amount: 0.25}]"],
        from_run=out / "base", out=tmp_path / "api")
    assert result.status == "completed" and list(result.variants) == ["base", "prune-25%"]
    assert result.variants["base"].eval == _entry(document, "base")["eval"]
    assert set(result.front) <= {"base", "prune-25%"} and result.front
    assert result.to_dict() == json.loads((tmp_path / "api" / "optimize.json").read_text())
    with pytest.raises(bigbench.errors.ConfigError, match="from_run"):
        bigbench.optimize_model(SHIPPED, from_run=42)


def test_from_refuses_what_it_cannot_build_on(optimized, cli, tmp_path) -> None:
    out, _, _ = optimized
    never = tmp_path / "never"
    other_data = ["--set", "data={name: synthetic, shape: [1, 16, 16], num_classes: 10}"]
    cases = [
        (out / "base", other_data, "built for data with sample_shape"),
        (out / "variants" / "structured-50%", other_data, "built for data with sample_shape"),
        (out / "variants" / "int8-dynamic", [], "cannot be pruned, quantized or distilled"),
        (out / "variants" / "int8-static", [], "cannot be pruned, quantized or distilled"),
        (out, [], "that is an optimize run"),
    ]
    for folder, extra, message in cases:
        result = cli("optimize", SHIPPED, *[a for s in SMALL for a in ("--set", s)], *extra,
                     "--from", folder, "--out", never)
        assert result.exit_code == 2, (folder, result.stderr)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert not never.exists()


def test_a_variant_failing_its_evaluation_costs_only_itself(write_config, tmp_path,
                                                            monkeypatch) -> None:
    from bigbench.optimize import run as optimize_run

    real = optimize_run.evaluate

    def flaky(variant, *args, **kwargs):
        if variant.name == "prune-50%":
            raise RuntimeError("inductor exploded")
        return real(variant, *args, **kwargs)

    monkeypatch.setattr(optimize_run, "evaluate", flaky)
    config = load_config(write_config(
        BASE.replace("max_steps: 40", "max_steps: 4") + "optimize:\n  batch_size: 1\n"
        "  steps: 2\n  warmup: 0\n  repeats: 1\n  variants: [{kind: prune, amount: 0.5}, "
        "{kind: prune, amount: 0.25}]\n"))
    document = optimize_run.run_optimize(config, out=tmp_path / "out").document
    assert document["status"] == "completed"
    failed = _entry(document, "prune-50%")
    assert failed["status"] == "failed" and "inductor exploded" in failed["reason"]
    assert _entry(document, "prune-25%")["speed"]["batch_1"]["status"] == "ok"
    # batch_size 1 is the latency batch too: measured once per round, not twice.
    assert document["settings"]["batch_sizes"] == [1]
    assert _entry(document, "base")["speed"]["batch_1"]["rounds"] == 1


def test_a_stop_while_a_student_trains_ends_within_a_step(write_config, tmp_path) -> None:
    from bigbench.optimize.run import run_optimize

    config = load_config(write_config(
        BASE.replace("max_steps: 40", "max_steps: 4") + "optimize:\n  variants: "
        "[{kind: distill, student: {name: cnn, channels: [4, 8], hidden: [16]}, "
        "steps: 1000000}]\n"))
    lines: list[str] = []
    run = run_optimize(config, out=tmp_path / "out",
                       should_stop=lambda: any("building" in line for line in lines),
                       progress=lines.append)
    on_disk = json.loads((tmp_path / "out" / "optimize.json").read_text())
    assert on_disk["status"] == run.document["status"] == "interrupted"
    assert [v["name"] for v in on_disk["variants"]] == ["base"]  # recorded before any build


def test_json_and_markdown_together_are_refused(cli) -> None:
    result = cli("optimize", SHIPPED, "--json", "--markdown")
    assert result.exit_code == 2 and "choose one" in result.stderr
