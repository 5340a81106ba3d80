"""`compare_models`, its verdict, chart and CLI, and the benchmark against torchvision.

Measurements run on tiny settings (CIFAR nets at batch 2, one round): the numbers must be real
and positive, not fast. The verdict's logic is tested on fixed numbers, since timings are noisy.
"""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest
import torch

from resnet_lab.cli.main import main
from resnet_lab.experiments import compare_models, reference_top1
from resnet_lab.measure import saved_tensor_bytes
from resnet_lab.experiments.compare import reference_cifar10, verdict
from resnet_lab.experiments.compare.plot import plot_comparison
from resnet_lab.experiments.compare.reference import _same_architecture_as_default
from resnet_lab.models import create_model

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
TINY = dict(device="cpu", batch_size=2, warmup=1, repeats=1, log=None)
ROW_KEYS = {"name", "family", "params", "gflops", "layers", "input_size", "batch_size", "peak_train_memory_mib",
            "memory_method", "train_images_per_s", "infer_images_per_s", "latency_ms_batch1", "reference_top1",
            "paper_cifar10"}


@pytest.fixture(scope="module")
def cifar_pair() -> dict:
    return compare_models(["resnet20", "resnet32"], **TINY)


def test_compare_measures_real_numbers(cifar_pair):
    rows = {r["name"]: r for r in cifar_pair["models"]}
    assert list(rows) == ["resnet20", "resnet32"]
    for r in rows.values():
        assert ROW_KEYS <= set(r)
        for key in ("params", "gflops", "layers", "peak_train_memory_mib", "train_images_per_s",
                    "infer_images_per_s", "latency_ms_batch1"):
            assert r[key] > 0, key
        assert r["input_size"] == 32 and r["batch_size"] == 2 and r["reference_top1"] is None
        assert r["memory_method"] == "saved_tensors_estimate"
    deep, shallow = rows["resnet32"], rows["resnet20"]
    assert deep["params"] > shallow["params"] and deep["gflops"] > shallow["gflops"]
    assert (deep["layers"], shallow["layers"]) == (32, 20)
    assert deep["peak_train_memory_mib"] > shallow["peak_train_memory_mib"]
    assert cifar_pair["hardware"]["torch"] and cifar_pair["settings"]["repeats"] == 1
    assert (shallow["paper_cifar10"], deep["paper_cifar10"]) == (91.25, 92.49)  # He et al. 2015, Table 6
    json.dumps(cifar_pair)  # JSON-ready as returned


def test_verdict_names_both_models(cifar_pair):
    text = " ".join(cifar_pair["verdict"])
    assert "resnet20" in text and "resnet32" in text and "faster" in text
    assert "Published CIFAR-10 test accuracy" in text and "No published accuracy" not in text


def test_reference_accuracy_comes_from_torchvision_metadata():
    assert reference_top1("resnet101") == {"IMAGENET1K_V1": 77.374, "IMAGENET1K_V2": 81.886}
    assert reference_top1("resnet152") == {"IMAGENET1K_V1": 78.312, "IMAGENET1K_V2": 82.284}
    assert reference_top1("resnet56") is None and reference_top1("plain18") is None
    assert reference_cifar10("resnet110") == 93.57 and reference_cifar10("preact_resnet1001") == 95.08
    assert reference_cifar10("plain56") is None and reference_cifar10("resnet50") is None
    # Another architecture under the same name is not torchvision's network: no reference then.
    assert _same_architecture_as_default("resnet101", {"checkpointing": True, "init": "xavier"})
    assert not _same_architecture_as_default("resnet101", {"norm": "group"})


def test_imagenet_pair_at_small_size_gets_reference_accuracy():
    result = compare_models(["resnet18", "resnet34"], image_size=32, **{**TINY, "warmup": 0})
    r18, r34 = result["models"]
    assert r18["reference_top1"]["IMAGENET1K_V1"] == pytest.approx(69.758)
    assert r34["input_size"] == 32 and r34["native_size"] == 224
    assert r34["gflops_native"] > r34["gflops"]  # FLOPs at 224 for accuracy-per-GFLOP, at 32 as measured
    assert any("not the native" in n for n in result["settings"]["notes"])
    assert any("top-1" in v for v in result["verdict"])


def test_an_explicit_image_size_is_not_called_quick_modes_and_quick_modes_is():
    """--quick --image-size 64 on CIFAR nets once noted 'timings at 64x64 input ... (quick mode)': quick
    mode shrinks only ImageNet nets, and an explicit size is the user's."""
    given = compare_models(["resnet8"], image_size=16, quick=True, **{**TINY, "warmup": 0, "repeats": 1})
    note = next(n for n in given["settings"]["notes"] if "not the native" in n)
    assert note == "timings at 16x16 input, not the native 32x32"
    shrunk = compare_models(["resnet18"], quick=True, **{**TINY, "warmup": 0, "repeats": 1})
    assert "timings at 64x64 input, not the native 224x224 (quick mode)" in shrunk["settings"]["notes"]


def _row(name, train, infer, latency, mem, params, gflops, ref):
    return {"name": name, "family": "imagenet", "params": params, "gflops": gflops, "gflops_native": gflops,
            "layers": 0, "input_size": 224, "native_size": 224, "batch_size": 8, "peak_train_memory_mib": mem,
            "memory_method": "cuda_max_allocated", "train_images_per_s": train, "infer_images_per_s": infer,
            "latency_ms_batch1": latency, "reference_top1": ref}


SETTINGS = {"batch_size": 8, "memory_method": "cuda_max_allocated", "notes": [], "input_sizes": [224],
            "precision": "fp32", "device": "cuda"}
R101 = _row("resnet101", 300.0, 900.0, 6.0, 9000.0, 44_549_160, 15.6,
            {"IMAGENET1K_V1": 77.374, "IMAGENET1K_V2": 81.886})
R152 = _row("resnet152", 200.0, 600.0, 9.0, 12500.0, 60_192_808, 23.0,
            {"IMAGENET1K_V1": 78.312, "IMAGENET1K_V2": 82.284})


def test_verdict_recommends_per_budget_with_reasons():
    text = "\n".join(verdict([R101, R152], SETTINGS))
    assert "resnet101 trains 1.50x faster than resnet152" in text
    assert "+0.40 points for +3.0 ms" in text and "points per extra GFLOP" in text
    assert "If you can afford 6.0 ms but less than 9.0 ms per image at batch 1 on this device, choose resnet101" in text
    assert "If you can afford 9.0 ms or more per image at batch 1 on this device, choose resnet152" in text
    assert "With less than 12500 MiB for training at batch 8, only resnet101 fits" in text


def test_verdict_calls_out_a_dominated_model_and_stays_quiet_for_one():
    slow_but_worse = {**R152, "reference_top1": {"IMAGENET1K_V1": 70.0}}
    text = "\n".join(verdict([R101, slow_but_worse], SETTINGS))
    assert "resnet152 is not worth it" in text and "choose resnet101" in text
    assert verdict([R101], SETTINGS) == []


def test_the_memory_ladder_never_says_less_than_between_equal_figures():
    """resnet20 and plain20 need the same training memory (option A shortcuts hold nothing): the ladder
    printed 'resnet20 4 < plain20 4'; models whose figures are equal as shown are joined by '='."""
    rows = [_row("resnet8", 90.0, 480.0, 3.2, 1.4, 75_290, 0.006, None),
            _row("resnet20", 26.0, 64.0, 17.0, 4.5, 269_722, 0.02, None),
            _row("plain20", 17.0, 37.0, 30.0, 4.5, 269_722, 0.02, None),
            _row("resnet18", 7.0, 41.0, 46.0, 134.4, 11_689_512, 0.03, None)]
    (ladder,) = [v for v in verdict(rows, SETTINGS) if v.startswith("Training memory at batch")]
    assert "resnet8 1 < resnet20 4 = plain20 4 < resnet18 134;" in ladder


def _cifar_row(name, train, paper):
    return {**_row(name, train, 3 * train, 1000 / train, 50.0, 1, 0.1, None), "family": "cifar",
            "paper_cifar10": paper}


def test_verdict_weighs_the_papers_cifar10_accuracy_against_measured_training_time():
    rows = [_cifar_row("resnet20", 900.0, 91.25), _cifar_row("resnet56", 300.0, 93.03),
            _cifar_row("resnet1202", 10.0, 92.07), _cifar_row("plain20", 950.0, None)]
    text = "\n".join(verdict(rows, SETTINGS))
    assert "fastest to train here first: resnet20 91.25%, resnet56 93.03%, resnet1202 92.07%." in text
    assert "resnet56 buys +1.78 points of published CIFAR-10 accuracy over resnet20 for 3.00x its training time" in text
    # measured against the best faster model, not the fastest one
    assert "resnet1202 is not worth it on CIFAR-10: resnet56 trains 30.00x faster here" in text
    assert "No published accuracy for plain20" in text and "left out of the accuracy sentences" in text


def test_plot_writes_png_and_svg(tmp_path):
    result = {"models": [R101, R152, _row("resnet56", 900.0, 3000.0, 2.0, 300.0, 853_018, 0.25, None)],
              "settings": SETTINGS, "hardware": {"gpu": "test GPU"}}
    paths = plot_comparison(result, tmp_path / "chart.png")
    assert [p.suffix for p in paths] == [".png", ".svg"] and all(p.stat().st_size > 1000 for p in paths)
    # No model with a published accuracy: GFLOPs on y instead.
    result["models"] = result["models"][2:]
    assert all(p.stat().st_size > 1000 for p in plot_comparison(result, tmp_path / "flops.png"))
    # CIFAR nets only: the papers' CIFAR-10 accuracy on y.
    result["models"] = [_cifar_row("resnet20", 900.0, 91.25), _cifar_row("resnet56", 300.0, 93.03)]
    svg = plot_comparison(result, tmp_path / "cifar.png")[1].read_text()
    assert "CIFAR-10 test accuracy" in svg


def test_cli_json_and_out(tmp_path, capsys):
    args = ["compare", "resnet20", "resnet32", "--device", "cpu", "--batch-size", "2", "--repeats", "1",
            "--warmup", "0"]
    assert main(args + ["--json", "--out", str(tmp_path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in printed["models"]] == ["resnet20", "resnet32"] and printed["verdict"]
    assert json.loads((tmp_path / "compare.json").read_text())["settings"]["batch_size"] == 2
    assert (tmp_path / "compare.png").stat().st_size > 1000 and (tmp_path / "compare.svg").stat().st_size > 1000


def test_cli_table_for_one_model(capsys):
    assert main(["compare", "resnet20", "--device", "cpu", "--batch-size", "2", "--repeats", "1",
                 "--warmup", "0"]) == 0
    out = capsys.readouterr().out
    assert "resnet20" in out and "train img/s" in out and "verdict" not in out


def test_cli_bad_model_exits_2(capsys):
    assert main(["compare", "resnet20", "resnet21", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "resnet21" in err and "6n+2" in err


@pytest.mark.parametrize("image_size", [100_000, 32.5, "32", 4, True])
def test_an_image_size_that_is_not_a_side_of_8_to_1024_pixels_is_one_line(image_size):
    """--image-size 100000 (a typo) was a torch allocation traceback (480 GB of inputs); 32.5 and "32" were
    TypeErrors from inside torch."""
    from resnet_lab.errors import UserError

    with pytest.raises(UserError, match=rf"^image size must be an integer from 8 to 1024, got {image_size!r}$"):
        compare_models(["resnet8"], image_size=image_size, **TINY)


@pytest.mark.parametrize("options, message", [
    ({"batch_size": 10**20}, r"^batch size must be at most 2,147,483,647, got 100,000,000,000,000,000,000$"),
    ({"num_classes": 10**20}, r"^num_classes must be at most 10,000,000, got 100,000,000,000,000,000,000$"),
    ({"batch_size": 2**31 - 1, "image_size": 8},
     r"^out of memory on cpu at batch 2,147,483,647 and 8 px; lower --batch-size or --image-size$"),
])
def test_a_batch_or_class_count_past_what_fits_is_one_line(options, message):
    """A typo's 10**20 overflowed torch's shape arithmetic, and a batch that does not fit was the allocator's
    traceback (a helper's walk of compare, 2026-11-29)."""
    from resnet_lab.errors import UserError

    with pytest.raises(UserError, match=message):
        compare_models(["resnet8"], **{**TINY, **options})


def test_cli_image_size_typo_exits_2(capsys):
    assert main(["compare", "resnet8", "--device", "cpu", "--image-size", "100000"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "image size must be an integer from 8 to 1024, got 100000" in err


def test_saved_tensor_bytes_counts_activations():
    model = create_model("resnet20")
    x = torch.randn(2, 3, 32, 32)
    everything = saved_tensor_bytes(model, x)
    activations = saved_tensor_bytes(model, x, skip_parameters=True)
    assert 0 < activations < everything


def test_bench_vs_torchvision_smoke(tmp_path):
    out = tmp_path / "vs.json"
    argv = sys.argv
    sys.argv = ["bench_vs_torchvision.py", "--smoke", "--out", str(out)]
    try:
        runpy.run_path(str(BENCH / "bench_vs_torchvision.py"), run_name="__main__")
    finally:
        sys.argv = argv
    result = json.loads(out.read_text())
    assert {"hardware", "versions", "settings", "rows", "ratio"} <= set(result)
    row = result["rows"][0]
    assert row["model"] == "resnet18" and row["same_outputs"] is True
    assert row["train_ratio"] > 0 and row["infer_ratio"] > 0 and result["ratio"]["train_min"] > 0


def test_a_numpy_integer_batch_size_is_taken_and_the_result_stays_json_ready():
    import numpy as np

    result = compare_models(["resnet8"], device="cpu", batch_size=np.int64(2), image_size=16, warmup=np.int64(0),
                            repeats=np.int64(1), log=None)
    json.dumps(result)
    assert result["models"][0]["batch_size"] == 2


def test_one_model_name_is_one_model_not_its_letters():
    result = compare_models("resnet8", device="cpu", batch_size=2, image_size=16, warmup=0, repeats=1, log=None)
    assert [row["name"] for row in result["models"]] == ["resnet8"]


def test_compare_does_not_reseed_the_callers_random_numbers():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    compare_models(["resnet8"], device="cpu", batch_size=2, image_size=16, warmup=0, repeats=1, log=None)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("names", [["resnet8", "Resnet8"], ["resnet8", " resnet8 "], "RESNET8"])
def test_a_model_is_named_as_the_zoo_spells_it_and_measured_once(names):
    """Resnet8 beside resnet8 was measured twice, and the verdict compared the model with itself."""
    from resnet_lab.errors import UserError

    if isinstance(names, str):
        result = compare_models(names, device="cpu", batch_size=2, image_size=16, warmup=0, repeats=1, log=None)
        assert [row["name"] for row in result["models"]] == ["resnet8"]
        return
    repeated = rf"^each model once, please: {' '.join(names)} \(that is resnet8 resnet8\); drop the repeats$"
    with pytest.raises(UserError, match=repeated):
        compare_models(names, **TINY)


@pytest.mark.parametrize("kwargs, message", [
    ({"models": None}, r"^models is a list of model names, e.g. \['resnet101', 'resnet152'\], got None$"),
    ({"models": 5}, r"^models is a list of model names, e.g. \['resnet101', 'resnet152'\], got 5$"),
    ({"model_options": 5}, r"^model_options is a dict of create_model's options \(e.g. \{'norm': 'none'\}\), got 5$"),
    ({"channels_last": "no"}, r"^channels_last is True or False, got 'no'$"),  # was taken as True
    ({"quick": None}, r"^quick is True or False, got None$"),
    ({"log": 5}, r"^log is a function taking one line \(print\) or None for silence, got 5$"),
])
def test_an_argument_of_the_wrong_kind_is_one_line(kwargs, message):
    """These were TypeErrors from inside compare_models, or (channels_last="no") taken as true."""
    from resnet_lab.errors import UserError

    with pytest.raises(UserError, match=message):
        compare_models(**{"models": ["resnet8"], **TINY, **kwargs})
