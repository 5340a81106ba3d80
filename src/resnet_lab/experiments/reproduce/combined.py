"""Fig. 6 and Table 6 from one sweep: ``run_all``.

Fig. 6's ResNets are Table 6's runs (same model, seed and settings: ``table6.paper_settings``),
so training the two reproductions apart trains ResNet-20 to 56 twice. ``run_all`` trains the
union once as one resumable sweep in ``out/runs`` (by depth, each plain net before its ResNet),
then reads each reproduction back from it: ``run_fig6`` and ``run_table6`` find their runs done
(a grid that is part of the folder's sweep trains only its own runs, and here none is left).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Sequence

from ...errors import UserError, numpy_scalars_as_numbers
from ...models.registry import cifar_model_name
from ..degradation import check_depths, check_seeds
from .fig6 import run_fig6
from .paper import FIG6_DEPTHS, SEEDS, TABLE6_DEPTHS
from .table6 import check_data, check_steps, check_sweep_options, paper_settings, run_table6


def all_grid(depths: list[int], plain_depths: list[int], seeds: list[int], data: str, steps: int,
             cuda_graph: bool = False):
    """plain{d} and resnet{d} at Fig. 6's depths, resnet{d} at the others, by depth; x seed."""
    from ...training.sweep import Grid

    models = [cifar_model_name(kind, d) for d in depths for kind in ("plain", "resnet")
              if kind == "resnet" or d in plain_depths]
    return Grid({"model": models, "seed": list(seeds)}, paper_settings(data, steps, cuda_graph))


@numpy_scalars_as_numbers
def run_all(out: str | Path, depths: Sequence[int] = TABLE6_DEPTHS, plain_depths: Sequence[int] = FIG6_DEPTHS,
            seeds: Sequence[int] = SEEDS, *, data: str = "cifar10", steps: int | None = None,
            jobs: int | str = 1, devices: Sequence[str] | None = None, threads: int | None = None,
            cuda_graph: bool = False, log: Callable[[str], object] | None = print) -> dict:
    """Train Fig. 6's and Table 6's networks once, in ``out/runs``; ``{"fig6": ..., "table6": ...}``,
    each as ``run_fig6`` / ``run_table6`` return it. ``plain_depths``: Fig. 6's depths (plain and
    ResNet), each one of ``depths`` (Table 6's). Raises ``SweepFailed`` / ``SweepInterrupted``."""
    from ...training.sweep import run_whole_sweep
    from ...training.sweep.progress import heading_first

    start = time.perf_counter()
    depths, plain_depths, seeds = check_depths(depths), check_depths(plain_depths), check_seeds(seeds)
    missing = [d for d in plain_depths if d not in depths]
    if missing:
        raise UserError(f"--plain-depths {' '.join(map(str, missing))} not in --depths: Fig. 6 compares each plain "
                        "net with the ResNet of its depth; add them to --depths")
    data, steps = check_data(data), check_steps(steps)
    say = log or (lambda *_: None)
    devices = check_sweep_options(jobs, threads, devices)
    grid = all_grid(depths, plain_depths, seeds, data, steps, cuda_graph)
    heading = f"reproduce all: {len(grid.axes['model']) * len(seeds)} runs, each trained once for Fig. 6 and Table 6"
    trained = run_whole_sweep(grid, Path(out) / "runs", jobs=jobs, devices=devices, threads=threads,
                              log=heading_first(say, heading))
    common = dict(data=data, steps=steps, jobs=trained.jobs, devices=devices, threads=threads, cuda_graph=cuda_graph,
                  log=log)
    results = {"fig6": run_fig6(out, plain_depths, seeds, **common), "table6": run_table6(out, depths, seeds, **common)}
    for result in results.values():  # each read its runs back in seconds: the time is the whole call's
        result["run_time_s"] = time.perf_counter() - start
    return results
