"""How a model's parameters are split into *layer groups*, each with a depth index.

A gradient report is only readable if it has one row per meaningful unit of depth, so
the default (``"block"``) follows the torchvision ResNet layout: the stem (everything
registered before the first ``layerN``), one group per residual block (``layer2.3``), and
the head (everything after the last stage). Any other ``nn.Module`` falls back to its
top-level children in registration order, which is the natural depth order of a
hand-written ``nn.Sequential`` or a small custom net.

``depth_index`` counts groups from the input (0) to the output. Registration order is
used as a proxy for execution order; for the zoo, torchvision and ``nn.Sequential``
models the two agree at group level.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from torch import nn

from ..errors import UserError

GROUPINGS = ("block", "parameter", "module_type")

_STAGE = re.compile(r"^layer\d+$")


@dataclass(frozen=True)
class LayerGroup:
    """One row of the gradient report.

    Attributes:
        name: ``"stem"``, ``"layer2.3"``, ``"head"``, a child's name, a parameter name or a
            module type, depending on the grouping.
        depth_index: 0 for the group closest to the input.
        param_names: names (as in ``model.named_parameters()``) of its trainable parameters.
        module_name: the single module whose forward output represents this group
            (used for activation statistics), or None when the group spans several modules
            or is not a module at all.
        input_of: for the stem, the module whose *input* is the stem's output (the first
            block); None otherwise.
    """

    name: str
    depth_index: int
    param_names: tuple[str, ...]
    module_name: str | None = None
    input_of: str | None = None


def _trainable(module: nn.Module, prefix: str) -> list[str]:
    return [f"{prefix}{n}" for n, p in module.named_parameters() if p.requires_grad]


def _block_groups(model: nn.Module) -> list[tuple[str, list[str], str | None, str | None]]:
    """(name, param names, module name, input_of) per group, in depth order."""
    children = list(model.named_children())
    stage_positions = [i for i, (n, m) in enumerate(children) if _STAGE.match(n)]
    out: list[tuple[str, list[str], str | None, str | None]] = []

    if not stage_positions:  # any other model: its top-level children are its layers
        for name, child in children:
            params = _trainable(child, f"{name}.")
            if params:
                out.append((name, params, name, None))
    else:
        first, last = stage_positions[0], stage_positions[-1]
        stem = [p for n, m in children[:first] for p in _trainable(m, f"{n}.")]
        head = [p for n, m in children[last + 1:] for p in _trainable(m, f"{n}.")]
        first_block = None
        body: list[tuple[str, list[str], str | None, str | None]] = []
        for name, child in children[first:last + 1]:
            if _STAGE.match(name) and isinstance(child, (nn.Sequential, nn.ModuleList)):
                members = [(f"{name}.{i}", block) for i, block in child.named_children()]
            else:  # a stage that is a single module, or a module between two stages
                members = [(name, child)]
            for full, module in members:
                first_block = first_block or full
                params = _trainable(module, f"{full}.")
                if params:
                    body.append((full, params, full, None))
        if stem:
            out.append(("stem", stem, None, first_block))
        out.extend(body)
        if head:
            out.append(("head", head, None, None))

    # Parameters owned by the root module itself (rare) come last, so none is left out.
    own = [n for n, p in model.named_parameters(recurse=False) if p.requires_grad]
    if own:
        out.append(("(root)", own, None, None))
    return out


def build_groups(model: nn.Module, grouping: str = "block") -> list[LayerGroup]:
    """Split ``model``'s trainable parameters into layer groups.

    Args:
        model: any ``nn.Module``.
        grouping: ``"block"`` (stem / each residual block / head, or top-level children for
            other models), ``"parameter"`` (one group per parameter, in registration order)
            or ``"module_type"`` (one group per module class, e.g. ``Conv2d``; the depth index
            is the order of first appearance and carries no depth meaning).

    Every trainable parameter belongs to exactly one group.
    """
    if grouping not in GROUPINGS:
        raise UserError(f"groups={grouping!r} is not valid; choose one of: {', '.join(GROUPINGS)}")
    if not any(p.requires_grad for p in model.parameters()):
        raise UserError("the model has no trainable parameters: nothing to monitor "
                        "(did you freeze every layer with requires_grad=False?)")

    if grouping == "block":
        raw = _block_groups(model)
    elif grouping == "parameter":
        raw = [(n, [n], None, None) for n, p in model.named_parameters() if p.requires_grad]
    else:
        by_type: dict[str, list[str]] = {}
        seen: set[int] = set()  # a tied parameter counts once, like named_parameters()
        for mod_name, module in model.named_modules():
            prefix = f"{mod_name}." if mod_name else ""
            for n, p in module.named_parameters(recurse=False):
                if p.requires_grad and id(p) not in seen:
                    seen.add(id(p))
                    by_type.setdefault(type(module).__name__, []).append(prefix + n)
        raw = [(t, names, None, None) for t, names in by_type.items()]

    return [LayerGroup(name, i, tuple(params), module, input_of)
            for i, (name, params, module, input_of) in enumerate(raw)]
