"""The servers of a cluster study as the study reaches them: commands over
ssh, copies checked by hash, processes stopped by their PID on their own
server, a lock against a second study, and the CPU sampled there.

- `Server`: one server. `localhost` runs its commands here; any other is
  reached with `ssh -F SSH_CONFIG NAME` (BatchMode: a key, never a password).
  A remote server gets a folder of its own for this study (`root`, under
  /tmp, unique to the run): the study's work folder and results folder are
  mirrored into it (`path`), so a host there is given paths it can open.
- `RemoteProcess`: a process started on another server through ssh. Its
  stdout and stderr come back through ssh into the study's log files; it
  prints its PID on that server first on stderr, and `terminate`/`kill`
  signal that PID there (killing the local ssh alone would leave it
  running: without a tty nothing tells it its ssh is gone).
- `sweep`: at the end, any process on the server still running a program
  from this study's folder (or given a path in it) is killed by its PID, and
  the folder removed. Never `mn -c`.
- The lock: a directory per network namespace of a server
  (/tmp/peer-lab-cluster-study-INODE.lock), made with mkdir; a second study
  on the same server is refused, since both would make bridges and links
  with the same names in the same namespace.
"""

import hashlib
import os
import shlex
import subprocess
import tempfile
import threading
import time
from typing import List, Optional, Tuple

from . import fidelity

REMOTE_PID = "peer-lab remote pid "
START_LEAD = 1.0  # seconds between asking for a process and its start (ssh takes 0.1 to 0.4 s here)
LOCK = "/tmp/peer-lab-cluster-study-$(stat -L -c %i /proc/self/ns/net).lock"


class RemoteError(Exception):
    """A server did not do what the study asked, with what it said."""


def boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as boot:
            return boot.read().strip()
    except OSError:
        return "unknown"


class Server:
    """One server of the cluster (see the module docs)."""

    def __init__(self, name: str, ssh_config: Optional[str] = None, root: Optional[str] = None):
        self.name = name
        self.local = name == "localhost"
        # One master connection per server, so that starting a process there
        # takes milliseconds, not an ssh handshake (a third of a second).
        self.control = None if self.local else tempfile.mkdtemp(prefix="peer-lab-ssh-")
        shared = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
        if self.control:
            shared += ["-o", f"ControlPath={self.control}/master", "-o", "ControlMaster=auto", "-o", "ControlPersist=120"]
        self.ssh = ["ssh"] + (["-F", ssh_config] if ssh_config else []) + shared
        self.scp = ["scp", "-q", "-p"] + (["-F", ssh_config] if ssh_config else []) + shared
        self.root = None if self.local else root
        self.mirrors: List[Tuple[str, str]] = []  # (local folder, its copy on this server)
        self.owner = f"{boot_id()} {os.getpid()}"

    def disconnect(self) -> None:
        """Ends the master connection and removes its socket's folder."""
        if self.control:
            if os.path.exists(os.path.join(self.control, "master")):
                subprocess.run(self.ssh + ["-O", "exit", self.name], capture_output=True, timeout=20)
            subprocess.run(["rm", "-rf", self.control])
            self.control = None

    def argv(self, script: str) -> List[str]:
        """The command line that runs the shell `script` on this server."""
        return ["sh", "-c", script] if self.local else self.ssh + [self.name, script]

    def run(self, script: str, timeout: float = 60.0, check: bool = True) -> str:
        """Runs `script` there; its output (stdout and stderr). RemoteError if it fails and `check`."""
        try:
            done = subprocess.run(self.argv(script), capture_output=True, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise RemoteError(f"{self.name}: timed out after {timeout:g} s: {script[:80]}") from None
        out = (done.stdout + done.stderr).strip()
        if check and done.returncode != 0:
            raise RemoteError(f"{self.name}: {script[:80]!r} failed (exit {done.returncode}): {out[-300:]}")
        return out

    def address(self) -> str:
        """The address ssh connects to (`ssh -G`), for Mininet's tunnels."""
        if self.local:
            return "127.0.0.1"
        shown = subprocess.run(self.ssh + ["-G", self.name], capture_output=True, text=True, timeout=10)
        for line in shown.stdout.splitlines():
            if line.startswith("hostname "):
                return line.split()[1]
        raise RemoteError(f"{self.name}: ssh -G names no host name: {shown.stderr.strip()}")

    # Paths and copies.

    def mirror(self, local_folder: str, name: str) -> None:
        """Paths under `local_folder` live under ROOT/NAME on this server."""
        if not self.local:
            self.mirrors.append((os.path.abspath(local_folder), f"{self.root}/{name}"))

    def path(self, local_path: str) -> str:
        """Where `local_path` is on this server (itself when not mirrored)."""
        local_path = os.path.abspath(local_path)
        for folder, there in self.mirrors:
            if local_path == folder or local_path.startswith(folder + os.sep):
                return there + local_path[len(folder):]
        return local_path

    def copy(self, local_path: str) -> str:
        """Copies a file to its mirrored path there and checks its SHA-256; the remote path."""
        there = self.path(local_path)
        if self.local or there == os.path.abspath(local_path):
            return local_path
        self.run(f"mkdir -p {shlex.quote(os.path.dirname(there))}")
        done = subprocess.run(self.scp + [local_path, f"{self.name}:{there}"], capture_output=True, text=True,
                              timeout=600, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise RemoteError(f"copying {local_path} to {self.name}: {done.stderr.strip()[-300:]}")
        want = sha256_of(local_path)
        got = self.run(f"sha256sum {shlex.quote(there)}").split()[0]
        if got != want:
            raise RemoteError(f"{self.name}:{there} has SHA-256 {got[:16]}…, not {want[:16]}… as copied")
        return there

    def sha1(self, path: str) -> Optional[str]:
        """The SHA-1 of a file there, None if it is not there."""
        out = self.run(f"[ -f {shlex.quote(path)} ] && sha1sum {shlex.quote(path)} || true", timeout=300)
        return out.split()[0] if out else None

    def fetch_folder(self, there: str, local_folder: str) -> None:
        """Copies the files of folder `there` on this server into `local_folder` (tar over ssh)."""
        os.makedirs(local_folder, exist_ok=True)
        pack = subprocess.Popen(self.argv(f"[ -d {shlex.quote(there)} ] && tar -C {shlex.quote(there)} -cf - . || true"),
                                stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        subprocess.run(["tar", "-C", local_folder, "-xf", "-"], stdin=pack.stdout, capture_output=True, timeout=300)
        pack.stdout.close()
        pack.wait(timeout=60)

    # Processes.

    def popen(self, argv: List[str], stdout, stderr, attach: Optional[int] = None, env: Optional[dict] = None,
              lead: float = START_LEAD):
        """Starts `argv` there (in the namespaces of PID `attach`, with mnexec),
        its output into the local files; a RemoteProcess.

        It begins `lead` seconds after this call, by the wall clock, whatever
        ssh took to get there: processes started together here begin together
        on every server (as long as ssh takes less than `lead`), and each
        prints when it began, which the study takes as its start."""
        command = " ".join(shlex.quote(a) for a in argv)
        if env:
            command = "env " + " ".join(shlex.quote(f"{k}={v}") for k, v in env.items()) + " " + command
        if attach:
            command = f"mnexec -a {int(attach)} {command}"
        spawned = (time.monotonic(), time.time())
        wait = (f"sleep $(awk -v t={spawned[1] + lead:.6f} -v n=$(date +%s.%N) "
                "'BEGIN { d = t - n; if (d > 0) printf \"%.6f\", d; else print 0 }'); ")
        script = f"{wait}echo '{REMOTE_PID}'$$ $(date +%s.%N) >&2; exec {command}"
        ssh = subprocess.Popen(self.argv(script), stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL,
                               start_new_session=True)
        return RemoteProcess(self, ssh, getattr(stderr, "name", None), spawned)

    def sweep(self, folder: Optional[str] = None) -> List[int]:
        """Kills (by PID) every process there that runs a program from ROOT
        (or `folder`) or was given a path in it, then removes ROOT (never
        `folder`); the PIDs killed."""
        folder = folder or self.root
        if not folder:
            return []
        root = shlex.quote(folder)
        skip = os.getpid() if self.local else 0  # never the study itself
        script = f"""root={root}; me=$$
for d in /proc/[0-9]*; do
  p=${{d#/proc/}}; [ "$p" = "$me" ] || [ "$p" = {skip} ] && continue
  hit=
  case "$(readlink "$d/exe" 2>/dev/null)" in "$root"/*) hit=1;; esac
  [ -z "$hit" ] && tr '\\0' '\\n' < "$d/cmdline" 2>/dev/null | tail -n +2 | grep -q "^$root/" && hit=1
  [ -n "$hit" ] && kill -KILL "$p" 2>/dev/null && echo "$p"
done
[ "$root" = {shlex.quote(self.root or "")} ] && case "$root" in /tmp/peer-lab-study-*) rm -rf "$root";; esac; true"""
        out = self.run(script, check=False)
        return [int(p) for p in out.split() if p.isdigit()]

    # The lock.

    def lock(self) -> None:
        """Takes this server's lock, or raises RemoteError naming its holder.
        A lock left by a study of this machine whose process is gone is taken over."""
        for _ in range(2):
            out = self.run(f'lock={LOCK}; if mkdir "$lock" 2>/dev/null; then echo {shlex.quote(self.owner)} > "$lock/owner"; '
                           f'echo TAKEN; else echo HELD; cat "$lock/owner" 2>/dev/null; echo "$lock"; fi')
            lines = out.splitlines()
            if lines and lines[0] == "TAKEN":
                return
            holder = lines[1].split() if len(lines) > 2 else []
            path = lines[-1] if lines else LOCK
            if len(holder) == 2 and holder[0] == boot_id() and holder[1].isdigit() and not _alive(int(holder[1])):
                self.run(f"rm -rf {shlex.quote(path)}")
                continue
            raise RemoteError(f"another cluster study holds {self.name} ({path}: "
                              f"{' '.join(holder) or 'no owner written'}); run one at a time, or remove "
                              "the lock if that study is gone")
        raise RemoteError(f"{self.name}: could not take the study lock")

    def unlock(self) -> None:
        self.run(f'lock={LOCK}; [ "$(cat "$lock/owner" 2>/dev/null)" = {shlex.quote(self.owner)} ] && rm -rf "$lock"; true',
                 check=False)

    # The CPU.

    def cpu_sampler(self) -> "StreamSampler":
        """/proc/stat's first line every second from this server, over one ssh."""
        return StreamSampler(self.argv("while :; do head -1 /proc/stat; sleep 1; done"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as data:
        for chunk in iter(lambda: data.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class RemoteProcess:
    """A process on another server (see the module docs); Popen's interface."""

    def __init__(self, server: Server, ssh: subprocess.Popen, err_path: Optional[str], spawned: Tuple[float, float]):
        self.server = server
        self.ssh = ssh
        self.pid = ssh.pid  # the local ssh's; `remote_pid` is the process's own
        self.err_path = err_path
        self.spawned = spawned  # (time.monotonic(), time.time()) just before ssh was started
        self.marker = None  # (PID, wall-clock time) the process printed there before it began

    def _read_marker(self, timeout: float) -> Optional[Tuple[int, float]]:
        deadline = time.monotonic() + timeout
        while self.marker is None:
            try:
                # ssh may say something first (a refused multiplexed session).
                with open(self.err_path, encoding="utf-8", errors="replace") as err:
                    head = err.read(8192).split("\n")[:-1]
                line = next((l for l in head if l.startswith(REMOTE_PID)), None)
                if line is not None:
                    pid, wall = line[len(REMOTE_PID):].split()
                    self.marker = (int(pid), float(wall))
                    break
            except (OSError, TypeError, ValueError):
                pass
            if time.monotonic() >= deadline or self.ssh.poll() is not None:
                return None
            time.sleep(0.02)
        return self.marker

    def remote_pid(self, timeout: float = 10.0) -> Optional[int]:
        marker = self._read_marker(timeout)
        return marker[0] if marker else None

    def started_at(self) -> Optional[float]:
        """When the process began there, on this machine's monotonic clock:
        ssh takes a while to start it, and its own timer starts only then.
        (Its server's wall clock against ours: exact for a namespace server,
        as good as NTP between real servers.)"""
        marker = self._read_marker(10.0)
        if marker is None:
            return None
        return self.spawned[0] + max(0.0, marker[1] - self.spawned[1])

    def _signal(self, name: str) -> None:
        pid = self.remote_pid()
        if pid:
            self.server.run(f"kill -{name} {pid} 2>/dev/null; true", timeout=20, check=False)

    def poll(self):
        return self.ssh.poll()

    def wait(self, timeout: Optional[float] = None):
        return self.ssh.wait(timeout=timeout)

    def terminate(self) -> None:
        if self.ssh.poll() is None:
            self._signal("TERM")

    def kill(self) -> None:
        if self.ssh.poll() is None:
            self._signal("KILL")
            self.ssh.kill()


class StreamSampler:
    """fidelity.Sampler's interface over a command that prints /proc/stat's
    first line every second (another server's, over ssh)."""

    def __init__(self, argv: List[str]):
        self.argv = argv
        self.samples: List[fidelity.Counters] = []
        self.proc = None
        self.thread = None

    def start(self) -> "StreamSampler":
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, text=True, start_new_session=True)
        self.thread = threading.Thread(target=self._read, name="cpu-idle-remote", daemon=True)
        self.thread.start()
        return self

    def _read(self) -> None:
        for line in self.proc.stdout:
            sample = fidelity.parse_counters(line)
            if sample is not None:
                self.samples.append(sample)

    def stop(self) -> dict:
        time.sleep(0.1)
        self.proc.kill()
        self.proc.wait(timeout=10)
        self.thread.join(timeout=10)
        return fidelity.summarize_samples(self.samples)
