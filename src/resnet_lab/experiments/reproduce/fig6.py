"""Fig. 6 of He et al. (2015): the degradation experiment at the paper's depths, with its recipe.

``run_fig6(out, depths=(20, 32, 44, 56), seeds=(0, 1))`` is ``run_degradation`` on the sweep
engine (``jobs=``: resumable in ``out/runs``) with ``recipe="paper"`` on the full training set,
plus ``result["reproduce"]``: whether each half of the paper's pattern showed up
(``findings.fig6_pattern``) and whether the budget was the paper's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from ...errors import numpy_scalars_as_numbers
from ..degradation import run_degradation
from .findings import fig6_pattern
from .paper import FIG6_DEPTHS, PAPER_STEPS, SEEDS
from .table6 import check_data, check_steps, device_list, paper_settings

@numpy_scalars_as_numbers
def run_fig6(out: str | Path, depths: Sequence[int] = FIG6_DEPTHS, seeds: Sequence[int] = SEEDS, *,
             data: str = "cifar10", steps: int | None = None, jobs: int | str = 1,
             devices: Sequence[str] | None = None, threads: int | None = None, cuda_graph: bool = False,
             log: Callable[[str], object] | None = print) -> dict:
    """Plain and residual nets at each depth, paper recipe; ``run_degradation``'s result plus ``reproduce``."""
    data, steps = check_data(data), check_steps(steps)
    settings = paper_settings(data, steps, cuda_graph)  # the same runs as Table 6's ResNets
    overrides = {k: v for k, v in settings.items() if k not in ("recipe", "data", "log_every")}
    result = run_degradation(depths, data=data, seeds=seeds, recipe="paper", out=out, log=log, jobs=jobs,
                             devices=device_list(devices), threads=threads, log_every=settings["log_every"],
                             **overrides)
    result["reproduce"] = {"figure": "He et al. (2015), Fig. 6 (left: plain nets, middle: ResNets)",
                           "steps": steps, "paper_steps": PAPER_STEPS, "papers_budget": steps == PAPER_STEPS,
                           "cuda_graph": cuda_graph,
                           "pattern": fig6_pattern(result["networks"])}
    return result
