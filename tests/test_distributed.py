"""torchrun / DDP on CPU with gloo: the same weights as one process, and surviving a killed worker.

These run the README's commands for real: two worker processes under torchrun.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from resnet_lab.training import load_checkpoint

TORCHRUN = [str(Path(sys.executable).with_name("torchrun")), "--standalone", "--nproc_per_node=2"]
# No normalisation layer: BatchNorm statistics are per rank by design (use --sync-bn on GPUs).
RUN = ["train", "--model", "resnet8", "--norm", "none", "--batch-size", "32", "--lr", "0.02",
       "--schedule", "constant", "--deterministic", "--quiet", "--no-tensorboard", "--seed", "1"]
# Summing gradients across ranks rounds differently; that alone stays far below this, while a missing
# or wrong gradient average (or a skipped/repeated step) moves weights by ~1e-3 per step.
TOLERANCE = 1e-4


def max_weight_diff(a: Path, b: Path) -> float:
    wa, wb = load_checkpoint(a)["model"], load_checkpoint(b)["model"]
    assert wa.keys() == wb.keys()
    return max((wa[k].double() - wb[k].double()).abs().max().item() for k in wa)


def single_process(out: Path, steps: int) -> None:
    subprocess.run([sys.executable, "-m", "resnet_lab", *RUN, "--steps", str(steps), "--out", str(out)],
                   check=True, capture_output=True, env=_one_thread())


def _one_thread():
    import os

    return {**os.environ, "OMP_NUM_THREADS": "1"}


def test_two_processes_end_with_the_weights_of_one_process_at_the_same_global_batch(tmp_path):
    single_process(tmp_path / "one", steps=8)
    proc = subprocess.run([*TORCHRUN, "-m", "resnet_lab", *RUN, "--steps", "8", "--out", str(tmp_path / "two")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert load_checkpoint(tmp_path / "two")["config"]["batch_size"] == 32
    assert max_weight_diff(tmp_path / "one", tmp_path / "two") < TOLERANCE
    # and training really moved the weights far more than the tolerance
    from resnet_lab.models import create_model

    torch.manual_seed(1)
    init = create_model("resnet8", norm="none", num_classes=10, in_channels=1).state_dict()
    trained = load_checkpoint(tmp_path / "one")["model"]
    assert max((trained[k] - init[k]).abs().max().item() for k in init) > 100 * TOLERANCE


def _worker_pids(parent: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(parent)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_killed_worker_is_restarted_and_the_run_resumes_without_skipping_or_repeating_steps(tmp_path):
    steps = 60
    single_process(tmp_path / "one", steps=steps)
    out = tmp_path / "two"
    proc = subprocess.Popen([*TORCHRUN, "--max-restarts=1", "-m", "resnet_lab", *RUN, "--steps", str(steps),
                             "--checkpoint-every", "5", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 180
    killed_at = None
    while time.time() < deadline and killed_at is None:
        time.sleep(0.05)
        assert proc.poll() is None, "the run ended before a worker could be killed: " + proc.stdout.read()[-2000:]
        if (out / "last.pt").exists():
            step = load_checkpoint(out / "last.pt")["step"]
            if step >= 15:
                workers = _worker_pids(proc.pid)
                assert workers, "no worker processes found under torchrun"
                subprocess.run(["kill", "-KILL", str(workers[-1])])
                killed_at = step
    assert killed_at is not None and killed_at < steps, "could not kill a worker mid-run"
    log, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, log[-3000:]
    # the survivor said it lost a rank in one line (it was gloo's traceback), then the group restarted
    assert "resnet-lab: rank 0: lost the other ranks mid-collective (" in log and "RuntimeError" not in log
    assert "resuming" in log  # the restarted group picked up the checkpoint
    final = load_checkpoint(out / "last.pt")
    assert final["step"] == steps
    assert max_weight_diff(tmp_path / "one", out / "last.pt") < TOLERANCE


def _sigterm_one_worker_when(out: Path, cmd: list[str], min_step: int) -> subprocess.CompletedProcess:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 180
    while time.time() < deadline:
        time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be pre-empted"
        if (out / "last.pt").exists() and load_checkpoint(out / "last.pt")["step"] >= min_step:
            workers = _worker_pids(proc.pid) if cmd[0].endswith("torchrun") else [proc.pid]
            subprocess.run(["kill", "-TERM", str(workers[-1])])  # one rank only
            break
    log, _ = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(cmd, proc.returncode, log)


def test_preempted_runs_resume_on_another_world_size_with_the_same_weights(tmp_path):
    steps = 60
    single_process(tmp_path / "one", steps=steps)
    # two ranks -> SIGTERM on one rank -> checkpoint at an agreed step boundary -> finish on one process
    a = tmp_path / "two_then_one"
    done = _sigterm_one_worker_when(a, [*TORCHRUN, "-m", "resnet_lab", *RUN, "--steps", str(steps),
                                        "--checkpoint-every", "5", "--out", str(a)], min_step=10)
    assert done.returncode == 0, done.stdout[-3000:]  # pre-emption under torchrun ends cleanly
    assert load_checkpoint(a / "last.pt")["step"] < steps
    subprocess.run([sys.executable, "-m", "resnet_lab", "train", "--resume", str(a), "--quiet"],
                   check=True, capture_output=True, env=_one_thread())
    assert load_checkpoint(a / "last.pt")["step"] == steps
    assert max_weight_diff(tmp_path / "one", a / "last.pt") < TOLERANCE
    # one process -> SIGTERM -> finish on two ranks
    b = tmp_path / "one_then_two"
    done = _sigterm_one_worker_when(b, [sys.executable, "-m", "resnet_lab", *RUN, "--steps", str(steps),
                                        "--checkpoint-every", "5", "--out", str(b)], min_step=10)
    assert done.returncode == 128 + signal.SIGTERM
    assert load_checkpoint(b / "last.pt")["step"] < steps
    subprocess.run([*TORCHRUN, "-m", "resnet_lab", "train", "--resume", str(b), "--quiet"],
                   check=True, capture_output=True, timeout=300)
    assert load_checkpoint(b / "last.pt")["step"] == steps
    assert max_weight_diff(tmp_path / "one", b / "last.pt") < TOLERANCE


def test_sync_bn_on_cpu_is_refused_with_a_hint(tmp_path, capsys):
    """Refused after --out was made: the empty folder was left behind."""
    from resnet_lab.cli.main import main

    assert main(["train", "--sync-bn", "--device", "cpu", "--quiet", "--no-tensorboard", "--epochs", "1",
                 "--out", str(tmp_path / "never-written")]) == 2
    assert "--norm group" in capsys.readouterr().err
    assert not (tmp_path / "never-written").exists()


def test_bad_input_is_said_once_not_once_per_rank_and_each_stop_names_its_rank(tmp_path):
    bad = subprocess.run([*TORCHRUN, "-m", "resnet_lab", *RUN, "--batch-size", "33", "--steps", "2",
                          "--out", str(tmp_path / "bad")], capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0
    assert bad.stderr.count("resnet-lab: error: global batch size 33 is not divisible by world size 2") == 1
    assert "exitcode  : 2" in bad.stderr  # every rank still exits 2
    assert not (tmp_path / "bad").exists()  # the folder rank 0 made for the refused run is gone
    stop = subprocess.run([*TORCHRUN, "-m", "resnet_lab", *RUN, "--lr", "1e8", "--steps", "4",
                           "--out", str(tmp_path / "nan")], capture_output=True, text=True, timeout=300)
    assert "exitcode  : 3" in stop.stderr
    # each rank that stops says so, rank 1 labelled (a rank may stop alone: its BatchNorm statistics are its own)
    assert stop.stderr.count("resnet-lab: stopped:") == 1 and stop.stderr.count("resnet-lab: stopped (rank 1):") == 1
    assert "nonfinite_report.json" in stop.stderr  # rank 0's line, which names the report


def test_a_torchrun_run_refused_before_training_removes_the_folder_it_made_and_keeps_one_that_was_there(tmp_path):
    """The refusal of rollback under torchrun came after --out was made, and nothing removed it: an empty folder
    was left behind."""
    (tmp_path / "there").mkdir()
    for out in ("made", "there"):
        proc = subprocess.run([*TORCHRUN, "-m", "resnet_lab", *RUN, "--on-nonfinite", "rollback", "--steps", "2",
                               "--out", str(tmp_path / out)], capture_output=True, text=True, timeout=300)
        assert "exitcode  : 2" in proc.stderr
        assert proc.stderr.count("resnet-lab: error: --on-nonfinite rollback runs in one process for now") == 1
    assert [p.name for p in tmp_path.iterdir()] == ["there"]


def test_a_silent_rank_meeting_bad_input_waits_for_torchrun_so_that_local_rank_0_says_why(tmp_path):
    """torchrun stops every rank as soon as one exits. Rank 1, which leaves the line to local rank 0, exited at
    once, and rank 0 was often terminated before it said why: the user read only 'terminated (SIGTERM)' (1 run in
    3 of test_a_torchrun_run_refused_before_training_...). A silent rank now waits for torchrun's SIGTERM (at
    most 10 s), then exits 2 without a word."""
    env = {**_one_thread(), "RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2"}
    started = time.monotonic()
    rank1 = subprocess.run([sys.executable, "-m", "resnet_lab", *RUN, "--steps", "0", "--out", str(tmp_path / "r")],
                           env=env, capture_output=True, text=True, timeout=120)
    # no SIGTERM comes here (no torchrun): it waits its 10 s in full, where it left after its start-up (~2 s)
    assert rank1.returncode == 2 and time.monotonic() - started >= 10
    assert rank1.stderr == ""  # local rank 0 says it


def test_commands_other_than_train_are_refused_under_torchrun_in_one_line(tmp_path):
    """`torchrun ... -m resnet_lab sweep` ran the whole sweep in each process: the two parents fought over the runs'
    locks, and the worker one of them started took torchrun's variables, waited for a process group that never
    came, and hung until killed, with no run trained. Every command but train is now refused, by local rank 0 in
    one line that says how the command spreads its own work, and each rank exits 2 with nothing written."""
    sweep = subprocess.run([*TORCHRUN, "-m", "resnet_lab", "sweep", "--model", "resnet8", "--data", "digits",
                            "--steps", "2", "--out", str(tmp_path / "sweep")], capture_output=True, text=True,
                           timeout=300)
    assert "exitcode  : 2" in sweep.stderr
    assert sweep.stderr.count("resnet-lab: error: resnet-lab sweep does not run under torchrun: each of its 2 "
                              "processes would do the whole job; run it without torchrun (--devices spreads its "
                              "runs over one machine's GPUs, --shard I/N over machines)") == 1
    assert not (tmp_path / "sweep").exists()


def test_a_rank_other_than_0_leaves_the_making_of_the_run_folder_to_rank_0(tmp_path, monkeypatch):
    """Every rank made --out: when another rank made it first, rank 0 took it for a folder that was there before,
    and a refused run left it behind (now and then: it depended on which rank got there first)."""
    from resnet_lab.training.run_files import prepare_run_dir, release_run_dir

    monkeypatch.setenv("WORLD_SIZE", "2")
    for rank, made in (("1", False), ("0", True)):
        monkeypatch.setenv("RANK", rank)
        monkeypatch.setenv("LOCAL_RANK", rank)
        run_dir = prepare_run_dir(str(tmp_path / "run"), resuming=False)
        assert run_dir.exists() == made
    release_run_dir(run_dir)  # rank 0's: the refused run's folder, which it made, goes again
    assert not run_dir.exists()


def test_a_rank_other_than_0_never_deletes_the_write_in_progress_of_the_run_that_holds_the_folder(tmp_path,
                                                                                                  monkeypatch):
    from resnet_lab.files import try_lock
    from resnet_lab.training.run_files import prepare_run_dir, release_run_dir

    held = tmp_path / "run"
    held.mkdir()
    writing = held / ".last.pt.0123456789abcdef.tmp"  # another run's checkpoint, half written
    writing.write_bytes(b"half")
    fd = try_lock(held)  # that run holds the folder
    try:
        # rank 1 of a second torchrun group given --resume on the folder: its rank 0 is refused by the lock
        monkeypatch.setenv("RANK", "1")
        monkeypatch.setenv("LOCAL_RANK", "1")
        monkeypatch.setenv("WORLD_SIZE", "2")
        release_run_dir(prepare_run_dir(str(held), resuming=True))
        assert writing.read_bytes() == b"half"
    finally:
        os.close(fd)


def test_the_records_and_report_of_a_torchrun_run_say_how_many_ranks_trained_it(tmp_path):
    import json

    out = tmp_path / "two"
    proc = subprocess.run([*TORCHRUN, "-m", "resnet_lab", *RUN, "--steps", "4", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert ", cpu x 2 ranks, 4 steps" in proc.stdout
    result = json.loads((out / "result.json").read_text())
    assert result["world_size"] == 2 and result["processes"] == 1  # two ranks side by side, one attempt
    page = (out / "report.html").read_text()
    assert "<dt>world_size</dt><dd>2</dd>" in page
    assert "images/s on cpu x 2 ranks" in page  # the throughput is the two ranks', not one device's


def test_only_the_process_groups_own_errors_read_as_a_lost_rank():
    """Any other error (out of memory, a bug) keeps its traceback: only gloo's or NCCL's becomes the one line."""
    from resnet_lab.training.distributed import DistContext, lost_ranks

    two = DistContext(rank=1, world_size=2)
    gloo = RuntimeError("[/pytorch/third_party/gloo/gloo/transport/tcp/unbound_buffer.cc:78] Timed out waiting "
                        "10000ms for recv operation to complete")
    assert str(lost_ranks(gloo, two, 10)).startswith("rank 1: lost the other ranks mid-collective (Timed out "
                                                     "waiting 10000ms for recv operation to complete): a rank died")
    assert lost_ranks(RuntimeError("CUDA out of memory"), two, 10) is None
    assert lost_ranks(gloo, DistContext(), 10) is None  # one process has no other ranks to lose
