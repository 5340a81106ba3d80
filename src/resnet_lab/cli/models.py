"""`resnet-lab models`: the zoo as a table or JSON."""

from __future__ import annotations

import argparse
import json

from ..report.text_table import format_table

EXAMPLES = """examples:
  resnet-lab models
  resnet-lab models --json
  resnet-lab models --family cifar
"""


def register(sub) -> None:
    p = sub.add_parser("models", help="list the model zoo", description="List the named models: family, "
                       "weighted layers, parameters and forward GFLOPs (2 per multiply-add) at the native input size.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.add_argument("--family", choices=("imagenet", "cifar", "preact"), help="only this family")
    p.set_defaults(func=run)


def model_rows(family: str | None = None) -> list[dict]:
    import torch

    from ..models import count_flops, count_params, count_weighted_layers, create_model, list_models

    rows = []
    for name in list_models():
        with torch.device("meta"):  # no memory, no init cost: only shapes are needed
            model = create_model(name)
        spec = model.spec
        if family and spec.family != family:
            continue
        rows.append({"name": name, "family": spec.family, "layers": count_weighted_layers(model),
                     "params": count_params(model), "gflops": round(count_flops(model, spec.input_size) / 1e9, 3),
                     "input": f"{spec.input_size}x{spec.input_size}"})
    return rows


def run(args) -> int:
    rows = model_rows(args.family)
    if args.json:
        print(json.dumps([{k: r[k] for k in ("name", "family", "layers", "params", "gflops")} for r in rows], indent=2))
    else:
        print(format_table(rows, [("name", "name"), ("family", "family"), ("layers", "layers"),
                                  ("params", "params"), ("gflops", "GFLOPs"), ("input", "input")]))
        print("\nAny other depth up to 10,000 layers works too: resnet8, plain200 (CIFAR, 6n+2), "
              "preact_resnet290 (9n+2), ...")
    return 0
