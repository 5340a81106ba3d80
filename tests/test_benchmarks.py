"""Every benchmark script runs in its smoke form and writes JSON with the hardware recorded."""

from __future__ import annotations

import json
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def run_smoke(script: str, tmp_path: Path, *extra: str) -> dict:
    out = tmp_path / "result.json"
    argv = sys.argv
    sys.argv = [script, "--smoke", "--out", str(out), *extra]
    try:
        runpy.run_path(str(BENCH / script), run_name="__main__")
    finally:
        sys.argv = argv
    return json.loads(out.read_text())


def test_checkpointing_benchmark_smoke(tmp_path):
    result = run_smoke("bench_checkpointing.py", tmp_path)
    assert result["hardware"]["torch"] and result["rows"][0]["model"] == "resnet20"
    row = result["rows"][0]
    # checkpointing stores only block inputs, so it must save less
    assert row["checkpointed_activation_mib"] < row["baseline_activation_mib"]
    assert row["baseline_fused_step_s"] > 0 and row["checkpointed_fused_step_s"] > 0  # the whole SGD step too
    assert row["hook_based_step_s"] > 0  # torch's other checkpoint form, side by side
    assert row["checkpointed_capture_error"] is None  # no GPU: nothing to capture, so nothing failed


def test_checkpointing_benchmark_counts_activations_only_on_both_sides():
    """Activation memory scales with the batch; the weights do not. Counting them on one side only
    (every convolution saves its weight, but a checkpointed block does so only while recomputing,
    outside the count) inflated resnet1202's CPU ratio from 3.99x to 4.41x: with the parameters
    excluded on both sides, each side's memory doubles exactly with the batch (up to BatchNorm's
    per-channel statistics), and the baseline exceeds the checkpointed run by activations alone."""
    import torch

    from resnet_lab.models import count_params, create_model

    bench = runpy.run_path(str(BENCH / "bench_checkpointing.py"), run_name="bench_checkpointing")
    model = "resnet8"
    weights_mib = count_params(create_model(model)) * 4 / 2**20
    small, large = (bench["measure"](model, batch, "cpu", repeats=1, blocks=1) for batch in (4, 8))
    for key in ("baseline_activation_mib", "checkpointed_activation_mib"):
        # with the weights (0.3 MiB) on a side, its 4-image figure would be well above half the 8-image one
        assert large[key] == pytest.approx(2 * small[key], rel=0.02), (key, small[key], large[key], weights_mib)
    # one image's saved tensors, counted by hand: nothing on either side may carry the weights' bytes
    torch.manual_seed(0)
    net = create_model(model).train()
    with_weights = bench["saved_tensor_bytes"](net, torch.randn(4, 3, 32, 32)) / 2**20
    assert with_weights - small["baseline_activation_mib"] == pytest.approx(weights_mib, abs=0.02)


def test_cifar_small_training_benchmark_smoke(tmp_path, shared_data_dir):
    result = run_smoke("bench_train_cifar_small.py", tmp_path,
                       "--data", f"npz:{shared_data_dir / 'cifar10-small.npz'}")
    assert len(result["epochs"]) == 1 and 0 <= result["epochs"][0]["test_acc"] <= 1
    assert result["hardware"]["torch"]


def test_fast_step_benchmark_smoke(tmp_path):
    result = run_smoke("bench_fast_step.py", tmp_path, "--compile")  # compiling resnet8 takes ~15 s on CPU
    row = result["rows"][0]
    assert result["hardware"]["torch"] and row["model"] == "resnet8"
    assert set(row["ms_per_step"]) == {"eager", "graph", "graph_monitor", "graph_ema", "graph_compiled", "data"}
    assert all(ms > 0 for ms in row["ms_per_step"].values())
    assert row["graph_capture_error"] is None and row["compiled_capture_error"] is None  # no GPU: nothing captured


def test_profile_step_benchmark_smoke_puts_every_operator_in_a_category(tmp_path):
    result = run_smoke("bench_profile_step.py", tmp_path, "--formats", "channels_last", "contiguous")
    assert [p["format"] for p in result["profiles"]] == ["channels_last", "contiguous"]  # one profile each
    profile = result["profiles"][1]
    for mode in ("eager", "graph"):
        table = profile[mode]
        assert table["kernels_seen"] > 0 and sum(table["share"].values()) == pytest.approx(1.0)
        assert sum(table["ms_per_step"].values()) == pytest.approx(table["ms_per_step_total"])
        assert {"conv_forward", "conv_backward", "batchnorm"} <= set(table["share"])  # a ResNet step has all three
        assert all(row["category"] in result["categories"] for row in table["top"])
    assert [row["batch"] for row in result["batch_sweep"]] == [4, 8]
    assert all(row["images_per_s"] > 0 for row in result["batch_sweep"])


def test_profile_categories_name_the_kernels_of_both_devices():
    sys.path.insert(0, str(BENCH))
    from bench_profile_step import category

    assert category("sm90_xmma_fprop_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc") == "conv_forward"
    assert category("sm90_xmma_dgrad_implicit_gemm_bf16") == "conv_backward"
    assert category("aten::convolution_backward") == "conv_backward"
    assert category("void at::native::batch_norm_collect_statistics_channels_last_kernel") == "batchnorm"
    assert category("void at::native::(anonymous namespace)::multi_tensor_apply_kernel") == "optimizer"
    assert category("void at::native::vectorized_elementwise_kernel<4, at::native::CUDAFunctor_add<float>>") \
        == "elementwise"
    assert category("void at::native::unrolled_elementwise_kernel<at::native::direct_copy_kernel_cuda>") \
        == "copy_cast"


def test_profile_counts_a_gpu_kernel_once_not_also_as_its_aten_operator():
    """On a GPU an aten operator's self device time is that of the kernels it launched: counting both
    doubled the eager tables of 2026-11-29 (resnet56: 23.5 ms of kernels per step against 11.8 graphed)."""
    from types import SimpleNamespace

    from torch.autograd import DeviceType

    sys.path.insert(0, str(BENCH))
    from bench_profile_step import counted_events

    def event(key, device_type, device_us, cpu_us=5.0):
        return SimpleNamespace(key=key, device_type=device_type, self_device_time_total=device_us,
                               self_cpu_time_total=cpu_us, count=2)

    events = [event("aten::cudnn_convolution", DeviceType.CPU, 40.0),  # its kernel's time, seen from the op
              event("sm90_xmma_fprop_implicit_gemm_bf16", DeviceType.CUDA, 40.0),
              event("aten::native_batch_norm", DeviceType.CPU, 10.0),
              event("void at::native::batch_norm_collect_statistics_kernel", DeviceType.CUDA, 10.0),
              event("cudaLaunchKernel", DeviceType.CPU, 0.0)]
    assert counted_events(events, on_device=True) == [("sm90_xmma_fprop_implicit_gemm_bf16", 40.0, 2),
                                                      ("void at::native::batch_norm_collect_statistics_kernel",
                                                       10.0, 2)]
    assert [name for name, _, _ in counted_events(events, on_device=False)] == ["aten::cudnn_convolution",
                                                                                 "aten::native_batch_norm"]


def test_fast_cifar_benchmark_smoke_times_the_real_command(tmp_path):
    # Two variants on the same seed: the recipe as is, and one more epoch (a flag the result shows).
    result = run_smoke("bench_fast_cifar.py", tmp_path, "--variants", "", "--epochs 2")
    run, longer = result["runs"]
    assert "error" not in run, run
    assert run["model"] == "resnet8" and run["epochs"] == 1 and 0 <= run["test_acc"] <= 1
    assert (longer["variant"], longer["seed"], longer["epochs"]) == ("--epochs 2", run["seed"], 2)
    paired = result["summary"][1]["vs_first_variant"]
    assert paired["variant"] == "" and paired["test_acc_deltas"] == [longer["test_acc"] - run["test_acc"]]
    assert run["wall_s"] > run["train_s"] > 0  # launch to exit includes start-up and data loading
    assert result["summary"][0]["target"] is None  # only the paper's models have targets
    timings = run["timings"]  # where the wall time went, read from the run's timings.json
    assert {"startup_s", "setup_s", "train_s", "eval_s", "bookkeeping_s", "report_s", "exit_s"} <= set(timings)
    assert abs(sum(v for v in timings.values() if v is not None) - run["wall_s"]) < 1e-6
    assert run["report_after_exit_s"] >= 0  # the recipe's background report, waited for before the next run
    # each run's metrics.jsonl, hashed: the file, and its values without the timing fields
    for key in ("metrics_sha256", "metrics_values_sha256"):
        assert re.fullmatch(r"[0-9a-f]{64}", run[key]) and re.fullmatch(r"[0-9a-f]{64}", longer[key])
        assert run[key] != longer[key]  # one epoch vs two: different records


def test_fast_cifar_metrics_digest_separates_values_from_timings(tmp_path):
    """Two records of the same steps at different speeds share the values hash, not the file hash;
    a record whose accuracy differs shares neither."""
    import hashlib

    bench = runpy.run_path(str(BENCH / "bench_fast_cifar.py"), run_name="bench_fast_cifar")
    line = {"epoch": 1, "step": 97, "train_loss": 1.5, "test_acc": 0.5279, "lr": 0.4, "time_s": 0.44,
            "elapsed_s": 0.44, "images_per_s": 150926.3}
    paths = {}
    for name, changes in (("graph", {}), ("eager", {"time_s": 0.77, "elapsed_s": 0.77, "images_per_s": 66096.7}),
                          ("other", {"test_acc": 0.6088})):
        paths[name] = tmp_path / f"{name}.jsonl"
        paths[name].write_text(json.dumps({**line, **changes}) + "\n")
    digest = {name: bench["metrics_digest"](path) for name, path in paths.items()}
    assert digest["graph"]["metrics_sha256"] == hashlib.sha256(paths["graph"].read_bytes()).hexdigest()
    assert digest["graph"]["metrics_sha256"] != digest["eager"]["metrics_sha256"]
    assert digest["graph"]["metrics_values_sha256"] == digest["eager"]["metrics_values_sha256"]
    assert digest["other"]["metrics_values_sha256"] != digest["graph"]["metrics_values_sha256"]


def test_import_time_benchmark_smoke(tmp_path):
    result = run_smoke("bench_import_time.py", tmp_path, "--baseline-src", str(BENCH.parent / "src"))
    variants = {"python", "torch", "resnet_lab", "cli", "help", "report"}
    assert set(result["median_wall_s"]) == variants | {f"baseline:{v}" for v in variants}
    assert all(len(times) == 1 and times[0] > 0 for times in result["wall_s"].values())
    assert result["ratio_to_import_torch"]["torch"] == 1.0
    assert set(result["settings"]["sources"]) == {"this", "baseline:"}
    assert result["hardware"]["torch"] and result["time"] and set(result["load_average_1min"]) == {"before", "after"}


def test_demo_benchmark_smoke(tmp_path):
    result = run_smoke("bench_demo.py", tmp_path)
    assert set(result["timings_s"]) == {"degradation", "survey", "compare"} and result["smoke"]
    assert result["wall_s"] > result["run_time_s"] > sum(result["timings_s"].values()) * 0.99
    assert result["headlines"] and result["hardware"]["torch"] and "[3/3] compare" in result["stdout"]


def test_record_output_keeps_what_a_command_printed_and_its_exit_status(tmp_path):
    script = str(BENCH / "record_output.py")
    subprocess.run([sys.executable, script, "--out", str(tmp_path / "ok.json"), "--", "report", str(tmp_path)],
                   check=True, capture_output=True)
    failed = json.loads((tmp_path / "ok.json").read_text())  # an empty folder: the command's own refusal
    assert failed["command"] == f"resnet-lab report {tmp_path}" and failed["exit_status"] == 2
    assert "not a run directory" in failed["stderr"] and failed["hardware"]["torch"] and failed["wall_s"] > 0


def test_train_digits_benchmark_smoke(tmp_path):
    result = run_smoke("bench_train_digits.py", tmp_path)
    assert result["settings"]["model"] == "resnet8" and len(result["test_curve"]) == 1
    assert 0 <= result["final_test_acc"] <= 1 and result["meets_target"] == (result["final_test_acc"] >= 0.97)
    assert result["wall_s"] > result["timings"]["train_s"] > 0
    assert re.fullmatch(r"[0-9a-f]{64}", result["metrics_sha256"]) and "done:" in result["stdout"]


def test_cifar10_layout_from_npz_is_read_by_the_cifar10_loader(tmp_path):
    """The GPU benchmark's data: the official extracted layout, written from an .npz copy."""
    import numpy as np

    sys.path.insert(0, str(BENCH))
    try:
        from cifar10_layout_from_npz import write_layout
    finally:
        sys.path.remove(str(BENCH))
    from resnet_lab.data import load_data

    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (23, 32, 32, 3), dtype=np.uint8), "y_train": np.arange(23) % 10,
              "x_test": rng.integers(0, 256, (7, 32, 32, 3), dtype=np.uint8), "y_test": np.arange(7) % 10}
    np.savez(tmp_path / "c.npz", **arrays)
    write_layout(tmp_path / "c.npz", tmp_path / "cache")

    ds = load_data("cifar10", str(tmp_path / "cache"))
    assert ds.classes[0] == "airplane" and len(ds.classes) == 10
    # the loader's CHW tensors hold the .npz's HWC pixels, image for image
    assert np.array_equal(ds.x_train.permute(0, 2, 3, 1).numpy(), arrays["x_train"])
    assert np.array_equal(ds.y_train.numpy(), arrays["y_train"])
    assert np.array_equal(ds.x_test.permute(0, 2, 3, 1).numpy(), arrays["x_test"])
    assert np.array_equal(ds.y_test.numpy(), arrays["y_test"])


def test_every_gpu_suite_command_parses(monkeypatch):
    """A misspelt flag in gpu_suite.sh would only show on a lent GPU, whose minutes are scarce:
    every command of its dry run must pass its script's own argument parser."""
    import argparse
    import os
    import shlex
    import subprocess

    from resnet_lab.cli.main import build_parser
    from resnet_lab.cli.train import config_from_args

    env = {**os.environ, "OUT": "/tmp/gpu-suite-dry-run", "DRY_RUN": "1", "PYTHON": "python", "PHASE": "abcde"}
    dry = subprocess.run(["bash", str(BENCH / "gpu_suite.sh")], env=env, capture_output=True, text=True, check=True)
    commands = [shlex.split(line.split(") ", 1)[1]) for line in dry.stdout.splitlines() if line.startswith("[dry run]")]
    assert len(commands) >= 8, dry.stdout

    class Parsed(Exception):
        pass

    parse = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        raise Parsed(parse(self, args, namespace))  # a bad flag exits with status 2 before this

    checked = 0
    for argv in commands:
        while argv[0] == "env" or "=" in argv[0]:  # env VAR=value ... python ...
            argv = argv[1:]
        if argv[0] != "python":
            continue  # the environment report (bash -c ...)
        if argv[1:3] == ["-m", "resnet_lab"]:
            config_from_args(build_parser().parse_args(argv[3:]))  # flags, then values
        else:
            script, args = argv[1], argv[2:]
            assert (BENCH.parent / script).is_file(), script
            with monkeypatch.context() as m:
                m.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
                m.setattr(sys, "argv", [script, *args])
                with pytest.raises(Parsed) as parsed:
                    runpy.run_path(str(BENCH.parent / script), run_name="__main__")
            if script.endswith("bench_fast_cifar.py"):  # each variant is `train` flags: check them too
                ns = parsed.value.args[0]
                for variant in ns.variants:
                    config_from_args(build_parser().parse_args(["train", "--recipe", "fast", "--model", "resnet20",
                                                                *shlex.split(variant), *ns.extra]))
        checked += 1
    assert checked == len(commands) - 1


def test_gpu_lent_calls_carry_the_data_in_two_parts_and_check_it(tmp_path):
    """The two lent-GPU calls on a small stand-in for CIFAR-10: call 1 keeps the first part, call 2
    joins both, checks the sha256 and only then starts phase c; a wrong checksum stops it."""
    import hashlib
    import lzma
    import os
    import shutil
    import subprocess
    import tarfile

    import numpy as np

    repo = tmp_path / "repo"
    (repo / "benchmarks").mkdir(parents=True)
    for script in ("gpu_lent_call.sh", "gpu_suite.sh"):
        shutil.copy(BENCH / script, repo / "benchmarks" / script)
    raw = tmp_path / "raw.npz"
    np.savez(raw, x_train=np.arange(3000, dtype=np.uint8).reshape(10, 10, 10, 3), y_train=np.arange(10))
    packed = lzma.compress(raw.read_bytes(), format=lzma.FORMAT_XZ,  # as the header's xz --delta=dist=3 recipe
                           filters=[{"id": lzma.FILTER_DELTA, "dist": 3}, {"id": lzma.FILTER_LZMA2, "preset": 6}])
    (repo / ".gpudata").mkdir()
    (repo / ".gpudata" / "p00").write_bytes(packed[: len(packed) // 2])
    sha = hashlib.sha256(raw.read_bytes()).hexdigest()
    data = tmp_path / "cifar"

    def call(n: int, checksum: str) -> tuple[str, set[str]]:
        out = tmp_path / f"out{n}-{checksum[:4]}"
        env = {**os.environ, "OUT": str(out), "CALL": str(n), "DRY_RUN": "1", "CIFAR_DIR": str(data),
               "CIFAR_SHA": checksum, "PYTHON": sys.executable}
        done = subprocess.run(["bash", "benchmarks/gpu_lent_call.sh"], cwd=repo, env=env, capture_output=True,
                              text=True, check=True)
        with tarfile.open(out / f"call{n}.tgz") as archive:  # everything comes back as one file
            names = {Path(name).name for name in archive.getnames()}
        return done.stdout, names

    printed, _ = call(1, sha)
    assert "(checkpointing," in printed and "(fast_cifar," not in printed  # phases a and b only
    shutil.rmtree(repo / ".gpudata")  # call 2 is a fresh checkout that carries only the second part
    (repo / ".gpudata").mkdir()
    (repo / ".gpudata" / "p01").write_bytes(packed[len(packed) // 2:])
    printed, names = call(2, sha)
    assert (data / "cifar10-full.npz").read_bytes() == raw.read_bytes()
    assert "(fast_cifar," in printed and "data_error.txt" not in names
    printed, names = call(2, "0" * 64)
    assert "(fast_cifar," not in printed and "data_error.txt" in names


def test_fixed_costs_benchmark_smoke(tmp_path):
    result = run_smoke("bench_fixed_costs.py", tmp_path)
    (run,) = result["runs"]
    assert run["wall_s"] > run["fixed_s"] > run["startup_s"] > 0 and len(result["import_torch_wall_s"]) == 1
    assert result["fixed_over_import_torch"] == result["median"]["fixed_s"] / result["import_torch_wall_s"][0]
    assert result["target_met"] == (result["fixed_over_import_torch"] <= 1.3)
    assert run["report_after_exit_s"] >= 0  # the background report was waited for, after the timed exit
    # Start-up counts torch's import, which the command now does after parsing: left out, it fell
    # into the unaccounted rest (exit), five times the size it should be.
    assert run["startup_s"] > run["unaccounted_s"], run


def test_sweep_concurrency_benchmark_smoke(tmp_path):
    """Real sweeps of 1 and 2 runs (resnet8, digits, CPU): steady-state images/s per count after the
    warm-up epochs, ratios to one job, the best count again with --cuda-graph (on a CPU the same eager
    step: only the plumbing is checked), and the count the engine's --jobs auto probe picks."""
    result = run_smoke("bench_sweep_concurrency.py", tmp_path, "--compare-graph", "--graph-reserve-s", "25")
    assert result["hardware"]["torch"] and result["time"] and result["what_is_timed"]
    rows = {r["jobs"]: r for r in result["rows"]}
    assert set(rows) == {1, 2} and all(r["measured"] for r in rows.values()), rows
    assert rows[1]["ratio_to_1_job"] == 1.0 and rows[2]["ratio_to_1_job"] > 0
    assert "--jobs 2" in rows[2]["command"] and rows[2]["sweep_exit_status"] == 143  # stopped by SIGTERM
    for run in rows[2]["runs"]:  # each run: its warm-up epoch left out, at least one epoch timed
        assert run["epochs"] >= 1 and run["images"] > 0 and run["images_per_s"] > 0
    assert abs(rows[2]["images_per_s"] - sum(r["images_per_s"] for r in rows[2]["runs"])) < 1e-6
    assert result["best"]["jobs"] in (1, 2)
    graphed = result["graphed_at_best"]
    assert graphed["measured"] and "--cuda-graph" in graphed["command"], graphed
    assert f"--jobs {result['best']['jobs']}" in graphed["command"] and graphed["ratio_to_eager"] > 0
    auto = result["jobs_auto"]
    assert auto["jobs"] in (1, 2) and auto["probe"]["jobs"] == auto["jobs"], auto
    assert result["elapsed_s"] < 105 + 30  # the budget, plus the last stop's wait


def _reproduce_repo(tmp_path: Path) -> Path:
    """A bare checkout with the two scripts the reproduction calls need besides the library."""
    import shutil

    repo = tmp_path / "repo"
    (repo / "benchmarks").mkdir(parents=True)
    for script in ("gpu_reproduce.sh", "pack_run_state.py", "bench_sweep_concurrency.py"):
        shutil.copy(BENCH / script, repo / "benchmarks" / script)
    (repo / ".gpudata").mkdir()
    return repo


def _call(repo: Path, out: Path, call: str, **env) -> str:
    import os
    import subprocess

    env = {**os.environ, "OUT": str(out), "CALL": call, "PYTHON": sys.executable, **env}
    done = subprocess.run(["bash", "benchmarks/gpu_reproduce.sh"], cwd=repo, env=env, capture_output=True,
                          text=True, check=True)
    part = f"-part{env['PART']}" if env.get("PART", "0") != "0" else ""
    assert [p.name for p in out.iterdir()] == [f"reproduce-call{call}{part}.tgz"], done.stdout  # one file back
    return done.stdout


def test_gpu_reproduce_calls_place_the_data_and_every_command_parses(tmp_path, monkeypatch):
    """Calls 1 and 2 on a stand-in for CIFAR-10 (DRY_RUN=1): the data joined and checked, then the
    concurrency benchmark first, `reproduce all` under `timeout -s TERM`, each command
    accepted by its real parser; a wrong checksum trains nothing; every call returns one archive."""
    import argparse
    import hashlib
    import lzma
    import shlex

    import numpy as np

    from resnet_lab.cli.main import build_parser

    repo = _reproduce_repo(tmp_path)
    raw = tmp_path / "raw.npz"
    np.savez(raw, x_train=np.arange(3000, dtype=np.uint8).reshape(10, 10, 10, 3), y_train=np.arange(10))
    packed = lzma.compress(raw.read_bytes(), format=lzma.FORMAT_XZ,
                           filters=[{"id": lzma.FILTER_DELTA, "dist": 3}, {"id": lzma.FILTER_LZMA2, "preset": 6}])
    (repo / ".gpudata" / "p00").write_bytes(packed[: len(packed) // 2])
    (repo / ".gpudata" / "p01").write_bytes(packed[len(packed) // 2:])
    sha = hashlib.sha256(raw.read_bytes()).hexdigest()
    env = {"DRY_RUN": "1", "CIFAR_DIR": str(tmp_path / "cifar"), "WORK": str(tmp_path / "work"), "CIFAR_SHA": sha}
    _call(repo, tmp_path / "out1", "1", **env)
    printed = _call(repo, tmp_path / "out2", "2", **env)
    assert (tmp_path / "cifar" / "cifar10-full.npz").read_bytes() == raw.read_bytes()
    lines = [line for line in printed.splitlines() if line.startswith("[dry run]")]
    assert [line.split()[2].rstrip(",") for line in lines] == ["(sweep_concurrency", "(reproduce"]
    commands = [shlex.split(line.split(") ", 1)[1]) for line in lines]
    bench, reproduce = commands
    assert reproduce[1:5] == ["-m", "resnet_lab", "reproduce", "all"]
    args = build_parser().parse_args(reproduce[3:])
    assert (args.depths, args.plain_depths, args.seeds, args.jobs) == ([20, 32, 44, 56], [20, 32, 44, 56], [0, 1], "4")
    assert args.data.startswith("npz:") and args.devices == ["cuda"] and not args.cuda_graph
    # A later call (CALL=more) keeps the first call's choices: the count and, if measured faster, CUDA graphs.
    (tmp_path / "work" / "graph.txt").write_text("--cuda-graph\n")
    (more,) = [line for line in _call(repo, tmp_path / "out5", "more", **env).splitlines()
               if line.startswith("[dry run]")]
    again = build_parser().parse_args(shlex.split(more.split(") ", 1)[1])[3:])
    assert again.cuda_graph and again.jobs == "4" and "--compare-graph" in " ".join(bench)
    # CALL=survey, on the data the two calls placed: the survey's cells as a sweep on the GPU
    (survey_line,) = [line for line in _call(repo, tmp_path / "out4", "survey", **env).splitlines()
                      if line.startswith("[dry run]")]
    survey = build_parser().parse_args(shlex.split(survey_line.split(") ", 1)[1])[3:])
    assert (survey.steps, survey.seeds, survey.jobs, survey.device) == (600, 3, "8", "cuda")
    # A later session's call 2 measures again only if no benchmark gave a best count (2026-11-29: none did),
    # and never changes graph.txt once written: the started runs keep their settings.
    for best, steps in (({"jobs": 8}, ["(reproduce"]), (None, ["(sweep_concurrency", "(reproduce"])):
        (tmp_path / "work" / "sweep_concurrency-cuda.json").write_text(json.dumps({"best": best}))
        dry = [line.split()[2].rstrip(",") for line in _call(repo, tmp_path / "out6", "2", **env).splitlines()
               if line.startswith("[dry run]")]
        assert dry == steps and (tmp_path / "work" / "graph.txt").read_text() == "--cuda-graph\n"

    class Parsed(Exception):
        pass

    parse = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        raise Parsed(parse(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    monkeypatch.setattr(sys, "argv", bench[1:])
    with pytest.raises(Parsed) as parsed:
        runpy.run_path(str(BENCH / "bench_sweep_concurrency.py"), run_name="__main__")
    assert parsed.value.args[0].device == "cuda" and parsed.value.args[0].budget_s == 300
    assert parsed.value.args[0].compare_graph
    monkeypatch.undo()
    printed = _call(repo, tmp_path / "out3", "2", **{**env, "CIFAR_SHA": "0" * 64})
    assert "[dry run]" not in printed and "does not match its sha256" in printed


def _fake_run_tree(work: Path) -> dict:
    """The reproduction's sweep as a session leaves it: `reproduce all`'s 16 runs, each with a last.pt of the
    measured size for its depth (random bytes: incompressible), a best.pt and small files."""
    import random

    sizes = {20: 2_222_815, 32: 3_815_000, 44: 5_407_000, 56: 6_999_127}  # measured: 20 and 56 (paper recipe)
    rng = random.Random(0)
    steps = {}
    runs = [("paper/runs", f"{kind}{d}-seed{s}", d) for kind in ("plain", "resnet") for d in sizes for s in (0, 1)]
    for folder, name, depth in runs:
        run = work / folder / name
        run.mkdir(parents=True)
        steps[f"{folder}/{name}"] = step = rng.randrange(0, 64_000)
        (run / "last.pt").write_bytes(rng.randbytes(sizes[depth]))
        (run / "best.pt").write_bytes(rng.randbytes(sizes[depth]))
        (run / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "step": step}) + "\n")
        (run / "sweep_run.json").write_text("{}")
    (work / "jobs.txt").write_text("4\n")
    (work / "graph.txt").write_text("--cuda-graph\n")
    return steps


def test_pack_keeps_each_part_under_the_limit_and_continues_next_session(tmp_path):
    """A fake run tree of the full reproduction (about 74 MB of last.pt, as much again of best.pt): each
    part stays under the limit, part 0 keeps every small file and the most advanced run's last.pt, the
    parts together hold every last.pt once; CALL=pack returns a further part, and CALL=state of the
    next session unpacks all parts carried, where the sweeps continue from."""
    import shutil
    import tarfile

    sys.path.insert(0, str(BENCH))
    from pack_run_state import pack

    steps = _fake_run_tree(tmp_path / "work")
    results = tmp_path / "results"
    (results / "logs").mkdir(parents=True)
    (results / "logs" / "degradation.stdout").write_text("log\n")
    kept = []
    manifest = pack(tmp_path / "work", results, tmp_path / "state0.tgz", 56)
    assert manifest["parts"] == 2  # 70 MiB of last.pt
    for part in range(manifest["parts"]):
        archive = tmp_path / f"state{part}.tgz"
        manifest = pack(tmp_path / "work", results, archive, 56, part)
        assert archive.stat().st_size <= 56 * 2**20 < 64 * 2**20
        kept += [n.removeprefix("state/").removesuffix("/last.pt") for n in manifest["checkpoints_kept"]]
        with tarfile.open(archive) as tar:
            names = set(tar.getnames())
        assert not any(n.endswith("best.pt") for n in names)
        if part == 0:
            assert max(steps, key=steps.get) in kept  # the most advanced run first
            assert "results/logs/degradation.stdout" in names and "state/jobs.txt" in names
            assert all(f"state/{run}/metrics.jsonl" in names for run in steps)
    assert sorted(kept) == sorted(steps)  # every last.pt in exactly one part

    repo = _reproduce_repo(tmp_path)
    _call(repo, tmp_path / "outpack", "pack", PART="1", WORK=str(tmp_path / "work"), CIFAR_DIR=str(tmp_path / "c"))
    for part, name in enumerate(("state.tgz", "state1.tgz")):
        shutil.copy(tmp_path / f"state{part}.tgz", repo / ".gpudata" / name)
    printed = _call(repo, tmp_path / "out", "state", WORK=str(tmp_path / "next"), CIFAR_DIR=str(tmp_path / "c"))
    restored = {str(p.parent.relative_to(tmp_path / "next")) for p in (tmp_path / "next").rglob("last.pt")}
    assert restored == set(steps) and (tmp_path / "next" / "jobs.txt").read_text() == "4\n", printed
    assert (tmp_path / "next" / "graph.txt").read_text() == "--cuda-graph\n"  # the runs' settings go on


def test_pack_leaves_out_a_finished_runs_weights_and_keeps_its_records(tmp_path):
    """A finished run (result.json) is done from its records alone (run_state.read_status), so its last.pt
    need not travel: the pack's room goes to the unfinished runs that resume from theirs."""
    import tarfile

    sys.path.insert(0, str(BENCH))
    from pack_run_state import pack

    for name, finished in (("resnet56-seed0", True), ("resnet20-seed0", False)):
        run = tmp_path / "work" / "paper" / "runs" / name
        run.mkdir(parents=True)
        (run / "last.pt").write_bytes(b"w" * 1000)
        (run / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "step": 64_000 if finished else 10}) + "\n")
        if finished:
            (run / "result.json").write_text("{}")
    manifest = pack(tmp_path / "work", None, tmp_path / "state.tgz", 56)
    assert manifest["checkpoints_kept"] == ["state/paper/runs/resnet20-seed0/last.pt"]
    assert {"file": "state/paper/runs/resnet56-seed0/last.pt", "bytes": 1000, "why": "the run finished"} \
        in manifest["left_out"]
    with tarfile.open(tmp_path / "state.tgz") as tar:
        assert {"state/paper/runs/resnet56-seed0/result.json", "state/paper/runs/resnet56-seed0/metrics.jsonl"} \
            <= set(tar.getnames())
