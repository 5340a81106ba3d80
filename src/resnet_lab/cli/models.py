"""`resnet-lab models`: the zoo as a table or JSON."""

from __future__ import annotations

import argparse
import json

from ..models.choices import FAMILIES
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
    p.add_argument("--family", choices=FAMILIES, help="only this family")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..models.registry import MAX_DEPTH
    from ..models.stats import zoo_table

    rows = zoo_table(args.family)
    if args.json:
        print(json.dumps([{k: r[k] for k in ("name", "family", "layers", "params", "gflops")} for r in rows], indent=2))
    else:
        print(format_table(rows, [("name", "name"), ("family", "family"), ("layers", "layers"),
                                  ("params", "params"), ("gflops", "GFLOPs"), ("input", "input")]))
        print(f"\nAny other depth up to {MAX_DEPTH:,} layers works too: resnet8, plain200 (CIFAR, 6n+2), "
              "preact_resnet290 (9n+2), ...")
    return 0
