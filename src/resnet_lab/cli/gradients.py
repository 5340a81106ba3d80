"""`resnet-lab gradients`: N monitored training steps, the per-layer gradient table and a verdict."""

from __future__ import annotations

import argparse
import json

from ..diagnostics.choices import OPTIMIZERS
from ..text import counted
from .arguments import add_data_options
from .model_options import add_model_options, model_options

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
    add_data_options(p, in_memory=True)  # the gradient check refuses image folders
    p.add_argument("--steps", type=int, default=10, help="training steps to run (default 10)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd")
    p.add_argument("--clip-norm", type=float, help="clip the global gradient norm")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="print verdict, reason, groups and global_grad_norm as JSON")
    p.add_argument("--plot", metavar="PATH",
                   help="write the gradient-flow plot: PATH.png, PATH.svg or PATH.pdf as named, PNG and SVG for a PATH "
                        "without suffix")
    p.add_argument("--groups", default="auto",
                   help="layer groups: auto (default: ResNet blocks; other models opened to 8-64 groups in "
                        "execution order), parameter, module_type, a nesting depth (e.g. 2), module names "
                        "separated by commas, or REGEX=GROUP pairs over parameter names (e.g. 'attn=attention,"
                        "linear=ffn')")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..diagnostics import check_model, gradient_table, parse_grouping
    from ..errors import writing
    from ..plotting import check_figure_path

    name = args.model or "resnet20"
    if args.plot is not None:
        check_figure_path(args.plot)
    result = check_model(name, data=args.data or "digits", data_dir=args.data_dir, steps=args.steps,
                         batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer, clip_norm=args.clip_norm,
                         seed=args.seed, device=args.device, groups=parse_grouping(args.groups),
                         **model_options(args))
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
    print(f"{name} on {result['data']}, {counted(result['steps_run'], 'step')} at lr {args.lr:g}"
          + (f", clip-norm {args.clip_norm:g}" if args.clip_norm else ""))
    print(f"{len(result['groups'])} layer groups, in {result['group_order']} order")
    print(gradient_table(result["groups"]))
    # The table and this line are means over the steps; the verdict names the step it judged.
    print(f"\nglobal gradient norm {result['global_grad_norm']:.3g} (mean over the steps, as the table)")
    print(f"verdict (step {result['verdict_step']}): {result['verdict']}: {result['reason']}")
    for path in result.get("plots", []):
        print(f"wrote {path}")
    return 0
