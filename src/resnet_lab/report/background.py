"""Drawing a run's report after the command has exited: a detached ``resnet-lab report RUN_DIR``.

The report (importing matplotlib, drawing two figures) takes most of a second; a short run's
command need not wait for it. The renderer runs in a session of its own (a Ctrl-C meant for the
next command does not reach it), reads the run directory alone, and appends its output, a
failure's traceback included, to ``RUN_DIR/report.log``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

LOG_NAME = "report.log"
_HEADER = " rendering "  # starts each renderer's part of the log
# Renderers started by this process, never waited for: held so that a ``Popen`` collected while its
# renderer still runs does not warn (a caller that trains from Python goes on living).
_STARTED: list[subprocess.Popen] = []


def start_report_renderer(run_dir: str | Path) -> subprocess.Popen:
    """Start ``python -m resnet_lab report RUN_DIR`` detached; ``RUN_DIR/report.html`` appears when it
    is done. An earlier report.html (a resumed run's) is removed first: what is there is this run's."""
    run_dir = Path(run_dir).absolute()
    (run_dir / "report.html").unlink(missing_ok=True)
    # The renderer runs the code that trained the run, wherever this package was imported from
    # (a checkout on PYTHONPATH may differ from the installed copy).
    package_root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    with open(run_dir / LOG_NAME, "a") as log:
        log.write(f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}{_HEADER}{run_dir / 'report.html'}\n")
        log.flush()
        renderer = subprocess.Popen([sys.executable, "-m", "resnet_lab", "report", str(run_dir)], env=env,
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    _STARTED.append(renderer)
    return renderer


def wait_for_report(run_dir: str | Path, timeout_s: float = 300.0) -> Path:
    """Wait until the last renderer started for ``run_dir`` has finished; return report.html.

    Finished: its ``report: PATH`` line is in report.log (printed as it exits). For a caller that
    must not overlap with it (a benchmark's next round) or needs the page (a script). A renderer's
    failure, or none finished in ``timeout_s``, raises ``RuntimeError`` with the log's last lines.
    """
    run_dir = Path(run_dir)
    log, page = run_dir / LOG_NAME, run_dir / "report.html"
    deadline = time.monotonic() + timeout_s
    while True:
        if not log.exists():  # drawn before the command exited (--report wait), or never started
            if page.exists():
                return page
            raise RuntimeError(f"{run_dir} has neither report.html nor {LOG_NAME}")
        text = log.read_text(errors="replace")
        said = "\n" + text[text.rfind(_HEADER):].partition("\n")[2]  # the last renderer's output
        if "\nreport: " in said and page.exists():
            return page
        if "Traceback" in said or "error:" in said:
            raise RuntimeError(f"the report renderer failed; {log} says: {said.strip()[-2000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"no report after {timeout_s:.0f} s; {log} says: {said.strip()[-2000:] or 'nothing'}")
        time.sleep(0.05)
