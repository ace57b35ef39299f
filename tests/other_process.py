"""One other Python process that runs commands as ``python ...`` would, started once per test session.

Tests that need a second process (a reader of what this one wrote, a user running an example or the
CLI) send it command lines instead of starting a new interpreter each: the imports and the model load
are paid once. Each command gets its own ``sys.argv``, working directory, fresh ``__main__`` namespace
and its own stdout and stderr (file descriptors 1 and 2, so output from C code and progress bars is
caught too); its exit status is what ``python`` would return (an uncaught exception: 1, with the
traceback on its stderr).

What stays between commands is the process: loaded modules, the shared default encoder, warnings
already shown once. A check of what a *fresh* process prints (tests/test_quiet_output.py) reads the
output of the first commands the process ran (:attr:`OtherProcess.first_runs`).

Run as ``python other_process.py RESPONSE_FD``: reads one JSON request per line on stdin, writes one
JSON reply per line to RESPONSE_FD.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Run:
    """What one command line did: ``returncode``, ``stdout``, ``stderr`` (as ``subprocess.run`` gives them)."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    def check(self) -> Run:
        """This run, or an AssertionError with its stderr when it failed."""
        assert self.returncode == 0, f"{self.args} exited {self.returncode}:\n{self.stderr[-4000:]}"
        return self


class OtherProcess:
    """The client: :meth:`run` sends a command line and waits for what it did; :meth:`close` ends the process."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.first_runs: dict[str, Run] = {}
        self._count = 0
        self._buffer = b""
        read, write = os.pipe()
        self._log = (self.root / "process.log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, __file__, str(write)],
            stdin=subprocess.PIPE,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            pass_fds=[write],
            text=True,
            cwd=self.root,
        )
        os.close(write)
        self._replies = read

    def run(self, args: list[str], cwd: str | Path | None = None, timeout: float = 600) -> Run:
        """Run ``python *args`` in the other process (``-c CODE ...``, ``-m MODULE ...`` or ``SCRIPT ...``)."""
        self._count += 1
        out, err = self.root / f"{self._count}.out", self.root / f"{self._count}.err"
        request = {"args": [str(a) for a in args], "cwd": str(cwd or self.root), "out": str(out), "err": str(err)}
        assert self.proc.stdin is not None and self.proc.poll() is None, self._died()
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        reply = json.loads(self._read_line(timeout))
        return Run(request["args"], reply["returncode"], out.read_text(), err.read_text())

    def _read_line(self, timeout: float) -> str:
        with selectors.DefaultSelector() as selector:
            selector.register(self._replies, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                if not selector.select(timeout):
                    self.close()
                    raise TimeoutError(f"the other process gave no reply in {timeout} s\n{self._died()}")
                chunk = os.read(self._replies, 65536)
                if not chunk:
                    raise RuntimeError(f"the other process ended\n{self._died()}")
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()

    def _died(self) -> str:
        self._log.flush()
        return (self.root / "process.log").read_text()[-4000:]

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        os.close(self._replies)
        self._log.close()


def _serve(replies: int) -> None:
    import runpy
    import traceback

    base_path = list(sys.path)
    for line in sys.stdin:
        request = json.loads(line)
        args = request["args"]
        saved = os.dup(1), os.dup(2)
        returncode = 0
        with open(request["out"], "w") as out, open(request["err"], "w") as err:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            os.chdir(request["cwd"])
            try:
                if args[0] == "-c":
                    sys.argv = ["-c", *args[2:]]
                    sys.path[:] = ["", *base_path[1:]]
                    exec(compile(args[1], "<string>", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
                elif args[0] == "-m":
                    sys.argv = [args[1], *args[2:]]
                    sys.path[:] = [request["cwd"], *base_path[1:]]
                    runpy.run_module(args[1], run_name="__main__", alter_sys=True)
                else:
                    sys.argv = list(args)
                    sys.path[:] = [str(Path(args[0]).resolve().parent), *base_path[1:]]
                    runpy.run_path(args[0], run_name="__main__")
            except SystemExit as exit_:
                code = exit_.code
                returncode = code if isinstance(code, int) else (0 if code is None else 1)
                if code is not None and not isinstance(code, int):
                    print(code, file=sys.stderr)
            except BaseException:  # what python prints and returns for an uncaught exception
                traceback.print_exc()
                returncode = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
                os.close(saved[0])
                os.close(saved[1])
        os.write(replies, (json.dumps({"returncode": returncode}) + "\n").encode())


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
