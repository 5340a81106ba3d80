"""How a model's parameters are split into *layer groups*, each with a depth index.

A gradient report is only readable if it has one row per meaningful unit of depth, so
the default (``"block"``, alias ``"auto"``) follows the torchvision ResNet layout when the
model has one: the stem (everything registered before the first ``layerN``), one group per
residual block (``layer2.3``), and the head (everything after the last stage). Any other
``nn.Module`` is opened level by level through its containers (``Sequential``,
``ModuleList``, ``ModuleDict``, any module with children) until the groups number at least
``MIN_GROUPS`` (8) without passing ``MAX_GROUPS`` (64), or nothing is left to open: a
MobileNet gets its inverted-residual blocks, a transformer its encoder layers.

``depth_index`` counts groups from the input (0) to the output over the whole network, frozen
groups counted: a group keeps its index when layers before it are frozen or unfrozen, and the
groups of a fine-tuned head do not pretend to start at the input. Groups are built in
registration order; ``GradientMonitor`` then re-orders the groups of opened models by the
order their modules first run in the first training forward pass (``ExecutionOrder``), since
registration order is not always the order of execution.

Users may also give a nesting depth (an integer), a list of module names, or a mapping from
regular expressions over parameter names to group names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Mapping, Sequence

from torch import nn

from ..errors import UserError

GROUPINGS = ("block", "auto", "parameter", "module_type")
MIN_GROUPS, MAX_GROUPS = 8, 64
OTHER = "(other)"  # parameters that a user-given list or mapping does not name


def parse_grouping(text: str):
    """A grouping as written on a command line (``--groups``): a named grouping, a nesting depth,
    module names separated by commas, or REGEX=GROUP pairs separated by commas (parameter names
    matched in order)."""
    if text in GROUPINGS:
        return text
    if text.strip().isdigit():
        return int(text)
    items = [n.strip() for n in text.split(",") if n.strip()]
    if items and all("=" in n for n in items):
        return dict(n.rsplit("=", 1) for n in items)
    return items

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
        runs_in: the module whose first call places this group in execution order (None:
            keep its place).
    """

    name: str
    depth_index: int
    param_names: tuple[str, ...]
    module_name: str | None = None
    input_of: str | None = None
    runs_in: str | None = None


def _params(module: nn.Module, prefix: str) -> list[str]:
    # Frozen ones too: the layout is the network's, and ``build_groups`` keeps the trainable part of it.
    return [f"{prefix}{n}" for n, _ in module.named_parameters()]


def _block_groups(model: nn.Module) -> list[tuple[str, list[str], str | None, str | None]]:
    """(name, param names, module name, input_of) per group, in depth order."""
    children = list(model.named_children())
    stage_positions = [i for i, (n, m) in enumerate(children) if _STAGE.match(n)]
    out: list[tuple[str, list[str], str | None, str | None]] = []

    if not stage_positions:  # any other model: its top-level children are its layers
        for name, child in children:
            params = _params(child, f"{name}.")
            if params:
                out.append((name, params, name, None))
    else:
        first, last = stage_positions[0], stage_positions[-1]
        stem = [p for n, m in children[:first] for p in _params(m, f"{n}.")]
        head = [p for n, m in children[last + 1:] for p in _params(m, f"{n}.")]
        first_block = None
        body: list[tuple[str, list[str], str | None, str | None]] = []
        for name, child in children[first:last + 1]:
            if _STAGE.match(name) and isinstance(child, (nn.Sequential, nn.ModuleList)):
                members = [(f"{name}.{i}", block) for i, block in child.named_children()]
            else:  # a stage that is a single module, or a module between two stages
                members = [(name, child)]
            for full, module in members:
                first_block = first_block or full
                params = _params(module, f"{full}.")
                if params:
                    body.append((full, params, full, None))
        if stem:
            out.append(("stem", stem, None, first_block))
        out.extend(body)
        if head:
            out.append(("head", head, None, None))

    # Parameters owned by the root module itself (rare) come last, so none is left out.
    own = [n for n, _ in model.named_parameters(recurse=False)]
    if own:
        out.append(("(root)", own, None, None))
    return out


def _units_at(model: nn.Module, depth: int) -> list[tuple[str, list[str], str | None, str | None, str]]:
    """Groups at nesting ``depth``: modules opened down to it through any module with children that
    hold parameters; a leaf met earlier stays whole, and a module's own parameters (e.g. a ViT's class
    token) form a group of their own."""
    units = []

    def visit(name: str, module: nn.Module, level: int) -> None:
        prefix = f"{name}." if name else ""
        children = [(f"{prefix}{n}", c) for n, c in module.named_children() if _params(c, "")]
        if level >= depth or not children:
            units.append((name or "(root)", _params(module, prefix), name or None, None, name))
            return
        own = [f"{prefix}{n}" for n, _ in module.named_parameters(recurse=False)]
        if own:
            units.append((f"{name or '(root)'} (own)", own, None, None, name))
        for child_name, child in children:
            visit(child_name, child, level + 1)

    visit("", model, 0)
    return units


def _opened_groups(model: nn.Module):
    """The shallowest level with at least MIN_GROUPS groups, not past MAX_GROUPS."""
    chosen = _units_at(model, 1)
    depth = 1
    while len(chosen) < MIN_GROUPS:
        depth += 1
        deeper = _units_at(model, depth)
        if [u[0] for u in deeper] == [u[0] for u in chosen] or len(deeper) > MAX_GROUPS:
            break  # nothing left to open, or too many rows to read
        chosen = deeper
    return chosen


def _named_groups(model: nn.Module, names: Sequence[str]):
    """One group per named module (its parameters not claimed by a deeper named module)."""
    modules = dict(model.named_modules())
    unknown = [n for n in names if n not in modules]
    if unknown:
        raise UserError(f"groups: no module named {', '.join(map(repr, unknown))} in the model; "
                        "see model.named_modules() for the names")
    owner = {}
    for p in _params(model, ""):  # the longest (deepest) named prefix wins
        matches = [n for n in names if n == "" or p.startswith(f"{n}.")]
        owner[p] = max(matches, key=len) if matches else OTHER
    return _collect(owner, list(names), runs_in=True)


def _mapped_groups(model: nn.Module, mapping: Mapping[str, str]):
    """Parameter names matched against regular expressions, in the mapping's order."""
    unnamed = [rx for rx, group in mapping.items() if not isinstance(group, str) or not group.strip()]
    if unnamed:  # 'attn=' once made a table row with no name
        raise UserError(f"groups: {', '.join(repr(f'{rx}=') for rx in unnamed)} names no group; write REGEX=GROUP, "
                        "e.g. 'attn=attention'")
    try:
        patterns = [(re.compile(rx), group) for rx, group in mapping.items()]
    except re.error as err:
        raise UserError(f"groups: {err.pattern!r} is not a valid regular expression ({err})") from None
    names = _params(model, "")
    unmatched = [rx.pattern for rx, _ in patterns if not any(rx.search(p) for p in names)]
    if unmatched:  # a typo would put every parameter in "(other)" and look like a result
        raise UserError(f"groups: no parameter name matches {', '.join(map(repr, unmatched))}; see "
                        "model.named_parameters() for the names")
    owner = {p: next((g for rx, g in patterns if rx.search(p)), OTHER) for p in names}
    return _collect(owner, list(dict.fromkeys(g for _, g in patterns)), runs_in=False)


def _collect(owner: dict[str, str], order: list[str], runs_in: bool):
    groups = {g: [p for p, o in owner.items() if o == g] for g in [*order, OTHER]}
    return [(g, params, g if runs_in and g != OTHER else None, None, g if runs_in and g != OTHER else None)
            for g, params in groups.items() if params]


def build_groups(model: nn.Module, grouping: str | int | Sequence[str] | Mapping[str, str] = "block", *,
                 frozen: bool = False) -> list[LayerGroup]:
    """Split ``model``'s trainable parameters into layer groups.

    Args:
        model: any ``nn.Module``.
        grouping: ``"block"`` or ``"auto"`` (stem / each residual block / head for ResNets;
            other models opened level by level to 8-64 groups), an integer (open every
            container down to that nesting depth), a list of module names (one group each),
            a mapping ``{regex over parameter names: group name}`` (first match wins),
            ``"parameter"`` (one group per parameter) or ``"module_type"`` (one group per module
            class, e.g. ``Conv2d``; the depth index is the order of first appearance and carries
            no depth meaning). Parameters a list or mapping does not name go to ``"(other)"``.
        frozen: also keep frozen parameters (``requires_grad=False``): the whole layout, of which
            ``trainable_groups`` gives the trainable part at any time.

    Every trainable parameter belongs to exactly one group. The groups are cut from the whole network,
    frozen layers included, so a group's name and depth index do not change when other layers are frozen
    or unfrozen; a group with no trainable parameter is left out unless ``frozen``.
    """
    if not isinstance(model, nn.Module):  # a model's name or its state dict: AttributeError on .parameters()
        raise UserError(f"the model to monitor is an nn.Module, got {type(model).__name__} {model!r:.60}; "
                        "build it first (e.g. resnet_lab.create_model(name))")
    if not any(p.requires_grad for p in model.parameters()):
        raise UserError("the model has no trainable parameters: nothing to monitor "
                        "(did you freeze every layer with requires_grad=False?)")
    # A tied parameter (an LM head sharing the embedding's weight) is met under each module holding it:
    # it counts once, under the name model.named_parameters() gives it, and a group left empty goes.
    named = {n for n, _ in model.named_parameters()}
    raw = [(name, [p for p in params if p in named], *optional) for name, params, *optional in
           _raw_groups(model, grouping)]
    # (name, params, then the optional LayerGroup fields in order: module_name, input_of, runs_in)
    layout = [LayerGroup(name, i, tuple(params), *optional)
              for i, (name, params, *optional) in enumerate(r for r in raw if r[1])]
    return layout if frozen else trainable_groups(layout, model)


def trainable_groups(layout: Sequence[LayerGroup], model: nn.Module) -> list[LayerGroup]:
    """The groups of ``layout`` (``build_groups(..., frozen=True)``) cut to the parameters that are trainable
    now, their depth indices kept; groups left with none go."""
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    cut = [replace(g, param_names=tuple(n for n in g.param_names if n in trainable)) for g in layout]
    return [g for g in cut if g.param_names]


class ExecutionOrder:
    """Notes, with forward pre-hooks, the first call of each group's ``runs_in`` module in a training
    forward of the model, to put the groups in the order they run (``reorder``). The hooks go at the
    first ``reorder`` or at ``remove``; the order noted stays, for a layout built again later."""

    def __init__(self, model: nn.Module, groups: Sequence[LayerGroup]):
        modules = dict(model.named_modules())
        self._model = model
        self._first_call: dict[str, int] = {}
        names = dict.fromkeys(g.runs_in for g in groups if g.runs_in is not None)
        self._hooks = [modules[name].register_forward_pre_hook(self._note(name)) for name in names]

    @property
    def watching(self) -> bool:
        return bool(self._hooks)

    def _note(self, name: str):
        def hook(module, args):
            # The model's mode, not the module's: a frozen layer kept in eval mode runs in its place too.
            if self._model.training:
                self._first_call.setdefault(name, len(self._first_call))
        return hook

    def reorder(self, groups: Sequence[LayerGroup]) -> list[LayerGroup] | None:
        """``groups`` sorted by the first call of their modules, depth indices renumbered; None when
        no training forward was seen (e.g. a functional call): registration order stays. A group whose
        module was not seen (not called, or added since) follows the group registered before it."""
        self.remove()
        if not self._first_call:
            return None
        position, previous = [], -1.0
        for g in groups:
            previous = self._first_call.get(g.runs_in, previous)
            position.append(previous)
        order = sorted(range(len(groups)), key=lambda i: (position[i], i))
        return [replace(groups[i], depth_index=k) for k, i in enumerate(order)]

    def remove(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []


def _raw_groups(model: nn.Module, grouping):
    if isinstance(grouping, Mapping):
        return _mapped_groups(model, grouping)
    if isinstance(grouping, int) and not isinstance(grouping, bool):
        if grouping < 1:
            raise UserError(f"groups={grouping} is not a nesting depth; give an integer >= 1")
        return _units_at(model, grouping)
    if isinstance(grouping, (list, tuple)):
        if not grouping:
            raise UserError("groups: the list of module names is empty; give names, a depth or a grouping")
        return _named_groups(model, grouping)
    if grouping not in GROUPINGS:
        raise UserError(f"groups={grouping!r} is not valid; choose one of: {', '.join(GROUPINGS)}, "
                        "a nesting depth, a list of module names or a {regex: group} mapping")
    if grouping in ("block", "auto"):
        has_stages = any(_STAGE.match(n) for n, _ in model.named_children())
        return _block_groups(model) if has_stages else _opened_groups(model)
    if grouping == "parameter":
        return [(n, [n], None, None) for n, _ in model.named_parameters()]
    by_type: dict[str, list[str]] = {}
    seen: set[int] = set()  # a tied parameter counts once, like named_parameters()
    for mod_name, module in model.named_modules():
        prefix = f"{mod_name}." if mod_name else ""
        for n, p in module.named_parameters(recurse=False):
            if id(p) not in seen:
                seen.add(id(p))
                by_type.setdefault(type(module).__name__, []).append(prefix + n)
    return [(t, names, None, None) for t, names in by_type.items()]
