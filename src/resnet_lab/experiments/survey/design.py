"""The survey's design: which cells (configurations) it runs, the rules that turn measurements into
outcomes, and the claims it judges.

Not the full product of switches, but two baselines, ReLU + He init with BatchNorm and the same
without normalisation, and one switch flipped from them, for every depth and for the plain net and
its residual twin (same layers, same parameters):

    batch/relu/he   none/relu/he          the BatchNorm switch
    batch/sigmoid   none/sigmoid          the activation switch (sigmoid needs both: the claim is
    batch/tanh                            about sigmoid WITHOUT normalisation)
    batch/xavier                          the init switch (with BatchNorm the scale of the weights
    batch/normal    none/normal           is normalised away, so small-normal vs He is also
                                          measured without it, where the claim lives)

plus a pair at a learning rate far too high (``high_lr``, default 10x ``lr``, on a residual net
without normalisation of depth ``high_lr_depth``, whose activations grow with depth), without and
with gradient clipping by norm (``clip_norm``).
``full=True`` runs the whole product depth x shortcut x norm (batch, none) x activation (relu,
sigmoid, tanh) x init (he, xavier, normal 0.01) instead (36 cells per depth).
"""

from __future__ import annotations

import itertools

from ...diagnostics.verdicts import Thresholds

SHORTCUTS = ("plain", "residual")
PREFIX = {"plain": "plain", "residual": "resnet"}

# (norm, activation, init) of the default design, in heat-map row order.
VARIANTS = (
    ("batch", "relu", "he"),
    ("none", "relu", "he"),
    ("batch", "sigmoid", "he"),
    ("none", "sigmoid", "he"),
    ("batch", "tanh", "he"),
    ("batch", "relu", "xavier"),
    ("batch", "relu", "normal"),
    ("none", "relu", "normal"),
)
FULL_NORMS = ("batch", "none")
FULL_ACTIVATIONS = ("relu", "sigmoid", "tanh")
FULL_INITS = ("he", "xavier", "normal")

_COMMON = (
    "Every cell starts from the same seed and sees the same batches. 'First' and 'last' are the first and "
    "last residual blocks (layer1.0 and the last block of layer3); their gradient norms are measured at "
    "initialisation and averaged over a few batches."
)
DESIGN = (
    "One switch flipped at a time from two baselines (ReLU, He init, with BatchNorm and without "
    "normalisation), at every depth, for the plain net and its residual twin (same layers and "
    "parameters): norm batch->none; activation relu->sigmoid (with and without BatchNorm) and "
    "relu->tanh; init he->xavier and he->normal(0.01) (the latter also without BatchNorm, which "
    "would otherwise normalise the weight scale away). Plus one residual net without normalisation "
    "at a learning rate far too high, without and with gradient clipping by norm. " + _COMMON
)
FULL_DESIGN = (
    "The full product of the switches: depth x plain/residual x norm (batch, none) x activation (relu, "
    "sigmoid, tanh) x init (he, xavier, normal 0.01), plus one residual net without normalisation at a "
    "learning rate far too high, without and with gradient clipping by norm. " + _COMMON
)

# Rules that turn measurements into outcomes and claims (the tests re-derive claims from these).
LOSS_SMOOTH = 3           # loss_end = mean of the last LOSS_SMOOTH step losses
TRAINED_DROP = 0.10       # "trains": the loss fell by at least 10 % in the short run
DIVERGE_FACTOR = 2.0      # "diverged": a non-finite loss, or loss_end >= 2x loss_start
ORDER = 10.0              # "within an order of magnitude": 1/10 <= first/last <= 10
DEEP = 20  # "deep" / "tens of layers" in the claims: judged only with a net at least this deep
VANISH_RATIO = Thresholds().vanish_ratio  # the monitor's threshold: first/last < 1e-3 vanishes
OUTCOMES = ("trained", "stalled", "diverged")

# The demo's budget: 3 seeds x 24 steps. 16 steps of one seed decided claims from the first steps'
# noise (deep nets at lr 0.1 often raise their loss before lowering it); 8 px (the digits' own
# resolution: they are 8x8 originals upsampled) pays for the seeds. Checked against a run at 10x the
# steps (benchmarks/bench_survey_budget.py, results survey-digits-*-cpu.json): no verdict reverses.
# run_survey's defaults, here without torch: the CLI offers them before anything is imported.
DEFAULTS = {"depths": (8, 20, 56), "steps": 30, "seeds": 3, "batches_at_init": 3, "batch_size": 32, "lr": 0.1,
            "clip_norm": 1.0, "seed": 0}
DEMO_SETTINGS = {"depths": (8, 20, 56), "steps": 24, "seeds": 3, "batch_size": 32, "image_size": 8,
                 "batches_at_init": 2, "threads": 1}

CLAIMS = {
    "bn_plain_trainable": "BatchNorm keeps plain nets trainable to tens of layers",
    "residual_gradient": "Residual connections keep the gradient at the first layer within an order "
                         "of magnitude of the last",
    "sigmoid_vanishes": "Sigmoid without normalisation vanishes",
    "he_beats_normal": "He init beats small-normal init in deep ReLU nets",
    "clip_prevents_blowup": "Clipping by norm prevents the blow-up at high learning rate",
    "residual_trains_faster": "Residual nets train at least as fast as their plain twins at depth",
}


def cell_name(shortcut: str, depth: int, norm: str, activation: str, init: str,
              lr: float | None = None, clip_norm: float | None = None) -> str:
    """``plain56-batch-relu-he``; high-lr cells add ``@lr=2`` and ``+clip=1``."""
    name = f"{PREFIX[shortcut]}{depth}-{norm}-{activation}-{init}"
    if lr is not None:
        name += f"@lr={lr:g}"
    if clip_norm is not None:
        name += f"+clip={clip_norm:g}"
    return name


def plan_cells(depths, full: bool, lr: float, high_lr: float, high_lr_depth: int, clip_norm: float) -> list[dict]:
    """The cells to run, in order: per depth, per shortcut, per variant; the high-lr pair last."""
    variants = (list(itertools.product(FULL_NORMS, FULL_ACTIVATIONS, FULL_INITS)) if full
                else list(VARIANTS))
    plan = []
    for depth in depths:
        for shortcut in SHORTCUTS:
            for norm, activation, init in variants:
                plan.append({"name": cell_name(shortcut, depth, norm, activation, init), "group": "switches",
                             "variant": f"{norm}/{activation}/{init}", "depth": depth, "shortcut": shortcut,
                             "norm": norm, "activation": activation, "init": init, "lr": lr, "clip_norm": None})
    for clip in (None, clip_norm):
        plan.append({"name": cell_name("residual", high_lr_depth, "none", "relu", "he", high_lr, clip),
                     "group": "high_lr", "variant": "none/relu/he", "depth": high_lr_depth, "shortcut": "residual",
                     "norm": "none", "activation": "relu", "init": "he", "lr": high_lr, "clip_norm": clip})
    return plan

