"""Model names -> architecture configs, and ``create_model``.

Registered names map to configs, not to copies of code: a ``ModelSpec`` says which
family, block and stage depths a name means; ``create_model`` turns it into a ``ResNet``.
Besides the listed names, any valid depth is accepted: ``resnet8``, ``plain200``,
``cifar_resnet50`` (CIFAR depth 50, since ``resnet50`` is the ImageNet net),
``preact_resnet272`` ..., up to ``MAX_DEPTH`` layers.
"""

from __future__ import annotations

import difflib
import inspect
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError, numpy_scalars_as_numbers, shown
from .blocks import BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck
from .choices import MODEL_OPTIONS
from .resnet import ResNet

CIFAR_WIDTHS = (16, 32, 64)
IMAGENET_WIDTHS = (64, 128, 256, 512)
# The deepest nets in the papers have 1202 (He et al. 2015) and 1001 layers (pre-activation, 2016).
# Past 10,000 layers a name is a typo or a stress test: building one would only exhaust memory.
MAX_DEPTH = 10_000
IMAGENET_LAYERS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
# The depths at which a plain name (``resnet50``, ``plain18``) means the ImageNet net.
_IMAGENET_DEPTHS = {"resnet": tuple(IMAGENET_LAYERS), "plain": (18, 34)}

# Names shown by `resnet-lab models`; other depths are built on demand.
LISTED = (
    [f"resnet{d}" for d in IMAGENET_LAYERS] + ["plain18", "plain34"]
    + [f"resnet{d}" for d in (20, 32, 44, 56, 110, 1202)]
    + [f"plain{d}" for d in (20, 32, 44, 56, 110)]
    + ["preact_resnet110", "preact_resnet164", "preact_resnet1001"]
)


@dataclass(frozen=True)
class ModelSpec:
    """What a model name means."""

    name: str
    family: str  # one of choices.FAMILIES
    depth: int
    block: type
    layers: tuple[int, ...]
    widths: tuple[int, ...]
    stem: str
    defaults: dict = field(default_factory=dict)

    @property
    def input_size(self) -> int:
        """Native input resolution (height = width)."""
        return 224 if self.stem == "imagenet" else 32


def _imagenet(name: str, depth: int, plain: bool) -> ModelSpec:
    block = Bottleneck if depth >= 50 else BasicBlock
    defaults = {"shortcut": "none"} if plain else {}
    return ModelSpec(name, "imagenet", depth, block, IMAGENET_LAYERS[depth], IMAGENET_WIDTHS, "imagenet", defaults)


def _cifar(name: str, depth: int, plain: bool) -> ModelSpec:
    if depth < 8 or (depth - 2) % 6:
        valid = ", ".join(str(6 * n + 2) for n in range(1, 10))
        raise UserError(f"{name}: CIFAR nets have 6n+2 layers ({valid}, ...), not {depth}{_close(name)}")
    n = (depth - 2) // 6
    # The paper's CIFAR nets use option A shortcuts, so a plain net has exactly as many parameters.
    defaults = {"shortcut": "none" if plain else "A", "num_classes": 10}
    return ModelSpec(name, "cifar", depth, BasicBlock, (n,) * 3, CIFAR_WIDTHS, "cifar", defaults)


def _preact(name: str, depth: int) -> ModelSpec:
    # He et al. (2016) use bottlenecks (9n+2 layers) from 164 layers up, basic blocks (6n+2) below.
    if depth >= 164 and (depth - 2) % 9 == 0:
        block, n, widths = PreActBottleneck, (depth - 2) // 9, CIFAR_WIDTHS
    elif depth >= 8 and (depth - 2) % 6 == 0:
        block, n, widths = PreActBasicBlock, (depth - 2) // 6, CIFAR_WIDTHS
    else:
        raise UserError(
            f"{name}: pre-activation nets have 6n+2 layers with basic blocks (20, 56, 110, ...) "
            f"or 9n+2 >= 164 with bottlenecks (164, 290, 1001, ...), not {depth}{_close(name)}"
        )
    defaults = {"shortcut": "B", "num_classes": 10}
    return ModelSpec(name, "preact", depth, block, (n,) * 3, widths, "cifar", defaults)


_PATTERN = re.compile(r"^(cifar_)?(resnet|plain|preact_resnet)(\d+)$", re.ASCII)


def _close(name: str) -> str:
    matches = difflib.get_close_matches(name, LISTED, n=3, cutoff=0.6)
    return f"; did you mean {', '.join(matches)}?" if matches else ""


def _depth(name: str, digits: str) -> int:
    digits = digits.lstrip("0") or "0"
    # Compare lengths first: int() of a 5000-digit string is itself an error.
    if len(digits) > len(str(MAX_DEPTH)) or int(digits) > MAX_DEPTH:
        raise UserError(f"{shown(name)}: more than the {MAX_DEPTH:,} layers supported; the deepest nets in the "
                        "papers have 1202 (resnet1202) and 1001 (preact_resnet1001) layers")
    return int(digits)


def get_spec(name: str) -> ModelSpec:
    """Resolve a model name to its ``ModelSpec``; a bad name raises ``UserError``."""
    if not isinstance(name, str):  # a model built already, None, a list of names
        raise UserError(f"a model is named by a string such as 'resnet20', got {shown(name)}; see 'resnet-lab "
                        "models' for the names")
    key = name.strip().lower()
    match = _PATTERN.match(key)
    if not match:
        raise UserError(f"unknown model {shown(name)}{_close(str(name))} (see 'resnet-lab models' for the list)")
    cifar_prefix, kind, digits = match.groups()
    name = key  # messages stay on one line whatever whitespace came with the name
    depth = _depth(name, digits)
    if kind == "preact_resnet":
        if cifar_prefix:
            raise UserError(f"unknown model {name!r}; pre-activation nets are named preact_resnetN")
        return _preact(name, depth)
    plain = kind == "plain"
    if not cifar_prefix and depth in _IMAGENET_DEPTHS[kind]:
        return _imagenet(name, depth, plain)
    return _cifar(name, depth, plain)


def cifar_model_name(kind: str, depth: int) -> str:
    """The zoo name of the CIFAR ``kind`` ("resnet" or "plain") net of ``depth`` layers: ``resnet56``,
    ``plain56``; ``cifar_resnet50`` where the plain name means the ImageNet net (``resnet50``)."""
    return f"cifar_{kind}{depth}" if depth in _IMAGENET_DEPTHS[kind] else f"{kind}{depth}"


# A notebook's computed sizes are often numpy integers (num_classes=y.max() + 1): taken as the ints they hold,
# where "num_classes must be a positive integer, got np.int64(10)" refused an integer.
@numpy_scalars_as_numbers
def create_model(name: str, *, weights: str | Path | None = None, **options) -> ResNet:
    """Build a model by name, e.g. ``create_model("resnet56")`` or ``create_model("plain20", norm="none")``.

    ``options`` are ``ResNet``'s keyword arguments (``num_classes``, ``in_channels``, ``shortcut``,
    ``norm``, ``activation``, ``init``, ``zero_init_residual``, ``checkpointing``) and override
    the name's defaults. ``weights`` loads a local ``.pth``/``.safetensors`` state dict (any model,
    e.g. what ``resnet-lab export`` wrote) or, for torchvision's ImageNet ResNets only, a
    torchvision weight name such as ``"IMAGENET1K_V2"`` or ``"DEFAULT"`` (downloads).
    """
    spec = get_spec(name)
    unknown = set(options) - _OPTION_NAMES
    if unknown:
        raise UserError(f"unknown model option(s) {', '.join(sorted(unknown))}; "
                        f"valid: {', '.join(sorted(_OPTION_NAMES))}")
    kwargs = {**spec.defaults, **{k: v for k, v in options.items() if v is not None}}
    if spec.defaults.get("shortcut") == "none" and kwargs["shortcut"] != "none":  # a ResNet under a plain name
        twin = name.replace("plain", "resnet", 1)
        raise UserError(f"{name} is a plain net (no shortcuts), so shortcut {kwargs['shortcut']!r} would make it "
                        f"{twin} under another name; use {twin} for shortcuts")
    model = ResNet(spec.block, spec.layers, spec.widths, stem=spec.stem, **kwargs)
    model.spec = spec
    if weights is not None:
        from .weights import load_weights

        load_weights(model, spec, weights)
    return model


_OPTION_NAMES = {"num_classes", "in_channels", *MODEL_OPTIONS}


def option_values(name: str, options: dict) -> dict:
    """The value of each switch (``MODEL_OPTIONS``) that ``create_model(name, **options)`` builds with: the
    name's defaults and ``ResNet``'s fill in what ``options`` leaves out (a run given no ``--norm`` is a
    ``norm='batch'`` run)."""
    built = {**{k: p.default for k, p in inspect.signature(ResNet.__init__).parameters.items()},
             **get_spec(name).defaults, **{k: v for k, v in options.items() if v is not None}}
    return {k: built[k] for k in MODEL_OPTIONS}


def list_models() -> list[str]:
    """The named models of the zoo (any other valid depth also works with ``create_model``)."""
    return list(LISTED)


def cifar_resnet(depth: int, *, plain: bool = False, **options) -> ResNet:
    """Generic CIFAR builder: any 6n+2 depth, residual or plain."""
    return create_model(cifar_model_name("plain" if plain else "resnet", depth), **options)


def preact_resnet(depth: int, **options) -> ResNet:
    """Generic pre-activation builder: 6n+2 (basic blocks) or 9n+2 >= 164 (bottlenecks)."""
    return create_model(f"preact_resnet{depth}", **options)
