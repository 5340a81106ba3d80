"""Sweeps: a grid of runs trained by worker processes, several at once, resumable at any point.

Every run here is resnet8 on the bundled digits, 30 steps of batch 32, one CPU thread per
process (the thread count is part of a CPU result, bit for bit), so that the sweep's runs can
be compared tensor for tensor with the same runs done one by one by `resnet-lab train`.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from resnet_lab.cli.main import main
from resnet_lab.diagnostics.records import read_jsonl
from resnet_lab.errors import UserError
from resnet_lab.training import load_checkpoint
from resnet_lab.training.sweep import Grid, expand, run_sweep, sweep_status
from resnet_lab.training.sweep.manifest import check_compatible
from resnet_lab.training.sweep.run_state import is_locked, read_status, take_lock
from resnet_lab.training.sweep.worker import BUSY

CLI = [sys.executable, "-m", "resnet_lab"]
STEPS = 30
TRAIN = ["--model", "resnet8", "--steps", str(STEPS), "--batch-size", "32", "--deterministic",
         "--checkpoint-every", "1", "--log-every", "5", "--no-tensorboard"]
FIXED = {"steps": STEPS, "batch_size": 32, "deterministic": True, "checkpoint_every": 1, "log_every": 5,
         "tensorboard": False}
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
TIMING_KEYS = {"images_per_s", "time_s", "elapsed_s", "run_time_s"}  # measured: they differ between any two runs


def sweep(*args, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(CLI + ["sweep", *args], capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}: {proc.stdout[-1500:]}\n{proc.stderr[-1500:]}")
    return proc


def start_sweep(*args) -> subprocess.Popen:
    return subprocess.Popen(CLI + ["sweep", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[int, Path]:
    """Seeds 0 and 1 trained one by one with `resnet-lab train`, one thread each."""
    base = tmp_path_factory.mktemp("reference")
    runs = {}
    for seed in (0, 1):
        runs[seed] = base / f"seed{seed}"
        subprocess.run(CLI + ["train", *TRAIN, "--seed", str(seed), "--quiet", "--out", str(runs[seed])],
                       check=True, capture_output=True, env=ONE_THREAD, timeout=600)
    return runs


def assert_same_run(run: Path, reference: Path) -> None:
    """Same final weights, tensor for tensor, and the same metrics rows (timings aside)."""
    ours, theirs = load_checkpoint(run / "last.pt"), load_checkpoint(reference / "last.pt")
    assert ours["step"] == theirs["step"] == STEPS
    assert ours["model"].keys() == theirs["model"].keys()
    for key in ours["model"]:
        assert torch.equal(ours["model"][key], theirs["model"][key]), f"{run.name}: {key} differs"
    assert untimed(read_jsonl(run / "metrics.jsonl")) == untimed(read_jsonl(reference / "metrics.jsonl"))
    # The finer curve is kept in the checkpoint: a resumed run has every point once (the one
    # right after a resume covers only the steps since it, so its values may differ).
    assert [r["step"] for r in ours["step_history"]] == [r["step"] for r in theirs["step_history"]] == \
        list(range(5, STEPS + 1, 5))


def untimed(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in rows]


# ----------------------------------------------------------------------------- the grid

def test_grid_order_and_names_depend_only_on_the_settings():
    a = expand(Grid({"seed": [0, 1], "model": ["resnet8", "resnet14"]}, {"steps": 2}))
    b = expand(Grid({"model": ["resnet8", "resnet14"], "seed": [0, 1]}, {"steps": 2}))
    assert [r.name for r in a] == [r.name for r in b] == [
        "resnet8-seed0", "resnet8-seed1", "resnet14-seed0", "resnet14-seed1"]
    assert [r.config.seed for r in a] == [0, 1, 0, 1] and a[2].config.model == "resnet14"
    named = expand(Grid({"model": ["resnet8"], "data": ["npz:../x/cifar10-small.npz"], "lr": [0.05],
                         "batch_size": [64], "norm": ["group"]}, {"steps": 2}))
    assert named[0].name == "resnet8-npz_cifar10-small-bs64-lr0.05-normgroup"
    assert named[0].config.model_options == {"norm": "group"}


@pytest.mark.parametrize("grid, fragment", [
    (Grid({"seed": [0, 0]}), "repeats a value"),
    (Grid({"seed": []}), "has no values"),
    (Grid({"out": ["x"]}), "not a setting a sweep can set"),
    (Grid({"lr": [0.1, -1.0]}), "--lr must be positive"),
])
def test_bad_grids_are_refused_before_anything_runs(grid, fragment):
    with pytest.raises(UserError, match=fragment):
        expand(grid)


# ----------------------------------------------------------------------------- exactness

def test_two_jobs_at_once_give_the_runs_of_train_one_by_one(tmp_path, reference, capsys):
    out = tmp_path / "sweep"
    proc = sweep(*TRAIN, "--seed", "0", "1", "--jobs", "2", "--threads", "1", "--out", str(out))
    assert "2 jobs per device of 1 thread" in proc.stdout
    assert "done resnet8-seed0" in proc.stdout and "done resnet8-seed1" in proc.stdout
    for seed in (0, 1):
        assert_same_run(out / f"resnet8-seed{seed}", reference[seed])
    manifest = json.loads((out / "sweep.json").read_text())
    assert manifest["counts"]["done"] == 2
    assert [r["name"] for r in manifest["runs"]] == ["resnet8-seed0", "resnet8-seed1"]
    run = manifest["runs"][0]
    assert run["state"] == "done" and run["settings"] == {"model": "resnet8", "seed": 0}
    assert run["result"]["steps"] == STEPS and 0 <= run["result"]["final_train_error"] <= 1
    # --status: the table, from the run directories, running nothing
    assert main(["sweep", "--out", str(out), "--status"]) == 0
    table = [line.split()[:3] for line in capsys.readouterr().out.splitlines()]
    assert table[0] == ["run", "state", "step"] and ["resnet8-seed1", "done", "30/30"] in table
    # The same folder with other settings for its runs is refused in one line, and so is dropping a run
    # for another one.
    assert main(["sweep", *TRAIN, "--seed", "0", "1", "--lr", "0.05", "--out", str(out)]) == 2
    assert "resnet8-seed0 was started with lr=0.1, this grid gives it lr=0.05" in capsys.readouterr().err
    assert main(["sweep", *TRAIN, "--seed", "0", "2", "--out", str(out)]) == 2
    assert "not in this grid (resnet8-seed1)" in capsys.readouterr().err
    check_compatible(out, expand(Grid({"model": ["resnet8"], "seed": [0, 1, 2]}, FIXED)))  # more seeds may join
    # A part of the sweep goes on alone (here: nothing left to train) and sweep.json keeps the whole.
    before = (out / "resnet8-seed0" / "last.pt").stat().st_mtime_ns
    lines = []
    part = run_sweep(Grid({"model": ["resnet8"], "seed": [0]}, FIXED), out, log=lines.append)
    assert part.ok and [r.name for r in part.runs] == ["resnet8-seed0"]
    assert any(f"part of the sweep in {out} (1 of its 2 runs)" in line for line in lines)
    assert (out / "resnet8-seed0" / "last.pt").stat().st_mtime_ns == before
    assert [r["name"] for r in json.loads((out / "sweep.json").read_text())["runs"]] == ["resnet8-seed0",
                                                                                      "resnet8-seed1"]


# ----------------------------------------------------------------------------- kills

def test_sweep_sigkilled_halfway_continues_without_redoing_finished_runs(tmp_path, reference):
    """Parent SIGKILLed once seed 0 is done and seed 1 is mid-run: its worker is told (SIGTERM via
    PR_SET_PDEATHSIG), checkpoints and exits; the same command then finishes seed 1 only."""
    out = tmp_path / "sweep"
    argv = [*TRAIN, "--seed", "0", "1", "--jobs", "1", "--threads", "1", "--out", str(out)]
    parent = start_sweep(*argv)
    try:
        wait_for(lambda: read_status(out / "resnet8-seed0", "x").state == "done", parent)
        wait_for(lambda: 3 <= read_status(out / "resnet8-seed1", "x").step < STEPS - 5, parent)
    finally:
        parent.kill()
        parent.wait()
    wait_for(lambda: not is_locked(out / "resnet8-seed1"))  # the orphaned worker has stopped
    stopped = read_status(out / "resnet8-seed1", "resnet8-seed1")
    assert stopped.state == "interrupted" and stopped.step < STEPS
    assert "interrupted at step" in (out / "resnet8-seed1" / "worker.err").read_text()
    finished = (out / "resnet8-seed0" / "last.pt").stat().st_mtime_ns
    proc = sweep(*argv)
    assert "1 done, 1 to run (1 resumed from its checkpoint)" in proc.stdout
    assert "done resnet8-seed0" not in proc.stdout
    assert (out / "resnet8-seed0" / "last.pt").stat().st_mtime_ns == finished
    assert (out / "resnet8-seed0" / "worker.out").read_text().count("training resnet8") == 1
    for seed in (0, 1):
        assert_same_run(out / f"resnet8-seed{seed}", reference[seed])


def test_sigterm_stops_cleanly_a_killed_worker_is_failed_and_both_resume_exactly(tmp_path, reference):
    out = tmp_path / "sweep"
    argv = [*TRAIN, "--seed", "0", "--threads", "1", "--out", str(out)]
    parent = start_sweep(*argv)
    wait_for(lambda: read_status(out / "resnet8", "x").step >= 3, parent)
    parent.send_signal(signal.SIGTERM)  # forwarded: the worker saves a checkpoint, the sweep waits for it
    stdout, stderr = parent.communicate(timeout=120)
    assert parent.returncode == 128 + signal.SIGTERM
    assert "SIGTERM received; stopping 1 running worker" in stdout
    assert "sweep interrupted; 1 running run saved a checkpoint; run the same command again" in stderr
    stopped = read_status(out / "resnet8", "resnet8")
    assert stopped.state == "interrupted" and 3 <= stopped.step < STEPS
    assert json.loads((out / "sweep.json").read_text())["runs"][0]["state"] == "interrupted"

    parent = start_sweep(*argv)
    wait_for(lambda: read_status(out / "resnet8", "x").step >= stopped.step + 2, parent)
    os.kill(worker_pid(out / "resnet8"), signal.SIGKILL)
    stdout, stderr = parent.communicate(timeout=120)
    assert parent.returncode == 1
    assert "FAILED resnet8: killed by SIGKILL" in stdout
    assert "1 of 1 run failed (resnet8)" in stderr and "run the same command again" in stderr
    assert json.loads((out / "sweep.json").read_text())["runs"][0]["reason"] == "killed by SIGKILL"
    again = sweep(*argv)
    assert "trying resnet8 again (it failed before: killed by SIGKILL)" in again.stdout
    assert_same_run(out / "resnet8", reference[0])


def test_a_signal_to_workers_still_setting_up_says_nothing_was_saved(tmp_path, monkeypatch):
    """SIGTERM while seed 0's worker is still setting up (its default handler ends it, -15, with no last.pt)
    and seed 1's has trained 3 steps (it saves at its step boundary, 143): only seed 1 says it saved one."""
    from resnet_lab.training.sweep import SweepInterrupted, scheduler

    class FakeWorker:
        def __init__(self, run_dir):
            self.run_dir, self.code = run_dir, None

        def poll(self):
            if not signalled:  # the sweep is signalled once both workers run
                signalled.append(os.kill(os.getpid(), signal.SIGTERM))
            return self.code

        def send_signal(self, signum):
            if self.run_dir.name.endswith("seed1"):  # training: saves a checkpoint at its next step
                torch.save({"step": 3, "total_steps": 30, "history": []}, self.run_dir / "last.pt")
                self.code = 128 + signum
            else:
                self.code = -signum

    signalled, lines = [], []
    monkeypatch.setattr(scheduler, "launch", lambda run_dir, device, threads: FakeWorker(run_dir))
    monkeypatch.setattr(scheduler, "_POLL_S", 0.0)
    grid = Grid({"seed": [0, 1]}, {"model": "resnet8", "data": "digits", "steps": 30})
    with pytest.raises(SweepInterrupted) as stop:
        run_sweep(grid, tmp_path, jobs=2, devices="cpu", threads=1, log=lines.append, status_every=0)
    assert "sweep: seed0 interrupted before its first checkpoint (nothing saved: it starts from the " \
           "beginning next time)" in lines
    assert "sweep: seed1 interrupted at step 3 (checkpoint saved)" in lines
    assert str(stop.value).startswith("interrupted; 1 running run saved a checkpoint, 1 had saved none yet (it "
                                      "starts from the beginning); run the same command again to continue")
    assert [s.state for s in sweep_status(tmp_path)] == ["pending", "interrupted"]


def test_a_worker_interrupted_with_weights_that_are_not_finite_says_no_checkpoint_was_saved(tmp_path, monkeypatch,
                                                                                             capsys):
    """The trainer keeps no NaN/Inf in a checkpoint (here every state counts as not finite, as after a blow-up
    under --on-nonfinite warn): a SIGTERM at step 1 then saves nothing, and the worker says so."""
    from resnet_lab.training import run_files
    from resnet_lab.training.eager_step import EagerStep
    from resnet_lab.training.sweep import worker
    from resnet_lab.training.sweep.engine import _write_spec

    original = EagerStep.__call__

    def interrupt(self, x, y, step):
        if step == 0:
            os.kill(os.getpid(), signal.SIGTERM)  # the trainer's handler: a stop at the step's end
        return original(self, x, y, step)

    monkeypatch.setattr(EagerStep, "__call__", interrupt)
    monkeypatch.setattr(run_files, "all_finite", lambda tensors: False)
    spec = expand(Grid({"seed": [0]}, {"model": "resnet8", "data": "digits", "image_size": 16, "batch_size": 512,
                                       "steps": 4, "tensorboard": False}))[0]
    _write_spec(tmp_path, spec)
    assert worker._train(tmp_path / spec.name, "cpu", torch.get_num_threads()) == 128 + signal.SIGTERM
    assert "interrupted at step 1; the weights were not finite, and none was saved before it: no checkpoint was " \
           "written\n" in capsys.readouterr().err
    assert read_status(tmp_path / spec.name, spec.name).total_steps is None  # no last.pt


def test_a_failing_run_does_not_stop_the_others_and_jobs_auto_probes_first(tmp_path, capsys):
    out = tmp_path / "sweep"
    proc = sweep("--model", "resnet8", "--steps", "4", "--batch-size", "32", "--no-tensorboard",
                 "--lr", "0.1", "1e9", "--jobs", "auto", "--probe-seconds", "5", "--status-every", "0",
                 "--out", str(out), check=False)
    assert proc.returncode == 1
    assert "done resnet8-lr0.1:" in proc.stdout and "FAILED resnet8-lr1e+09: stopped: overflow at step" in proc.stdout
    assert "(exit status 3)" in proc.stdout
    assert "1 of 2 runs failed (resnet8-lr1e+09)" in proc.stderr
    assert [s.state for s in sweep_status(out)] == ["done", "failed"]
    assert main(["sweep", "--out", str(out), "--status"]) == 0
    table = [line.split()[:3] for line in capsys.readouterr().out.splitlines()]
    assert ["resnet8-lr1e+09", "failed", "1/4"] in table and ["resnet8-lr0.1", "done", "4/4"] in table
    # jobs auto: 1 then 2 workers of the first run's settings, measured and recorded; the probe folder removed
    manifest = json.loads((out / "sweep.json").read_text())
    probe = manifest["probe"]
    assert [r["jobs"] for r in probe["results"]] == [1, 2]  # never more workers than runs
    assert probe["jobs"] in (1, 2) and manifest["last_invocation"]["jobs"] == probe["jobs"]
    assert all(r["images_per_s"] > 0 for r in probe["results"]) and probe["run"] == "resnet8-lr0.1"
    assert f"sweep: jobs auto -> {probe['jobs']}" in proc.stdout and not list(out.glob(".probe*"))


def test_the_jobs_probe_counts_only_the_time_when_every_worker_trains():
    """Two workers of 1 step per second each; the second starts 5 s late. Summing each one's own rate
    says 2 steps/s whatever the stagger; over the 5 s both trained, they did 10 steps: 2/s, and a
    worker that ran alone the whole time must not count as concurrency (a lower bound instead)."""
    from resnet_lab.training.sweep.probe import overlap_rate

    first = [(t, t) for t in range(0, 11)]  # (time, step): steps 0-10 during seconds 0-10
    late = [(t, t - 5) for t in range(5, 16)]  # the same, seconds 5-15
    assert overlap_rate([first, late], batch_size=1) == pytest.approx(2.0)
    slow = [(t, t / 2) for t in range(5, 16)]  # half the speed while both train
    assert overlap_rate([first, slow], batch_size=32) == pytest.approx(32 * 1.5)
    apart = [(t, t - 20) for t in range(20, 31)]  # never at the same time: 20 steps over 30 s
    assert overlap_rate([first, apart], batch_size=1) == pytest.approx(20 / 30)


def test_the_jobs_probe_opens_its_window_once_every_worker_has_set_up_then_stops_them(tmp_path):
    """Workers start seconds apart, and on a GPU a few dozen steps take less than that (2026-11-29, H200:
    20 steps each picked 1 job while 4 runs at once trained about 6,800 images/s each). So the window
    opens only once the last worker has set up (its config.json), lasts the seconds asked, and SIGTERM
    ends the workers still training; rows count from a quarter of the window on."""
    from resnet_lab.training.sweep.probe import _train_together

    fake = ("import pathlib, signal, sys, time\n"
            "signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))\n"
            "time.sleep(float(sys.argv[2])); pathlib.Path(sys.argv[1], 'config.json').write_text('{}')\n"
            "time.sleep(600)\n")
    dirs = [tmp_path / "fast", tmp_path / "slow"]
    workers = []
    for run_dir, setup_s in zip(dirs, ("0.1", "2.0")):
        run_dir.mkdir()
        workers.append(subprocess.Popen([sys.executable, "-c", fake, str(run_dir), setup_s]))
    try:
        steady_from = _train_together(workers, dirs, seconds=2.0)
        stopped = time.time()
        codes = [w.wait(timeout=30) for w in workers]
    finally:
        for w in workers:
            w.kill()
    slow_ready = (dirs[1] / "config.json").stat().st_mtime
    assert codes == [143, 143]  # both still training at the window's end: stopped by SIGTERM
    assert steady_from == pytest.approx(slow_ready + 0.5, abs=0.3)  # from the slow one's set-up, + 1/4 window
    assert stopped >= slow_ready + 2.0 - 0.05


def test_jobs_auto_on_a_long_run_trains_each_count_for_the_window_only(tmp_path):
    """A run of a million steps: the probe stops its workers after the window (before: it trained a fixed
    few steps), measures 1 then 2 workers from their timed rows, and leaves no probe folder."""
    from resnet_lab.training.sweep.probe import probe_jobs

    grid = Grid(axes={"seed": [0, 1]}, fixed={"model": "resnet8", "data": "digits", "image_size": 8, "steps": 10**6,
                                              "batch_size": 16})
    lines = []
    start = time.perf_counter()
    probe = probe_jobs(expand(grid)[0], tmp_path, "cpu", runs_left=2, seconds=3.0, log=lines.append)
    assert time.perf_counter() - start < 120
    assert [r["jobs"] for r in probe["results"]][:1] == [1] and all(r["images_per_s"] > 0 for r in probe["results"])
    assert probe["seconds"] == 3.0 and lines[-1] == f"sweep: jobs auto -> {probe['jobs']}"
    assert not list(tmp_path.glob(".probe*"))


def test_a_probe_window_with_too_few_timed_steps_is_doubled_twice_then_refused(tmp_path, monkeypatch):
    from resnet_lab.training.sweep import probe

    windows = []
    monkeypatch.setattr(probe, "_aggregate_rate", lambda spec, base, count, device, seconds: windows.append(seconds))
    grid = Grid(axes={"seed": [0, 1]}, fixed={"model": "resnet8", "data": "digits", "steps": 10**6})
    lines = []
    with pytest.raises(UserError, match=r"^the jobs probe's 4 s were too short for seed0 to train two timed steps in "
                                        r"1 worker at once; give a longer --probe-seconds, or --jobs N$"):
        probe.probe_jobs(expand(grid)[0], tmp_path, "cpu", runs_left=2, seconds=1.0, log=lines.append)
    assert windows == [1.0, 2.0, 4.0] and lines == ["sweep: probe, 1 job at once: too few steps in 1 s; again with 2 s",
                                                    "sweep: probe, 1 job at once: too few steps in 2 s; again with 4 s"]
    assert not list(tmp_path.glob(".probe*"))


def test_the_jobs_probe_removes_its_own_folder_and_dead_probes_leftovers_and_nothing_else(tmp_path, monkeypatch):
    """A refusal removes the probe's folder, as does any end; before it starts it removes what a killed probe
    left (its probe.lock free, no worker alive), never a probe in progress (another shard's), a killed probe's
    worker still saving, or a folder that no probe made."""
    from resnet_lab.files import try_lock
    from resnet_lab.training.sweep import probe

    def probe_folder(name: str) -> Path:
        worker = tmp_path / name / "jobs1" / "try0" / "worker0"
        worker.mkdir(parents=True)
        (worker / "sweep.lock").touch()
        (tmp_path / name / "probe.lock").touch()
        return worker

    (tmp_path / ".probe").mkdir()  # no probe.lock: not a probe's folder (a user's, or an older version's)
    (tmp_path / ".probe" / "notes.txt").write_text("keep")
    probe_folder(".probe-dead")
    live = try_lock(probe_folder(".probe-live").parent.parent.parent / "probe.lock")  # its probe holds it
    saving = take_lock(probe_folder(".probe-saving"))  # its probe was killed, its worker is still saving
    bases = []

    def few_steps(spec, base, count, device, seconds):  # the workers' files, then too few timed steps
        bases.append(base)
        (base / "worker0").mkdir(parents=True)
        (base / "worker0" / "last.pt").write_bytes(b"")
        return None

    monkeypatch.setattr(probe, "_aggregate_rate", few_steps)
    grid = Grid(axes={"seed": [0, 1]}, fixed={"model": "resnet8", "data": "digits", "steps": 10**6})
    try:
        with pytest.raises(UserError, match="too short"):
            probe.probe_jobs(expand(grid)[0], tmp_path, "cpu", runs_left=2, seconds=1.0, log=lambda _: None)
    finally:
        os.close(live)
        os.close(saving)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".probe", ".probe-live", ".probe-saving"]
    folder = bases[0].parent.parent  # FOLDER/jobs1/try0
    assert folder.parent == tmp_path and folder.name.startswith(".probe-")
    assert (tmp_path / ".probe" / "notes.txt").read_text() == "keep"
    assert (tmp_path / ".probe-live" / "jobs1").is_dir() and (tmp_path / ".probe-saving" / "jobs1").is_dir()


def test_a_probe_worker_that_cannot_be_started_stops_those_already_started(tmp_path, monkeypatch):
    """Otherwise the first would train on, writing again in the probe's folder once it was removed."""
    from resnet_lab.training.sweep import probe

    started = []

    def launch(run_dir, device, threads):
        if started:
            raise OSError(24, "Too many open files")
        started.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"]))
        return started[-1]

    monkeypatch.setattr(probe, "launch", launch)
    grid = Grid(axes={"seed": [0, 1]}, fixed={"model": "resnet8", "data": "digits", "steps": 10**6})
    try:
        with pytest.raises(OSError, match="Too many open files"):
            probe._aggregate_rate(expand(grid)[0], tmp_path / "probe", 2, "cpu", seconds=1.0)
        assert started[0].poll() == -signal.SIGKILL
    finally:
        started[0].kill()
        started[0].wait()


def test_the_jobs_probe_counts_a_run_that_trained_every_step_whole_though_the_window_stopped_it(tmp_path,
                                                                                                 monkeypatch):
    """A short run trains all its steps, then its process takes a while to exit (torch's teardown, about
    1.5 s on this CPU); the window's SIGTERM then met a finished run (exit -15), whose rows, all before
    the window's quarter, were dropped: 'too few steps', the window doubled, and at last a refusal."""
    from resnet_lab.training import train
    from resnet_lab.training.config import TrainConfig
    from resnet_lab.training.sweep import probe

    finished = tmp_path / "finished"
    train(TrainConfig(model="resnet8", data="digits", image_size=8, steps=6, batch_size=16, log_every=1,
                      tensorboard=False, report="none", progress=False, out=str(finished)), log=None)
    fake = ("import pathlib, shutil, sys, time\n"  # the finished run's files, then a slow exit: SIGTERM ends it
            "shutil.copy(sys.argv[1], pathlib.Path(sys.argv[2], 'last.pt'))\n"
            "pathlib.Path(sys.argv[2], 'config.json').write_text('{}')\n"
            "time.sleep(600)\n")

    def launch(run_dir, device, threads):
        return subprocess.Popen([sys.executable, "-c", fake, str(finished / "last.pt"), str(run_dir)])

    monkeypatch.setattr(probe, "launch", launch)
    grid = Grid(axes={"seed": [0, 1]}, fixed={"model": "resnet8", "data": "digits", "image_size": 8, "steps": 6,
                                              "batch_size": 16})
    rate = probe._aggregate_rate(expand(grid)[0], tmp_path / "probe", 2, "cpu", seconds=0.5)
    assert rate is not None and rate > 0  # both workers' 6 steps, though each was stopped while exiting


def test_several_devices_each_get_at_most_jobs_workers_and_runs_go_to_the_least_loaded(tmp_path, monkeypatch):
    """``--devices cuda:0 cuda:1`` with no GPU here: the scheduler's placement, with workers faked."""
    from resnet_lab.training.sweep import scheduler

    running = {"cuda:0": 0, "cuda:1": 0}
    placed, most = [], {"cuda:0": 0, "cuda:1": 0}

    class FakeWorker:  # a worker process that ends after three polls
        def __init__(self, device):
            self.device, self.polls = device, 0

        def poll(self):
            self.polls += 1
            if self.polls < 3:
                return None
            if self.polls == 3:
                running[self.device] -= 1
            return 0

    def fake_launch(run_dir, device, threads):
        running[device] += 1
        most[device] = max(most[device], running[device])
        placed.append(device)
        return FakeWorker(device)

    monkeypatch.setattr(scheduler, "launch", fake_launch)
    monkeypatch.setattr(scheduler, "_POLL_S", 0.0)
    runs = expand(Grid({"seed": [0, 1, 2, 3, 4, 5, 6]}, {"steps": 2}))
    outcome = scheduler.Scheduler(tmp_path, runs, len(runs), 0, ["cuda:0", "cuda:1"], 2, 1, lambda line: None,
                                  lambda names: None, status_every=0).run()
    assert len(placed) == 7 and placed[:4] == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    assert most == {"cuda:0": 2, "cuda:1": 2}  # never more than --jobs on one device
    assert len(outcome.failed) == 7  # the fakes wrote no result: each is reported, none stops the others


def test_live_lines_show_each_running_runs_step_and_the_sweeps_count_on_a_terminal(tmp_path):
    """On a terminal: a live line per running run (its step of its total, from its own files) and one
    for the sweep; plain lines go above them. Off a terminal nothing is drawn and lines pass through."""
    import io

    from resnet_lab.training.sweep.progress import LiveLines

    run = tmp_path / "resnet8-seed0"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"resolved": {"total_steps": 30}}))
    (run / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "step": 12}) + "\n")
    screen, printed = io.StringIO(), []
    live = LiveLines(tmp_path, total=4, finished=0, file=screen, enabled=True, every_s=0)
    live.started("resnet8-seed0")
    live.refresh(finished=1)
    live.write(printed.append, "[1/4] done resnet8-seed1")
    drawn = screen.getvalue()
    assert "resnet8-seed0" in drawn and "12/30" in drawn and "sweep" in drawn and "1/4" in drawn
    assert printed == ["[1/4] done resnet8-seed1"]
    live.ended("resnet8-seed0")
    live.close()
    quiet, plain = io.StringIO(), []  # not a terminal: a log file or a pipe
    off = LiveLines(tmp_path, total=4, finished=0, file=quiet)
    off.started("resnet8-seed0")
    off.refresh(finished=1)
    off.write(plain.append, "a line")
    off.close()
    assert quiet.getvalue() == "" and plain == ["a line"]


def test_a_locked_run_is_never_trained_twice(tmp_path):
    """A second worker on a run whose lock is held (a live worker, another shard) exits BUSY, untouched."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    fd = take_lock(run_dir)
    try:
        assert is_locked(run_dir) and take_lock(run_dir) is None
        proc = subprocess.run([sys.executable, "-m", "resnet_lab.training.sweep", str(run_dir), "cpu", "1",
                               str(os.getpid())], capture_output=True, text=True, timeout=120)
        assert proc.returncode == BUSY and "sweep.lock is held" in proc.stderr
        assert sorted(p.name for p in run_dir.iterdir()) == ["sweep.lock"]
    finally:
        os.close(fd)
    assert not is_locked(run_dir)


def test_status_reads_a_folder_it_cannot_write(tmp_path, monkeypatch, capsys):
    """--status opened each unfinished run's sweep.lock for writing: on a read-only copy or another user's
    sweep it ended in 'Read-only file system: .../sweep.lock', exit 1. Tests run as root, where chmod stops
    no write, so opening for writing is made to fail as it does there."""
    out = tmp_path / "s"
    run_dir = out / "resnet8"
    run_dir.mkdir(parents=True)
    (run_dir / "sweep_run.json").write_text(json.dumps({"name": "resnet8", "index": 0}))
    (run_dir / "config.json").write_text("{}")  # started, not finished: its lock is looked at
    fd = take_lock(run_dir)
    real_open = os.open

    def read_only(path, flags, *args):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(30, "Read-only file system", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", read_only)
    try:
        assert is_locked(run_dir)  # a live worker's lock is still seen
        assert main(["sweep", "--out", str(out), "--status"]) == 0
        assert "resnet8  running" in capsys.readouterr().out
    finally:
        os.close(fd)
    assert not is_locked(run_dir)
    assert main(["sweep", "--out", str(out), "--status"]) == 0
    assert "resnet8  interrupted" in capsys.readouterr().out


# ----------------------------------------------------------------------------- shards, jobs auto

def test_two_shards_into_one_folder_equal_the_whole_sweep(tmp_path, reference):
    out = tmp_path / "sweep"
    shards = [start_sweep(*TRAIN, "--seed", "0", "1", "--threads", "1", "--shard", f"{i}/2", "--out", str(out))
              for i in (0, 1)]
    for i, proc in enumerate(shards):
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr
        assert f"1 run (shard {i}/2)" in stdout and f"done resnet8-seed{i}" in stdout
    for seed in (0, 1):
        assert_same_run(out / f"resnet8-seed{seed}", reference[seed])
    assert [s.state for s in sweep_status(out)] == ["done", "done"]


# ----------------------------------------------------------------------------- bad input

def test_an_epochs_axis_under_a_fixed_step_count_is_refused(tmp_path, capsys):
    """--epochs 1 2 --steps 5 made two runs, resnet8-ep1 and resnet8-ep2, that both trained 5 steps (steps win
    over epochs): told apart by their names only, as if the epochs had been swept."""
    out = tmp_path / "s"
    assert main(["sweep", "--model", "resnet8", "--epochs", "1", "2", "--steps", "5", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "the sweep axis 'epochs' changes nothing while --steps is given" in err and err.count("\n") == 1
    assert not out.exists()
    assert [r.config.epochs for r in expand(Grid(axes={"model": ["resnet8"], "epochs": [1, 2]}))] == [1, 2]


@pytest.mark.parametrize("options, fragment", [
    ({"out": None}, "out is a file or folder path (a str or Path), got None"),
    ({"out": 3}, "out is a file or folder path (a str or Path), got 3"),
    ({"status_every": None}, "--status-every is seconds between status lines (0: none), got None"),
    ({"status_every": "30"}, "--status-every is seconds between status lines (0: none), got 30"),
])
def test_run_sweep_given_a_value_of_the_wrong_kind_says_so_in_one_line(options, fragment, tmp_path):
    """out=None and status_every=None (or text) ended in TypeErrors from inside pathlib and a comparison."""
    grid = Grid(axes={"model": ["resnet8"]}, fixed={"steps": 1})
    with pytest.raises(UserError, match=re.escape(fragment)):
        run_sweep(grid, **{"out": tmp_path / "s", **options}, log=None)
    with pytest.raises(UserError, match=re.escape("out is a file or folder path (a str or Path), got None")):
        sweep_status(None)


@pytest.mark.parametrize("shard", [(0.5, 2), (1.9, 2), (True, 2), ("0", "2"), (0, 2, 3), 2])
def test_a_shard_that_is_not_two_integers_is_refused_not_rounded(shard, tmp_path):
    """int() made run_sweep(shard=(0.5, 2)) shard 0/2 and (1.9, 2) shard 1/2, training another machine's
    runs without a word."""
    grid = Grid(axes={"model": ["resnet8"], "seed": [0, 1]}, fixed={"steps": 1})
    with pytest.raises(UserError, match=re.escape("--shard is I/N (e.g. 0/2; shard=(0, 2) in Python), got")):
        run_sweep(grid, tmp_path / "s", shard=shard, log=None)
    assert not (tmp_path / "s").exists()


def test_a_shard_with_no_runs_of_the_grid_says_so(tmp_path):
    """A job array sized ahead (--shard 1/2 of a one-run grid) said '0 runs (shard 1/2) ... 0 to run', as if the
    grid were empty; it now says that the grid's runs are in other shards (exit 0: nothing was lost)."""
    lines = []
    result = run_sweep(Grid(axes={"model": ["resnet8"]}, fixed={"steps": 1}), tmp_path / "s", shard=(1, 2),
                       log=lines.append)
    assert result.ok and result.runs == []
    assert lines[0] == ("sweep: shard 1/2 has none of the grid's 1 run (it takes runs 1, 3, ... by their place in "
                        "the grid): nothing to do here")


@pytest.mark.parametrize("args, fragment", [
    (["--shard", "2/2"], "--shard 2/2: I must be from 0 to N-1"),
    (["--shard", "1"], "--shard is I/N"),
    (["--jobs", "0"], "--jobs must be a positive integer or 'auto', got 0"),
    (["--jobs", "many"], "--jobs must be a positive integer or auto"),
    (["--threads", "0"], "--threads must be a positive integer"),
    (["--devices", "cpu", "cpu"], "names a device twice"),
    (["--devices", "cpu:0", "cpu"], "names a device twice (cpu:0 cpu)"),  # it ran 2 jobs' workers on the one CPU
    (["--seed", "1", "1"], "repeats a value"),
    # numpy refuses it mid-setup: each such run failed with a traceback in its worker.err, exit 1, and its
    # folder then made the sweep's folder refuse the corrected grid
    (["--seed", "0", "-1"], "--seed must be from 0 to 4,294,967,295 (2**32 - 1), got -1"),
    (["--seed", "4294967296"], "--seed must be from 0 to 4,294,967,295 (2**32 - 1), got 4294967296"),
    # Checked before any worker starts (each once failed on its own, leaving a run folder, exit 1):
    (["--model", "resnet8", "resnt14"], "unknown model 'resnt14'"),
    (["--model", "resnet8", "plain8", "--zero-init-residual"], "a plain net (shortcut none) has none"),
    (["--data", "digitz"], "unknown data set 'digitz'"),
    (["--data", "npz:/no/such.npz"], "/no/such.npz does not exist"),
    (["--status-every", "-1"], "--status-every is seconds between status lines"),
    (["--probe-seconds", "0"], "--probe-seconds is the time each count of workers trains together"),
    (["--probe-seconds", "nan"], "more than 0 seconds (default 10), got nan"),
    (["--status", "--lr", "5"], "--status shows the sweep in --out as it is; drop --model, --steps, --lr"),
])
def test_bad_sweep_input_is_one_line_exit_2_and_writes_nothing(args, fragment, tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["sweep", "--model", "resnet8", "--steps", "2", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_status_refuses_the_options_of_a_run_even_at_their_defaults(tmp_path, capsys):
    """--status reads the folder only: --jobs, --devices and the like were passed over without a word."""
    args = ["--jobs", "1", "--devices", "cpu", "--threads", "1", "--shard", "0/1", "--probe-seconds", "5",
            "--status-every", "0"]
    assert main(["sweep", "--out", str(tmp_path), "--status", *args]) == 2
    assert capsys.readouterr().err == ("resnet-lab: error: --status shows the sweep in --out as it is; drop --jobs, "
                                       "--devices, --threads, --shard, --probe-seconds, --status-every\n")


def test_a_device_this_machine_lacks_is_refused_naming_devices(tmp_path, capsys, monkeypatch):
    """The line named --device, train's option, which a sweep does not have (its own is --devices)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "sweep"
    assert main(["sweep", "--model", "resnet8", "--steps", "2", "--out", str(out), "--devices", "cuda:3"]) == 2
    err = capsys.readouterr().err
    assert err == ("resnet-lab: error: --devices cuda:3 was asked for but no CUDA GPU is visible; use --devices "
                   "cpu\n")
    assert not out.exists()


def test_a_sweep_into_a_training_runs_folder_is_refused(tmp_path, capsys):
    """It nested sweep.json and run folders inside the run (found by a failure-path walk)."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    assert main(["sweep", "--model", "resnet8", "--steps", "2", "--out", str(run)]) == 2
    assert "is a training run's folder; give the sweep a folder of its own" in capsys.readouterr().err
    assert sorted(p.name for p in run.iterdir()) == ["config.json"]


@pytest.mark.parametrize("args, fragment", [
    (["--threads", "2"], "--threads apply to concurrent training; add --jobs N"),
    (["--jobs", "0"], "--jobs must be a positive integer or 'auto', got 0"),
    (["--jobs", "2", "--shortcut", "none"], "shortcut 'none' would make the ResNets plain"),
])
def test_bad_degradation_jobs_input_is_one_line_exit_2(args, fragment, tmp_path, capsys):
    assert main(["degradation", "--depths", "8", "--epochs", "1", "--out", str(tmp_path / "d"), *args]) == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "d" / "runs").exists()


def test_status_of_a_folder_without_a_sweep_is_one_line(tmp_path, capsys):
    assert main(["sweep", "--out", str(tmp_path), "--status"]) == 2
    assert "holds no sweep" in capsys.readouterr().err
    # a mistyped --out is not 'a folder without a sweep'
    (tmp_path / "file").touch()
    for name, what in (("missing", "does not exist"), ("file", "is a file")):
        assert main(["sweep", "--out", str(tmp_path / name), "--status"]) == 2
        assert f"{tmp_path / name} {what} (no sweep.json" in capsys.readouterr().err


def test_a_damaged_or_lost_manifest_and_run_spec_are_rebuilt_from_the_grid_and_the_runs(tmp_path, capsys):
    """A damaged sweep.json once made every command say "run the sweep again", which failed the same way;
    a damaged sweep_run.json was never rewritten; --status without sweep.json crashed on two runs."""
    out = tmp_path / "s"
    grid = ["sweep", "--out", str(out), "--model", "resnet8", "--steps", "2", "--seed", "0", "1"]
    assert main(grid) == 0
    (out / "sweep.json").write_text("{bad")
    (out / "resnet8-seed1" / "sweep_run.json").write_text("x")
    capsys.readouterr()
    assert main(["sweep", "--out", str(out), "--status"]) == 0
    out_text, err = capsys.readouterr()
    assert "sweep.json is damaged" in err and "passed over" in err and out_text.count("done") == 2
    assert main(grid) == 0  # the same command again: both files written again, nothing retrained
    assert json.loads((out / "sweep.json").read_text())["counts"]["done"] == 2
    (out / "sweep.json").write_text("{}")  # JSON without the grid: the entry named, not a bare "('grid')"
    capsys.readouterr()
    assert main(["sweep", "--out", str(out), "--status"]) == 0
    assert "sweep.json is damaged (no 'grid' entry); passed over" in capsys.readouterr().err
    assert json.loads((out / "resnet8-seed1" / "sweep_run.json").read_text())["name"] == "resnet8-seed1"
    (out / "sweep.json").unlink()
    capsys.readouterr()
    assert main(["sweep", "--out", str(out), "--status"]) == 0  # listed from the runs' specs
    assert capsys.readouterr().out.count("done") == 2


def test_a_run_folder_without_its_spec_is_compared_by_its_config_not_adopted(tmp_path, capsys):
    """A run folder trained with other settings and holding no sweep_run.json (a `train --out` run, or a
    run whose spec was lost) was taken for the grid's run: its last.pt at its own last step made it
    done, and the sweep exited 0 with runs of 2 steps for a grid of 3."""
    out = tmp_path / "s"
    argv = ["--model", "resnet8", "--image-size", "8", "--report", "none", "--quiet"]
    assert main(["train", *argv, "--steps", "2", "--out", str(out / "resnet8")]) == 0
    before = {p.name: p.read_bytes() for p in (out / "resnet8").iterdir() if p.is_file()}
    capsys.readouterr()
    assert main(["sweep", "--out", str(out), "--model", "resnet8", "--image-size", "8", "--steps", "3"]) == 2
    err = capsys.readouterr().err
    assert f"{out / 'resnet8'} was started with steps=2, this grid gives it steps=3" in err and err.count("\n") == 1
    assert {p.name: p.read_bytes() for p in (out / "resnet8").iterdir() if p.is_file()} == before


# ----------------------------------------------------------------------------- helpers

def wait_for(condition, proc: subprocess.Popen | None = None, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the sweep ended first: {proc.stdout.read()[-1500:]} {proc.stderr.read()[-1500:]}")
        time.sleep(0.05)
    raise AssertionError("timed out")


def worker_pid(run_dir: Path) -> int:
    """The worker training ``run_dir`` (its command line names the folder)."""
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"resnet_lab.training.sweep" in cmdline and str(run_dir).encode() in cmdline:
            return int(entry.name)
    raise AssertionError(f"no worker for {run_dir}")


# ----------------------------------------------------------------------------- degradation on the sweep engine

@pytest.mark.parametrize("case", ["paper", "shortcut_B_zero_init_val_split_seed1"])
def test_degradation_with_jobs_equals_the_networks_trained_one_after_another(case, tmp_path):
    """The second case: option B and zero_init_residual go to the ResNets only (a plain net refuses
    zero_init_residual), and every worker holds out the same images as the in-process path (val_seed 0),
    not its own seed's."""
    from resnet_lab.experiments import run_degradation

    settings = dict(data="digits", seeds=(0,), epochs=1, device="cpu", batch_size=64, image_size=16, log=None)
    if case != "paper":
        settings.update(seeds=(1,), val_split=100, model_options={"shortcut": "B", "zero_init_residual": True})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the workers' thread count: the same bits
    try:
        alone = run_degradation((8,), **settings)
    finally:
        torch.set_num_threads(threads)
    swept = run_degradation((8,), **settings, jobs=2, threads=1, out=tmp_path)
    assert [n["model"] for n in swept["networks"]] == ["plain8", "resnet8"]
    same = ("train_error", "test_error", "final_train_error", "final_test_error", "params", "step_curve")
    for a, b in zip(alone["networks"], swept["networks"]):
        assert {k: a[k] for k in same} == {k: b[k] for k in same}
        assert a["step_curve"] and a["gradient_flow"] == b["gradient_flow"]
    assert swept["findings"] == alone["findings"]
    seed = settings["seeds"][0]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [f"plain8-seed{seed}", f"resnet8-seed{seed}",
                                                                     "sweep.json"]
    configs = {n: json.loads((tmp_path / "runs" / f"{n}-seed{seed}" / "config.json").read_text())
               for n in ("plain8", "resnet8")}
    if case != "paper":
        assert swept["settings"]["eval_split"] == "val"
        # Judged on held-out images: every label says val (they said "test error").
        from resnet_lab.experiments.degradation import degradation_text

        assert "final val error" in degradation_text(swept) and "test error" not in degradation_text(swept)
        assert not configs["plain8"]["model_options"]
        assert configs["resnet8"]["model_options"] == {"shortcut": "B", "zero_init_residual": True}
        assert swept["networks"][1]["params"] > swept["networks"][0]["params"]  # B's projections
        assert {c["val_seed"] for c in configs.values()} == {0}
    with pytest.raises(UserError, match="pass data=SPEC instead of dataset="):
        run_degradation((8,), **settings, jobs=2, out=tmp_path, dataset=object())


def test_run_sweep_with_log_none_is_silent(tmp_path, capsys):
    grid = Grid(axes={"seed": [0]}, fixed={"model": "resnet8", "data": "digits", "image_size": 16, "steps": 2,
                                          "batch_size": 32, "tensorboard": False, "report": "none"})
    result = run_sweep(grid, tmp_path, threads=1, log=None)
    assert result.ok
    assert capsys.readouterr() == ("", "")


def test_run_sweep_given_a_dict_instead_of_a_grid_says_how_to_build_one(tmp_path):
    with pytest.raises(UserError, match=r"run_sweep takes a Grid, got dict: e\.g\. Grid\(axes="):
        run_sweep({"axes": {"model": ["resnet8"]}}, tmp_path, log=None)
    assert not any(tmp_path.iterdir())


def test_jobs_given_as_a_numpy_integer_is_a_count_like_an_int():
    from resnet_lab.training.sweep.engine import check_jobs
    import numpy as np

    assert check_jobs(np.int64(2)) == 2 and type(check_jobs(np.int64(2))) is int
    with pytest.raises(UserError, match="--jobs must be a positive integer"):
        check_jobs(True)


def test_one_torch_device_given_as_devices_is_one_device_in_every_sweeping_function(tmp_path):
    """devices=torch.device("cpu") (one device, as a notebook holds it) ended in "TypeError: 'torch.device'
    object is not iterable" in run_sweep, run_degradation, run_survey and the reproductions."""
    from resnet_lab.experiments.degradation import run_degradation
    from resnet_lab.experiments.reproduce.table6 import device_list
    from resnet_lab.experiments.survey.settings import SurveySettings
    from resnet_lab.training.sweep.engine import check_devices

    cpu = torch.device("cpu")
    assert check_devices(cpu) == device_list(cpu) == ["cpu"]
    settings = SurveySettings.from_keywords([8], lr=0.1, high_lr=None, high_lr_depth=None, steps=1, seeds=1,
                                            batches_at_init=1, batch_size=8, image_size=None, data="digits",
                                            data_dir=None, clip_norm=1.0, seed=0, full=False, only=None,
                                            device="cpu", threads=1, jobs=1, devices=cpu, out=tmp_path / "sv")
    assert settings.devices == ("cpu",)
    with pytest.raises(UserError, match="instead of dataset="):  # the check after the devices', before any work
        run_degradation([8], data="digits", steps=1, jobs=1, devices=cpu, out=tmp_path / "d", dataset=[], log=None)
    grid = Grid(axes={"model": ["resnet8"]}, fixed={"data": "digits", "image_size": 16, "steps": 1, "batch_size": 32,
                                                   "tensorboard": False})
    result = run_sweep(grid, tmp_path / "s", devices=cpu, threads=1, log=None)
    assert result.ok and result.devices == ["cpu"]


@pytest.mark.parametrize("axes, fixed, fragment", [
    ({}, {"device": "cpu"}, "give run_sweep(..., devices=[...])"),
    ({"device": ["cpu", "cuda"]}, {}, "give run_sweep(..., devices=[...])"),
    ({}, {"report": "wait"}, "draw one afterwards with 'resnet-lab report RUN_DIR'"),
    ({"report": ["none", "background"]}, {}, "draw one afterwards with 'resnet-lab report RUN_DIR'"),
])
def test_a_device_or_report_in_a_grid_is_refused_not_passed_over(axes, fixed, fragment, tmp_path):
    """The worker sets each run's device (the sweep's) and report (none): Grid(fixed={"device": "cpu"})
    trained on the sweep's device, and "report": "wait" drew none, both without a word."""
    grid = Grid(axes={"model": ["resnet8"], **axes}, fixed={"steps": 1, **fixed})
    with pytest.raises(UserError, match=re.escape(fragment)):
        run_sweep(grid, tmp_path / "s", log=None)
    assert not (tmp_path / "s").exists()
    assert len(expand(Grid(axes={"model": ["resnet8"]}, fixed={"steps": 1, "report": "none"}))) == 1  # what it does


def test_a_grid_of_numpy_values_sweeps_like_the_numbers_they_hold(tmp_path):
    """Grid(axes={"seed": np.arange(2)}) was one run of an array (refused as not a number), and numpy
    integers in a list stopped the sweep with "int64 is not JSON serializable", leaving an empty folder."""
    import numpy as np

    given = Grid(axes={"seed": np.arange(1), "lr": np.array([0.1, 0.05], dtype=np.float32)},
                 fixed={"model": "resnet8", "data": "digits", "image_size": 16, "steps": np.int64(2),
                        "batch_size": 32, "tensorboard": False, "report": "none"})
    plain = Grid(axes={"seed": [0], "lr": [0.1, 0.05]}, fixed={**given.fixed, "steps": 2})
    assert [r.name for r in expand(given)] == [r.name for r in expand(plain)] == ["lr0.1-seed0", "lr0.05-seed0"]
    result = run_sweep(Grid(axes={"seed": [np.int64(0)]}, fixed=given.fixed), tmp_path, threads=1, log=None)
    assert result.ok and json.loads((tmp_path / "sweep.json").read_text())["grid"]["axes"] == {"seed": [0]}


def test_runs_evaluated_on_a_held_out_split_are_reported_as_val_accuracy_not_test(tmp_path, capsys):
    """With --val-split the runs never see the test set: the sweep's lines and its --status table name the
    split their accuracy is on, as `train` does ("final val accuracy"), instead of calling it test acc."""
    grid = Grid(axes={"seed": [0]}, fixed={"model": "resnet8", "data": "digits", "image_size": 16, "steps": 2,
                                          "batch_size": 32, "val_split": 100, "tensorboard": False,
                                          "report": "none"})
    lines = []
    result = run_sweep(grid, tmp_path, threads=1, log=lines.append)
    (name,) = result.states
    assert result.ok and result.states[name].result["eval_split"] == "val"
    done = next(line for line in lines if f"done {name}" in line)
    assert ", val acc " in done and "test acc" not in done
    assert main(["sweep", "--out", str(tmp_path), "--status"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert "val acc" in header and "test acc" not in header
