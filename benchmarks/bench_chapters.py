"""Run each chapter as a Colab reader would: alone, in a fresh folder, kernel and empty cache.

For every chapter ``book/NN_*.ipynb`` this copies the notebook into a new temporary folder,
points ``SKDTUTOR_CACHE`` at an empty folder inside it (so nothing an earlier chapter or an
earlier build cached is reused), executes it top to bottom with a fresh kernel (nbclient),
and prints the wall time, the peak memory of the kernel's process tree (RSS summed over the
kernel and its children, sampled every 0.1 s; ``ru_maxrss`` of the kernel as a cross-check)
and the slowest cell. Each chapter runs in its own Python process. Not a test::

    python benchmarks/bench_chapters.py                       # every chapter
    python benchmarks/bench_chapters.py --chapters 01,03      # some
    python benchmarks/bench_chapters.py --timeout 300 --json chapters.json
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"


# -- memory of a process tree -----------------------------------------------------------------
def _children_proc(pid: int) -> list[int]:
    """Descendants of ``pid`` from /proc (used when psutil is missing)."""
    parent = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                parent[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    tree, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        tree += kids
        frontier += kids
    return tree


def _rss_proc(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_rss(pid: int) -> int:
    """Bytes resident in the process tree under ``pid`` (its descendants, not ``pid`` itself)."""
    try:
        import psutil
    except ImportError:
        return sum(_rss_proc(p) for p in _children_proc(pid))
    total = 0
    for child in psutil.Process(pid).children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            pass
    return total


class PeakSampler(threading.Thread):
    def __init__(self, pid: int, every: float = 0.1):
        super().__init__(daemon=True)
        self.pid, self.every, self.peak = pid, every, 0
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            self.peak = max(self.peak, tree_rss(self.pid))
            self._halt.wait(self.every)

    def stop(self) -> int:
        self._halt.set()
        self.join()
        return self.peak


# -- one chapter (runs in its own process) ------------------------------------------------------
def _seconds(cell) -> float | None:
    timing = cell.get("metadata", {}).get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not (start and end):
        return None
    parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))
    return (parse(end) - parse(start)).total_seconds()


def run_one(notebook: Path, timeout: int) -> dict:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    work = Path(tempfile.mkdtemp(prefix=f"chapter-{notebook.stem[:2]}-"))
    try:
        shutil.copy(notebook, work / notebook.name)
        cache = work / "skdtutor-cache"
        cache.mkdir()
        os.environ["SKDTUTOR_CACHE"] = str(cache)      # the kernel inherits this environment
        nb = nbformat.read(work / notebook.name, as_version=4)
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(work)}})
        sampler = PeakSampler(os.getpid())
        sampler.start()
        error = None
        start = time.perf_counter()
        try:
            client.execute()
        except (CellExecutionError, CellTimeoutError) as exc:
            error = str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else type(exc).__name__
        wall = time.perf_counter() - start
        peak = sampler.stop()
        code = [(i, _seconds(c)) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
        timed = [(i, s) for i, s in code if s is not None]
        slowest = max(timed, key=lambda t: t[1]) if timed else (None, None)
        return {"chapter": notebook.stem, "ok": error is None, "error": error, "wall_s": round(wall, 1),
                "peak_rss_mib": round(peak / 2**20, 1),
                # ru_maxrss of the largest finished child (the kernel), KiB on Linux
                "kernel_maxrss_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
                "code_cells": len(code), "slowest_cell": slowest[0],
                "slowest_cell_s": None if slowest[1] is None else round(slowest[1], 1),
                "cache_mib": round(sum(f.stat().st_size for f in cache.rglob("*") if f.is_file()) / 2**20, 1)}
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- driver ------------------------------------------------------------------------------------
def chapters(selection: str | None) -> list[Path]:
    found = sorted(BOOK.glob("[0-9][0-9]_*.ipynb"))
    if not selection:
        return found
    wanted = [s.strip() for s in selection.split(",") if s.strip()]
    picked = [p for p in found if any(p.stem.startswith(w.zfill(2)) for w in wanted)]
    missing = [w for w in wanted if not any(p.stem.startswith(w.zfill(2)) for p in found)]
    if missing:
        raise SystemExit(f"no chapter {missing} in {BOOK} (have {[p.stem[:2] for p in found]})")
    return picked


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chapters", help="comma-separated chapter numbers, e.g. 01,03 (default: all)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--_run-one", dest="run_one", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run_one:
        print(json.dumps(run_one(args.run_one, args.timeout)))
        return 0

    print(f"# {os.cpu_count()} CPUs, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}, "
          f"Python {sys.version.split()[0]}; each chapter alone, fresh kernel, empty SKDTUTOR_CACHE")
    header = f"{'chapter':<36} {'status':<6} {'wall s':>7} {'peak MiB':>9} {'kernel maxrss':>13} {'slowest cell':>14}"
    print(header)
    print("-" * len(header))
    results = []
    for nb in chapters(args.chapters):
        proc = subprocess.run([sys.executable, __file__, "--_run-one", str(nb), "--timeout", str(args.timeout)],
                              capture_output=True, text=True)
        try:
            result = json.loads(proc.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            result = {"chapter": nb.stem, "ok": False, "error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
        results.append(result)
        slowest = (f"{result['slowest_cell_s']:.1f} s (#{result['slowest_cell']})"
                   if result.get("slowest_cell_s") is not None else "-")
        print(f"{nb.stem:<36} {'ok' if result['ok'] else 'FAIL':<6} {result.get('wall_s', float('nan')):>7.1f} "
              f"{result.get('peak_rss_mib', float('nan')):>9.1f} {result.get('kernel_maxrss_mib', float('nan')):>13.1f} "
              f"{slowest:>14}", flush=True)
        if not result["ok"]:
            print(f"    error: {result['error']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
