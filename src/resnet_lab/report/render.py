"""A run's report, drawn as its ``report`` setting asks: now (``wait``), by a detached process after
the command exits (``background``, ``background.py``), or not at all (``none``)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..files import shell_arg


def render_run_report(run_dir: str | Path, mode: str, log: Callable[[str], object] = print) -> str:
    """Draw (or start drawing) ``run_dir/report.html`` as ``mode`` says; the line that says where it is."""
    from .background import LOG_NAME, start_report_renderer
    from .train_report import write_run_report

    run_dir = Path(run_dir)
    if mode == "none":
        if (run_dir / "report.html").exists():  # from an earlier process of this run: never taken for this one's
            return (f"report: not redrawn (--report none): {run_dir / 'report.html'} shows the run as it was "
                    f"before; 'resnet-lab report {shell_arg(run_dir)}' redraws it")
        return f"report: not rendered (--report none); 'resnet-lab report {shell_arg(run_dir)}' renders it"
    if mode == "background":
        try:
            start_report_renderer(run_dir)
            return (f"report: {run_dir / 'report.html'} (rendering in the background; log and any failure in "
                    f"{run_dir / LOG_NAME}; 'resnet-lab report {shell_arg(run_dir)}' renders it now)")
        except OSError as err:  # no process to spare: draw it here rather than lose it
            log(f"warning: could not start the background report renderer ({err}); rendering it now")
    return f"report: {write_run_report(run_dir)}"
