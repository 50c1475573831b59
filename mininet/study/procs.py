"""The processes a study starts: spawning them on a host, reading their JSON
lines, and stopping them, always by PID and only the ones started here
(`popen.terminate()`/`kill()`: a subprocess.Popen here, or a
remote.RemoteProcess that signals its PID on its own server)."""

import json
import os
import time
from typing import Callable, List, Optional


class Proc:
    """One started process; stdout and stderr go to files under the log folder."""

    def __init__(self, name: str, popen, out_path: str, err_path: str, started: float):
        self.name = name
        self.popen = popen
        self.pid = popen.pid
        self.out_path = out_path
        self.err_path = err_path
        self.spawned = started  # time.monotonic() just before it was spawned
        self._started = None

    @property
    def started(self) -> float:
        """When it began (time.monotonic()): when it was spawned, or, for a
        process another server starts later (remote.RemoteProcess), when that was."""
        if self._started is None:
            began = getattr(self.popen, "started_at", None)
            self._started = (began() if began else None) or self.spawned
        return self._started

    def json_lines(self) -> List[dict]:
        """Every complete stdout line that is a JSON object."""
        try:
            with open(self.out_path, encoding="utf-8", errors="replace") as out:
                text = out.read()
        except FileNotFoundError:
            return []
        lines = []
        for line in text.split("\n")[:-1]:  # the last piece may be half written
            line = line.strip()
            if line.startswith("{"):
                try:
                    lines.append(json.loads(line))
                except ValueError:
                    pass
        return lines

    def find(self, predicate: Callable[[dict], bool]) -> Optional[dict]:
        for line in self.json_lines():
            if predicate(line):
                return line
        return None

    def alive(self) -> bool:
        return self.popen.poll() is None

    @property
    def returncode(self) -> Optional[int]:
        return self.popen.poll()

    def stderr_tail(self, lines: int = 5) -> str:
        try:
            with open(self.err_path, encoding="utf-8", errors="replace") as err:
                return "".join(err.readlines()[-lines:]).strip()
        except FileNotFoundError:
            return ""

    def stop(self, grace: float = 10.0) -> Optional[int]:
        """SIGTERM, wait up to `grace` seconds, then SIGKILL; returns the exit code."""
        if self.alive():
            try:
                self.popen.terminate()  # a RemoteProcess signals the process on its server
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=grace)
            except Exception:  # subprocess.TimeoutExpired
                self.kill()
        return self.popen.poll()

    def kill(self) -> None:
        if self.alive():
            try:
                self.popen.kill()
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=5)
            except Exception:
                pass


class Registry:
    """Every process the study started and has not yet reaped."""

    def __init__(self):
        self.procs: List[Proc] = []

    def spawn(self, host, name: str, argv: List[str], log_dir: str, env: Optional[dict] = None) -> Proc:
        os.makedirs(log_dir, exist_ok=True)
        out_path = os.path.join(log_dir, f"{name}.out")
        err_path = os.path.join(log_dir, f"{name}.err")
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            started = time.monotonic()
            popen = host.popen(argv, stdout=out, stderr=err, env=env)
        proc = Proc(name, popen, out_path, err_path, started)
        self.procs.append(proc)
        return proc

    def stop(self, proc: Proc, grace: float = 10.0) -> Optional[int]:
        code = proc.stop(grace)
        if proc in self.procs:
            self.procs.remove(proc)
        return code

    def stop_all(self, grace: float = 5.0) -> None:
        """Newest first (downloaders, then servers), each by its PID."""
        for proc in reversed(list(self.procs)):
            try:
                proc.stop(grace)
            except Exception:
                proc.kill()
            self.procs.remove(proc)


def wait_for(predicate: Callable[[], object], timeout: float, interval: float = 0.05):
    """Polls until `predicate()` is truthy (returns it) or `timeout` passes (returns None)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)
