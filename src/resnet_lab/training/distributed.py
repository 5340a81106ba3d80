"""Running under torchrun: process group set-up, reductions, and agreeing on when to stop.

Outside torchrun every function here is a no-op on a world of one process, so the
trainer has a single code path.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from ..errors import UserError, first_line
from ..runtime import launched_by_torchrun


@dataclass
class DistContext:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    control_group: object = None  # a gloo group for small CPU messages (stop flags)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """In-place sum over ranks (identity on one process)."""
        if self.enabled:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def any_rank(self, flag: bool) -> bool:
        """True if ``flag`` is set on any rank: how a signal seen by one rank stops them all."""
        if not self.enabled:
            return flag
        t = torch.tensor([int(flag)], dtype=torch.int32)
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.control_group)
        return bool(t.item())

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier(group=self.control_group)


def restart_count() -> int:
    """How many times torchrun has restarted this worker group (0 on the first attempt)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))


def init_distributed(device: torch.device, timeout_s: float = 300.0) -> tuple[DistContext, torch.device]:
    """Join the process group that torchrun describes in the environment.

    NCCL on GPUs, gloo on CPUs. The timeout bounds every collective, so a lost rank turns
    into an error instead of a silent hang.
    """
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) == 1:
        return DistContext(), device
    rank, local_rank, world = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"]), int(os.environ["WORLD_SIZE"])
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise UserError(f"rank {rank}: local rank {local_rank} has no GPU "
                            f"(only {torch.cuda.device_count()} visible); "
                            "lower --nproc_per_node")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    timeout = timedelta(seconds=timeout_s)
    try:
        dist.init_process_group(backend, store=_attempt_store(rank, world, timeout), rank=rank,
                                world_size=world, timeout=timeout)
    except Exception as exc:  # port in use, unreachable master, mismatched world size ...
        raise UserError(f"rank {rank}: could not join the process group ({backend}): "
                        f"{first_line(exc)}") from None
    control = dist.new_group(backend="gloo", timeout=timeout) if backend != "gloo" else None
    return DistContext(rank, local_rank, world, control), device


def _attempt_store(rank: int, world: int, timeout: timedelta):
    """The rendezvous store, with keys scoped to this restart attempt.

    After torchrun restarts a failed group, the agent's store still holds the previous
    attempt's peer addresses; without a per-attempt prefix, gloo connects to dead ports.
    """
    host, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
    agent_hosts_store = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    store = dist.TCPStore(host, port, world, is_master=not agent_hosts_store and rank == 0, timeout=timeout)
    return dist.PrefixStore(f"resnet-lab/attempt-{restart_count()}", store)


class RanksLost(RuntimeError):
    """This rank lost the others mid-collective (one died, or hung past ``--dist-timeout``): one line
    on each surviving rank, exit 1 (so that ``torchrun --max-restarts`` restarts the group)."""


def lost_ranks(exc: BaseException, ctx: DistContext, timeout_s: float) -> RanksLost | None:
    """``exc`` as ``RanksLost`` when it is the process group failing (gloo's or NCCL's error), else None."""
    if not ctx.enabled or not (isinstance(exc, getattr(dist, "DistError", ())) or "/gloo/" in str(exc)):
        return None
    reason = re.sub(r"^\[[^\]]*\]\s*", "", first_line(exc)).split(". ")[0]  # without gloo's source location
    return RanksLost(f"rank {ctx.rank}: lost the other ranks mid-collective ({reason}): a rank died, or hung for "
                     f"over --dist-timeout {timeout_s:g} s; last.pt is kept: torchrun --max-restarts restarts the "
                     "group from it, or run again with --resume")


def shutdown(ctx: DistContext, clean: bool = True) -> None:
    """Leave the group; after a normal finish, wait for every rank first, since a rank that
    tears down while a peer is still talking makes gloo abort that peer."""
    if ctx.enabled and dist.is_initialized():
        if clean:
            ctx.barrier()
        dist.destroy_process_group()
