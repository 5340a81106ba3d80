"""Pack a lent GPU call's results and the partial state of its sweeps into one .tgz under a size limit.

A lent machine returns at most 64 MiB per call, and the next session carries the archive back in
(64 MiB per call, the working tree included), so the archive must stay under ``--limit-mib``.
What goes in, in this order:

1. every file under ``--results`` (benchmark JSON, logs) as ``results/...``;
2. every file under ``--state`` except checkpoints (``*.pt``) and files over 4 MiB, as ``state/...``:
   sweep.json, each run's sweep_run.json, config.json, metrics.jsonl, worker logs, results.json;
3. the unfinished runs' ``last.pt`` (what a sweep resumes from), most advanced run first, while the
   archive stays under the limit; the rest go to parts 1, 2, ... (``--part K``, one archive per
   call). Never a finished run's checkpoints (its ``result.json`` says it finished: its records hold
   its results, and the sweep counts it done without them), nor ``best.pt`` and other checkpoints (a
   resumed run writes a new ``best.pt`` when it next improves). Measured 2026-11-29 on CPU (paper
   recipe): last.pt of ResNet-20 2.2 MB, ResNet-56 7.0 MB (weights and momentum), so 8 unfinished
   runs of the reproduction (`--jobs 8`) hold at most about 56 MB.

``pack_manifest.json`` (in the archive and printed) lists what was kept and what is in other parts:
a run whose ``last.pt`` does not come back restarts from step 0. Unpack with
``tar xzf ARCHIVE -C DIR`` and point the same sweep commands at ``DIR/state/...``.

    python benchmarks/pack_run_state.py --state /tmp/reproduce --results $OUT/results --out $OUT/session.tgz
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

SMALL = 4 * 2**20  # non-checkpoint files above this are left out (and listed)
HEADER = 1024  # tar header and padding per file, an upper bound


def _files(root: Path | None) -> list[Path]:
    if root is None or not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def _progress(last_pt: Path) -> int:
    """The run's step from its metrics (cheaper than loading the checkpoint); 0 if unknown."""
    try:
        lines = (last_pt.parent / "metrics.jsonl").read_text().splitlines()
        return int(json.loads(lines[-1])["step"]) if lines else 0
    except (OSError, ValueError, KeyError):
        return 0


def plan(state: Path | None, results: Path | None, limit: int, part: int = 0) -> dict:
    """Which files go into part ``part`` (name in the archive -> path), by raw size (gzip does not grow
    checkpoints by more than a few bytes per MiB). Part 0 holds every small file and the first
    ``last.pt`` (most advanced first) that fit; parts 1, 2, ... the next ones: the same split on every
    call while nothing trains in between, so a session returns all of them in successive calls."""
    small, left_out, used = {}, [], 0
    for root, prefix in ((results, "results"), (state, "state")):
        for path in _files(root):
            size = path.stat().st_size
            if path.suffix == ".pt":
                continue
            if size > SMALL:
                left_out.append({"file": f"{prefix}/{path.relative_to(root)}", "bytes": size, "why": "over 4 MiB"})
                continue
            small[f"{prefix}/{path.relative_to(root)}"] = path
            used += size + HEADER
    finished = [p for p in _files(state) if p.name == "last.pt" and (p.parent / "result.json").is_file()]
    checkpoints = sorted((p for p in _files(state) if p.name == "last.pt" and p not in finished),
                         key=lambda p: (-_progress(p), str(p)))
    reserve = 64 * 1024 + HEADER  # the manifest
    parts, fill = [[]], used + reserve
    for path in checkpoints:  # next-fit, in order: part k holds a contiguous stretch of the ranking
        size = path.stat().st_size + HEADER
        if fill + size > limit and parts[-1]:
            parts.append([])
            fill = reserve
        parts[-1].append(path)
        fill += size
    chosen = dict(small) if part == 0 else {}
    for path in parts[part] if part < len(parts) else []:
        chosen[f"state/{path.relative_to(state)}"] = path
    for k, paths in enumerate(parts):
        if k != part:
            left_out += [{"file": f"state/{p.relative_to(state)}", "bytes": p.stat().st_size, "step": _progress(p),
                          "why": f"in part {k}"} for p in paths]
    for path in _files(state):
        if path.suffix == ".pt" and (path.name != "last.pt" or path in finished):
            left_out.append({"file": f"state/{path.relative_to(state)}", "bytes": path.stat().st_size,
                             "why": "the run finished" if path in finished else "not needed to resume"})
    return {"files": chosen, "left_out": left_out, "parts": len(parts) if checkpoints else 1}


def pack(state: Path | None, results: Path | None, out: Path, limit_mib: float, part: int = 0) -> dict:
    limit = int(limit_mib * 2**20)
    chosen = plan(state, results, limit, part)
    manifest = {"packed": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": os.uname().nodename,
                "limit_mib": limit_mib, "part": part, "parts": chosen["parts"],
                "state_root": str(state) if state else None,
                "kept": {name: path.stat().st_size for name, path in chosen["files"].items()},
                "checkpoints_kept": sorted(n for n in chosen["files"] if n.endswith(".pt")),
                "left_out": chosen["left_out"]}
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with tarfile.open(partial, "w:gz", compresslevel=6) as archive:
        for name, path in chosen["files"].items():
            archive.add(path, arcname=name)
        data = json.dumps(manifest, indent=2).encode()
        info = tarfile.TarInfo("pack_manifest.json")
        info.size, info.mtime = len(data), int(time.time())
        archive.addfile(info, io.BytesIO(data))
    partial.replace(out)
    manifest["archive_bytes"] = out.stat().st_size
    if manifest["archive_bytes"] > limit:  # should not happen (raw sizes bound it); say so loudly
        print(f"pack_run_state: WARNING {out} is {manifest['archive_bytes']} bytes, over {limit}", file=sys.stderr)
    return manifest


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--state", type=Path, help="folder with the sweep directories (kept on the machine)")
    p.add_argument("--results", type=Path, help="folder with the call's JSON and logs")
    p.add_argument("--out", type=Path, required=True, help="the .tgz to write")
    p.add_argument("--part", type=int, default=0, help="which part (0: small files and the first last.pt)")
    p.add_argument("--limit-mib", type=float, default=56.0,
                   help="archive size bound (default 56: 64 MiB per call less the working tree and slack)")
    args = p.parse_args(argv)
    manifest = pack(args.state, args.results, args.out, args.limit_mib, args.part)
    kept = manifest["checkpoints_kept"]
    more = manifest["parts"] - 1 - args.part
    print(f"packed {args.out}: part {args.part} of 0..{manifest['parts'] - 1}, "
          f"{manifest['archive_bytes'] / 2**20:.1f} MiB (limit {args.limit_mib} MiB), "
          f"{len(manifest['kept'])} files, {len(kept)} last.pt"
          + (f"; {more} more part(s) hold the other last.pt: return them with CALL=pack PART=k before the "
             "machine goes back, or those runs restart from step 0" if more > 0 else ""))
    return manifest


if __name__ == "__main__":
    main()
