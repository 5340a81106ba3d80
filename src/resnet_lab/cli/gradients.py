"""`resnet-lab gradients`: N monitored training steps, the per-layer gradient table and a verdict."""

from __future__ import annotations

import argparse
import json
import math

from ..text import counted
from ..training.config import CHOICES
from .model_options import add_model_options, model_options
from .train import add_data_options

EXAMPLES = """examples:
  resnet-lab gradients --model resnet56 --steps 20
  resnet-lab gradients --model plain56 --activation sigmoid --norm none --plot flow.png
  resnet-lab gradients --model plain20 --norm none --lr 5 --clip-norm 1.0 --json
  resnet-lab gradients --model torchvision:mobilenet_v3_small --steps 5   # any torchvision classifier
  resnet-lab gradients --model torchvision:vgg11 --activation sigmoid --plot vgg11-sigmoid   # ReLUs swapped
  resnet-lab gradients --model torchvision:vgg11 --groups 1.features,1.classifier
"""


def register(sub) -> None:
    p = sub.add_parser("gradients", help="per-layer gradient norms and a vanishing/exploding verdict",
                       description="Train a model for a few steps with the gradient monitor attached; print the "
                                   "gradient norm of every layer group (stem, each block, head) and the verdict.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_options(p)
    add_data_options(p)
    p.add_argument("--steps", type=int, default=10, help="training steps to run (default 10)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--optimizer", choices=CHOICES["optimizer"], default="sgd")  # the trainer's, and the check's
    p.add_argument("--clip-norm", type=float, help="clip the global gradient norm")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="print verdict, reason, groups and global_grad_norm as JSON")
    p.add_argument("--plot", metavar="PATH", help="write the gradient-flow plot (PNG and SVG)")
    p.add_argument("--groups", default="auto",
                   help="layer groups: auto (default: ResNet blocks; other models opened to 8-64 groups in "
                        "execution order), parameter, module_type, a nesting depth (e.g. 2), module names "
                        "separated by commas, or REGEX=GROUP pairs over parameter names (e.g. 'attn=attention,"
                        "linear=ffn')")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from ..data import DeviceLoader, FolderDataset, load_data
    from ..diagnostics import gradient_table, run_gradient_check
    from ..errors import UserError, writing
    from ..models import create_model
    from ..runtime import pick_device

    for name in ("steps", "batch_size"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    for name in ("lr", "clip_norm"):
        value = getattr(args, name)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise UserError(f"--{name.replace('_', '-')} must be a positive number, got {value}")
    device = pick_device(args.device)
    ds = load_data(args.data or "digits", args.data_dir)
    if isinstance(ds, FolderDataset):
        raise UserError("the gradient check needs in-memory data (digits, cifar10, cifar100, npz:PATH)")
    torch.manual_seed(args.seed)
    name = args.model or "resnet20"
    if name.startswith("torchvision:"):
        options = model_options(args)
        activation = options.pop("activation", "relu")  # replaces its ReLUs; the other options are the zoo's
        if options:
            flags = ", ".join(f"--{k.replace('_', '-')}" for k in options)
            what = "is a resnet-lab model option" if len(options) == 1 else "are resnet-lab model options"
            raise UserError(f"{flags} {what}; drop {'it' if len(options) == 1 else 'them'} for a torchvision model "
                            "(--activation applies)")
        from ..models.foreign import torchvision_model

        model = torchvision_model(name.split(":", 1)[1], ds.num_classes, ds.in_channels, ds.image_size,
                                  activation).to(device)
    else:
        model = create_model(name, num_classes=ds.num_classes, in_channels=ds.in_channels,
                             **model_options(args)).to(device)
    loader = DeviceLoader(ds.x_train, ds.y_train, min(args.batch_size, len(ds.x_train)), mean=ds.mean, std=ds.std,
                          device=device, train=True, augment=True, hflip=ds.hflip, seed=args.seed)
    result = run_gradient_check(model, loader, steps=args.steps, lr=args.lr, clip_norm=args.clip_norm,
                                optimizer=args.optimizer, groups=parse_groups(args.groups))
    if args.plot:
        from ..diagnostics import plot_gradient_flow

        with writing(args.plot, "--plot"):
            label = name + "".join(f", {k}={v}" for k, v in model_options(args).items())
            plots = plot_gradient_flow({label: result["groups"]}, args.plot, title=f"Gradient flow: {label}")
        result["plots"] = [str(p) for p in plots]
    if args.json:
        keys = ("verdict", "reason", "verdict_step", "last_verdict", "global_grad_norm", "steps_run", "groups", "plots")
        print(json.dumps({k: result[k] for k in keys if k in result}, indent=2, default=str))
        return 0
    print(f"{name} on {ds.description()}, {counted(result['steps_run'], 'step')} at lr {args.lr:g}"
          + (f", clip-norm {args.clip_norm:g}" if args.clip_norm else ""))
    print(f"{len(result['groups'])} layer groups, in {result['group_order']} order")
    print(gradient_table(result["groups"]))
    # The table and this line are means over the steps; the verdict names the step it judged.
    print(f"\nglobal gradient norm {result['global_grad_norm']:.3g} (mean over the steps, as the table)")
    print(f"verdict (step {result['verdict_step']}): {result['verdict']}: {result['reason']}")
    for path in result.get("plots", []):
        print(f"wrote {path}")
    return 0


def parse_groups(text: str):
    """--groups: a named grouping, a nesting depth, module names separated by commas, or
    REGEX=GROUP pairs separated by commas (parameter names matched in order)."""
    from ..diagnostics.groups import GROUPINGS

    if text in GROUPINGS:
        return text
    if text.strip().isdigit():
        return int(text)
    items = [n.strip() for n in text.split(",") if n.strip()]
    if items and all("=" in n for n in items):
        return dict(n.rsplit("=", 1) for n in items)
    return items

