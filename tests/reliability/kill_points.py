"""What the SIGKILL trial scripts share: forked work, a kill after the Nth traced batch, the trial loop.

The trial scripts (``crash_writer.py``, ``recompress_crash.py``; the tests start them with
:func:`run_script`) import LanceDB once, then fork one
child per trial that does the work under test and logs each encoded batch to a trace file; the parent
kills the child a random moment after the trace reaches the trial's target batch.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path


def in_child(work: Callable[[], object]) -> int:
    """Run ``work`` in a forked child (which then exits); return its pid."""
    pid = os.fork()
    if pid == 0:
        try:
            work()
        finally:
            os._exit(0)
    return pid


def traced_batches(trace: Path) -> int:
    return len(trace.read_text().splitlines()) if trace.exists() else 0


def kill_after(pid: int, trace: Path, target: int, linger: float, timeout: float = 20) -> tuple[int, bool]:
    """Wait until ``trace`` holds ``target`` batches (or the child ended), wait up to ``linger`` s more, SIGKILL.

    Returns (batches traced by then, whether the kill landed before the child ended).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if traced_batches(trace) >= target or os.waitpid(pid, os.WNOHANG) != (0, 0):
            break
        time.sleep(0.0005)
    time.sleep(linger)
    try:
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        killed = os.WIFSIGNALED(status)
    except (ProcessLookupError, ChildProcessError):
        killed = False
    return traced_batches(trace), killed


def run_trials(seed_table: Callable[[Path], Path], run_trial: Callable[[Path, Path, int, random.Random], dict]) -> None:
    """``python SCRIPT ROOT TRIALS SEED``: seed the table once, then print one JSON line per trial."""
    root, trials, seed = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    warnings.filterwarnings("ignore", message="lancedb fork support is experimental")
    rng = random.Random(seed)
    seeded = seed_table(root)
    for trial in range(trials):
        print(json.dumps(run_trial(root, seeded, trial, rng)), flush=True)


def run_script(script: str, root: Path, trials: int, seed: int) -> list[dict]:
    """Run the trial script ``script`` (a file beside this one) for ``trials`` trials; its JSON lines, one per trial."""
    path = Path(__file__).with_name(script)
    done = subprocess.run(
        [sys.executable, str(path), str(root), str(trials), str(seed)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
