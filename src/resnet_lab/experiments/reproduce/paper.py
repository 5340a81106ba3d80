"""The published figures a reproduction is held against, and the paper's training budget.

He et al. (2015), "Deep Residual Learning for Image Recognition", Table 6: CIFAR-10 test error
(%) of the CIFAR ResNets trained on the 50k training images for 64k iterations (section 4.2).
"""

from __future__ import annotations

#: Iterations of the paper's CIFAR-10 schedule (lr /10 at 32k and 48k, stop at 64k).
PAPER_STEPS = 64_000

#: The reproductions' defaults (here without torch: the CLI offers them before anything is imported):
#: Table 6's depths, Fig. 6's (plain and ResNet), and the seeds of each.
TABLE6_DEPTHS = (20, 32, 44, 56, 110)
FIG6_DEPTHS = (20, 32, 44, 56)
SEEDS = (0, 1)

#: Steps between the points of every reproduction run's finer training curve. One value for Fig. 6
#: and Table 6, so that their ResNets are the same runs (``reproduce all`` trains them once).
CURVE_EVERY = 100

#: Table 6 test error (%) by depth; for 110 layers the best of 5 runs (their mean below).
TABLE6 = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43, 1202: 7.93}
#: ResNet-110 over 5 runs: mean and std (%), runs.
TABLE6_110_MEAN = {"mean": 6.61, "std": 0.16, "n": 5}

PAPER_CITATION = "He, Zhang, Ren, Sun (2015), Deep Residual Learning for Image Recognition, Table 6"

#: A public PyTorch reimplementation's test error (%), as its README reports it; not run here.
#: Its table (checked through a copy of it in Chelcacs/ProjectML's README, which links the
#: weights at akamaster/pytorch_resnet_cifar10) lists these with its own training schedule.
REIMPLEMENTATION = {
    "source": "akamaster/pytorch_resnet_cifar10",
    "url": "https://github.com/akamaster/pytorch_resnet_cifar10",
    "note": "from its README (its own schedule, not run here)",
    "errors": {20: 8.27, 32: 7.37, 44: 6.90, 56: 6.61, 110: 6.32, 1202: 6.18},
}

#: A depth's mean test error within this many points of the paper's (or below it) reproduces it.
WITHIN_POINTS = 0.3


def paper_entry(depth: int) -> dict:
    """The published figures for one depth (``None`` where none is known)."""
    entry = {"paper_error": TABLE6.get(depth), "paper_citation": PAPER_CITATION,
             "reimplementation_error": REIMPLEMENTATION["errors"].get(depth),
             "reimplementation": {k: REIMPLEMENTATION[k] for k in ("source", "url", "note")}}
    if depth == 110:
        entry["paper_mean"] = dict(TABLE6_110_MEAN)
    return entry
