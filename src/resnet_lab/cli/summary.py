"""`resnet-lab summary MODEL`: stage-by-stage structure."""

from __future__ import annotations

import argparse

from ..models.choices import MAX_CLASSES, MAX_IN_CHANNELS, MIN_IMAGE_SIZE
from ..report.text_table import format_table
from .model_options import add_model_options, int_between, model_options

EXAMPLES = """examples:
  resnet-lab summary resnet56
  resnet-lab summary plain20 --norm none --activation sigmoid
  resnet-lab summary resnet50 --num-classes 10 --image-size 64
"""


def register(sub) -> None:
    p = sub.add_parser("summary", help="show a model's stages, output shapes and parameters",
                       description="Print the stage-by-stage structure of a model with output shapes and "
                                   "parameter counts.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="model name, e.g. resnet56")
    p.add_argument("--num-classes", type=int_between(1, MAX_CLASSES),
                   help="classifier size (default: 10 for CIFAR nets, 1000 for ImageNet)")
    p.add_argument("--in-channels", type=int_between(1, MAX_IN_CHANNELS), help="input channels (default 3)")
    p.add_argument("--image-size", type=int_between(MIN_IMAGE_SIZE, 65_536),
                   help=f"input height = width, {MIN_IMAGE_SIZE} to 65536 (default: the model's native size)")
    add_model_options(p, model_flag=False)
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from ..models import count_flops, count_params, count_weighted_layers, create_model, stage_summary

    options = model_options(args)
    if args.num_classes is not None:
        options["num_classes"] = args.num_classes
    if args.in_channels is not None:
        options["in_channels"] = args.in_channels
    with torch.device("meta"):
        model = create_model(args.model, **options)
    spec, cfg = model.spec, model.config
    size = spec.input_size if args.image_size is None else args.image_size
    rows = stage_summary(model, size, cfg["in_channels"])
    for row in rows:
        row["output"] = "x".join(map(str, row["output_shape"]))
    print(f"{spec.name}: {spec.family} family, {cfg['block']}, shortcut {cfg['shortcut']}, norm {cfg['norm']}, "
          f"activation {cfg['activation']}, init {cfg['init']}")
    print(f"input {cfg['in_channels']}x{size}x{size}\n")
    print(format_table(rows, [("name", "stage"), ("blocks", "blocks"), ("output", "output"), ("params", "params")]))
    print(f"\nweighted layers {count_weighted_layers(model)}, parameters {count_params(model):,}, "
          f"forward {count_flops(model, size, cfg['in_channels']) / 1e9:.3f} GFLOPs per image")
    return 0
