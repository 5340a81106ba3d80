"""One sweep run in its own process: ``python -m resnet_lab.training.sweep RUN_DIR DEVICE THREADS PID``.

A process per run, so a crash, an out-of-memory kill or a non-finite stop takes down that run
only. The worker takes the run's lock first (another live worker on the same directory: exit
``BUSY``), then trains the run from ``sweep_run.json`` or resumes it exactly from ``last.pt``;
a run whose spec names another task runs that instead (``task.py``).
On Linux it asks the kernel for a signal when the sweep that started it dies (even by SIGKILL)
and then acts as on one SIGTERM: it saves a checkpoint at the step boundary and exits, as
``train`` does.

Exit status: 0 done, 2 bad settings, 3 non-finite stop, 128 + signal when interrupted at a step
(a checkpoint was saved, unless the weights were not finite), ``BUSY`` when the run is locked by
another process; a signal that comes while it is still setting up ends it (it saves nothing).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from ...runtime import cpu_cores
from ...text import counted
from .grid import TRAIN
from .run_state import STDERR_FILE, STDOUT_FILE, read_spec, take_lock

BUSY = 75  # EX_TEMPFAIL: "try again later"
_PR_SET_PDEATHSIG = 1


def threads_per_worker(workers: int) -> int:
    return max(1, cpu_cores() // max(workers, 1))


def launch(run_dir: Path, device: str, threads: int) -> subprocess.Popen:
    """Start the worker of ``run_dir`` on ``device`` with ``threads`` CPU threads; its output is
    appended to the run's log files."""
    stdout = open(run_dir / STDOUT_FILE, "ab")
    stderr = open(run_dir / STDERR_FILE, "ab")
    # Set before torch starts its thread pools: workers that each take every core slow one another down
    # many times over (measured, two resnet8 workers on 2 cores: 6 steps in 0.7-1.0 s with one thread
    # each, 6-21 s with two).
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    try:
        return subprocess.Popen([sys.executable, "-m", __package__, str(run_dir), device, str(threads),
                                 str(os.getpid())],
                                stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)  # a terminal's Ctrl-C reaches the sweep only
    finally:  # the child has its own copies
        stdout.close()
        stderr.close()


def _die_with_parent(parent_pid: int) -> None:
    """One SIGTERM when the sweep dies (Linux); if it died before we asked, stop now.

    The kernel sends SIGHUP, which we turn into a single SIGTERM: here it sent the parent-death
    signal twice (the sweep SIGKILLed, tests/test_sweep.py), and a second SIGTERM makes the
    trainer stop at once, without the checkpoint the first one asked for.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        signal.signal(signal.SIGHUP, _parent_died)
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGHUP, 0, 0, 0)
    if os.getppid() != parent_pid:
        print("the sweep that started this worker has exited; stopping", file=sys.stderr)
        sys.exit(128 + signal.SIGTERM)


def _parent_died(signum, frame) -> None:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # any repeat of it
    os.kill(os.getpid(), signal.SIGTERM)


def main(argv: list[str]) -> int:
    run_dir, device, threads, parent_pid = Path(argv[0]), argv[1], int(argv[2]), int(argv[3])
    _die_with_parent(parent_pid)
    if take_lock(run_dir) is None:
        print(f"{run_dir} is being trained by another process (its sweep.lock is held)", file=sys.stderr)
        return BUSY
    spec = read_spec(run_dir) or {}
    if spec.get("task", TRAIN) != TRAIN:
        from .task import run_task

        return run_task(run_dir, spec, device, threads)
    return _train(run_dir, device, threads)


def _train(run_dir: Path, device: str, threads: int) -> int:
    import torch

    from ...diagnostics import NonFiniteError
    from ...errors import UserError
    from ..config import TrainConfig
    from ..trainer import TrainingInterrupted, train

    torch.set_num_threads(threads)  # on CPU part of the result: the same count gives the same bits
    config = TrainConfig.from_dict(read_spec(run_dir)["config"])
    # No report per run ('resnet-lab report RUN_DIR' draws one): the sweep's time is for training.
    config.out, config.device, config.progress, config.report = str(run_dir), device, False, "none"
    resume = run_dir if (run_dir / "last.pt").exists() or (run_dir / "config.json").exists() else None
    try:
        result = train(config, resume=resume, log=_log)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except NonFiniteError as err:
        print(f"stopped: {err}", file=sys.stderr)
        return err.exit_code
    except TrainingInterrupted as stop:
        print(f"interrupted at step {stop.step}; {stop.note}", file=sys.stderr)  # the sweep resumes it, not --resume
        return 128 + stop.signum
    final = result.final
    print(f"done: {counted(result.steps, 'step')}, final {result.data_info['eval_split']} accuracy "
          f"{final['test_acc']:.4f}", flush=True)
    return 0


def _log(line: str) -> None:
    """The trainer's lines to worker.out, its warnings to worker.err (where a failure's reason is read)."""
    print(line, file=sys.stderr if line.startswith("warning:") else sys.stdout, flush=True)

