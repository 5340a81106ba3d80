"""`resnet-lab` entry point: one subcommand per module in this package.

Each command module exposes ``register(subparsers)``, which adds its parser and sets
``func`` to a function taking the parsed arguments and returning an exit status. A command line
that names its command imports that module only: ``resnet-lab report`` then never imports torch.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys
import time

from .. import __version__
from ..errors import UserError
from ..runtime import launched_by_torchrun, process_age_s
from ..signals import Terminated, sigterm_raises

# Order here is the order shown by `resnet-lab --help`.
COMMANDS = ["models", "summary", "train", "report", "sweep", "evaluate", "predict", "export", "gradients", "demo",
            "degradation", "survey", "compare", "reproduce"]


class _Parser(argparse.ArgumentParser):
    """argparse prints usage plus a message on error; we want one line and status 2."""

    help_prog = None  # whose --help to point at: the named command's, for the arguments it left over

    def error(self, message: str):  # noqa: D401 - argparse API
        raise UserError(f"{message} (see '{self.help_prog or self.prog} --help')")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or of the one ``argv`` names (the others stay unimported)."""
    parser = _Parser(
        prog="resnet-lab",
        description="Build, train, debug and choose residual networks.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"resnet-lab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    named = next((a for a in argv or [] if not a.startswith("-")), None)
    for name in [named] if named in COMMANDS else COMMANDS:
        importlib.import_module(f"{__package__}.{name}").register(sub)
    _add_debug_flag(sub)
    if named in sub.choices:
        parser.help_prog = sub.choices[named].prog
    return parser


def _add_debug_flag(sub) -> None:
    """``--debug`` also after the command, at every level (`resnet-lab reproduce table6 ... --debug`);
    SUPPRESS: no default hides a leading --debug."""
    for command in sub.choices.values():
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show full tracebacks on errors")
        for action in command._actions:  # argparse has no public way to reach a parser's subcommands
            if isinstance(action, argparse._SubParsersAction):
                _add_debug_flag(action)


def main(argv: list[str] | None = None, startup_s: float | None = None) -> int:
    """Run one command; ``startup_s``: how long the process took to get here, when it was launched for this."""
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    try:
        with sigterm_raises():
            args = build_parser(argv).parse_args(argv)
            args.startup_s = startup_s
            if args.command is None:  # help, but a failure: `resnet-lab $CMD` with CMD unset must not pass
                build_parser().print_help(sys.stderr)
                raise UserError(f"no command given; choose one of: {', '.join(COMMANDS)}")
            if args.command != "train" and launched_by_torchrun():
                raise UserError(_not_under_torchrun(args))
            status = int(args.func(args) or 0)
            sys.stdout.flush()  # a reader gone before the last lines shows here, not as a failure at exit
            return status
    except UserError as exc:
        if debug:
            raise
        if _says_errors(str(exc)):
            print(f"resnet-lab: error: {exc}", file=sys.stderr)
        elif launched_by_torchrun():
            _leave_the_line_to_local_rank_0()
        return 2
    except Terminated:
        if _says_errors(""):  # under torchrun, once per machine: torchrun stops the other ranks this way
            print("resnet-lab: terminated (SIGTERM); files already written are kept", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("resnet-lab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # whatever read stdout stopped reading (`| head`): end quietly, as a Unix tool does
        stdout_gone()
        return 141  # 128 + SIGPIPE, what the shell reports for a tool that the closed pipe ended
    except OSError as exc:  # the machine, not the input (a full disk, a file made read-only): what and where
        if debug or exc.filename is None:
            raise
        what = exc.strerror or type(exc).__name__
        print(f"resnet-lab: error: {what}: {exc.filename}; files already written are kept (--debug: the "
              "traceback)", file=sys.stderr)
        return 1


def _leave_the_line_to_local_rank_0(most_s: float = 10.0) -> None:
    """Under torchrun a rank that exits makes torchrun stop the others: a silent rank that left at once got local
    rank 0 terminated before it said why, and the user read only 'terminated (SIGTERM)' (1 run in 3 here). A silent
    rank waits instead, until torchrun's SIGTERM says that another rank has exited, or ``most_s`` seconds."""
    try:
        with sigterm_raises():
            time.sleep(most_s)
    except Terminated:
        pass


def _not_under_torchrun(args) -> str:
    """Why a command other than ``train`` is refused under torchrun: every process torchrun starts would do the
    whole job (a sweep's parents fought over its runs and their workers took torchrun's variables and hung)."""
    ways = [way for flag, way in (("devices", "--devices spreads its runs over one machine's GPUs"),
                                  ("shard", "--shard I/N over machines")) if hasattr(args, flag)]
    spread = f" ({', '.join(ways)})" if ways else ""
    return (f"resnet-lab {args.command} does not run under torchrun: each of its {os.environ['WORLD_SIZE']} "
            f"processes would do the whole job; run it without torchrun{spread}. Only 'resnet-lab train' runs one "
            "training over several processes")


def _says_errors(message: str) -> bool:
    """Whether this process prints a bad-input line. Under torchrun every rank meets the same bad input:
    local rank 0 says it, once per machine (rank 0 alone on one machine), and any rank says an error of
    its own (a message that starts with its rank)."""
    return os.environ.get("LOCAL_RANK", "0") == "0" or message.startswith(f"rank {os.environ.get('RANK')}:")


def stdout_gone() -> None:
    """Send the rest of stdout to /dev/null once its reader has gone (a closed pipe), so that neither
    later lines nor the flush at exit fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


def _closed_streams_to_devnull() -> None:
    """A stdout or stderr the shell closed (`>&-`, `2>&-`, a daemon's launcher) is None to Python, and its file
    descriptor is free for the next file opened (the run's lock, a checkpoint being written) to take, where C
    code's output would then go. Point it at /dev/null, as a daemon does: the lines are dropped, and a run that
    finished no longer ends in AttributeError ('NoneType' object has no attribute 'flush') with exit 1."""
    for fd, name in ((1, "stdout"), (2, "stderr")):
        if getattr(sys, name) is not None:
            continue
        try:
            os.fstat(fd)
        except OSError:  # closed: /dev/null takes the lowest free descriptor, this one (stdout is done first)
            devnull = os.open(os.devnull, os.O_WRONLY)
            if devnull != fd:
                os.dup2(devnull, fd)
                os.close(devnull)
        setattr(sys, name, open(fd, "w", closefd=False))


def entry_point() -> int:
    """The ``resnet-lab`` console script and ``python -m resnet_lab``: ``main()``, then a quick exit.

    At exit Python garbage-collects every object left, torch's large module graph included
    (about 0.7 s after a training run on a 2-core CPU). Frozen objects are skipped; every file
    is closed by now and atexit handlers still run. Under torchrun a rank that has left its group
    exits at once, without the interpreter's teardown: there, gloo's communication threads were
    sometimes destroyed out of order and aborted a rank that had stopped cleanly ("terminate called
    without an active exception", exit -6; about 1 pre-empted run in 4 on a 2-core CPU), which
    torchrun reported as a failure of the whole job.
    """
    _closed_streams_to_devnull()
    status = main(startup_s=process_age_s())
    if launched_by_torchrun():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    gc.freeze()
    return status


if __name__ == "__main__":
    sys.exit(entry_point())
