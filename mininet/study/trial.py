"""One trial: one mode, N downloaders, one repetition, on any set of hosts.

A host is anything with `name`, `ip`, `popen(argv, stdout=, stderr=, env=)`,
`http_get(url, timeout)`, `path(local_path)` (where that file is for the
host) and `sha1(path)`: a process on loopback (`local`), a Mininet host
(`net`) or a Mininet host on another server (`cluster`). The link rates are
either real (Mininet's tc) or emulated by the flags `limits` adds to every
command line (`local`). An environment whose hosts live on other servers
has `remote` (cluster.RemoteFiles): the trial's folders are made there, the
torrent copied there, the logs fetched back and the copies removed; other
environments have `remote = None`.

client-server: h0 runs `peer serve`; h1..hN run `peer fetch` at once.
peer-to-peer:  h0 runs `tracker` and `peer seed`; h1..hN run
               `peer download --seed` at once and keep seeding until all are done.

A host's completion time is when its JSON line says it finished, counted from
the moment the first downloader was started (its own `seconds` plus how much
later it was started); the overall time is the latest of them.
"""

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from typing import List, Optional

from . import fidelity
from .procs import Proc, Registry, wait_for


@dataclasses.dataclass
class Files:
    """The binaries and the seed every trial uses."""

    peer: str
    tracker: str
    seed_dir: str  # holds only the seed file
    seed_name: str
    seed_sha1: str
    work: str  # scratch space: torrents and the downloaded copies


@dataclasses.dataclass
class HostResult:
    host: str
    completed: bool
    seconds: Optional[float]  # since the first downloader started
    own_seconds: Optional[float]  # from the host's JSON line (since its own start)
    start_offset: float
    bytes: Optional[int]
    verified: bool
    peers: Optional[int] = None  # p2p: distinct peers that sent it data
    uploaded: Optional[int] = None  # p2p: bytes it had uploaded when it completed
    downloaded: Optional[int] = None  # p2p: bytes received, duplicates included (its `completed` announce)
    hash_failures: Optional[int] = None
    exit_code: Optional[int] = None
    error: str = ""
    link: str = ""  # its link class (upload/download), with --links
    server: str = ""  # with --cluster, the server it ran on


@dataclasses.dataclass
class TrialResult:
    mode: str
    n: int
    run: int
    hosts: List[HostResult]
    server_bytes: Optional[int]
    bound: float
    error: str = ""
    # The machine's CPU idle during the trial (fidelity.summarize).
    cpu: dict = dataclasses.field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return len(self.hosts) == self.n and all(h.completed for h in self.hosts)

    @property
    def verified(self) -> bool:
        return self.complete and all(h.verified for h in self.hosts)

    @property
    def overall(self) -> Optional[float]:
        if not self.complete:
            return None
        return max(h.seconds for h in self.hosts)


class TrialError(Exception):
    pass


def sha1_of(path: str) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as data:
        while True:
            chunk = data.read(1 << 20)
            if not chunk:
                break
            digest.update(chunk)
    return digest.hexdigest()


class LocalFiles:
    """For hosts that see this machine's files as they are (on loopback, or
    Mininet hosts on this machine)."""

    def path(self, local_path: str) -> str:
        return local_path

    def sha1(self, path: str) -> Optional[str]:
        return sha1_of(path) if os.path.isfile(path) else None


def seed_name(size: int) -> str:
    """`seed-100m.bin`, `seed-1g.bin`, `seed-16m.bin`."""
    for suffix, scale in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
        if size % scale == 0:
            return f"seed-{size // scale}{suffix}.bin"
    return f"seed-{size}.bin"


def make_seed(repo: str, size: int, work: str):
    """The deterministic seed of `size` bytes (a prefix of the 1 GiB one) in
    WORK/seed/, made by torrents/make-seed.sh: (folder, name, SHA-1)."""
    seed_dir = os.path.join(work, "seed")
    os.makedirs(seed_dir, exist_ok=True)
    name = seed_name(size)
    path = os.path.join(seed_dir, name)
    if not os.path.isfile(path) or os.path.getsize(path) != size:
        subprocess.run(["bash", os.path.join(repo, "torrents", "make-seed.sh"), str(size), path], check=True)
    return seed_dir, name, sha1_of(path)


def _listening(proc: Proc, what: str, timeout: float = 15.0) -> str:
    """The `ADDR:PORT` a tracker or `peer serve` printed when it started listening."""
    line = wait_for(lambda: proc.find(lambda l: "listening" in l) or (not proc.alive() and "dead"), timeout)
    if not isinstance(line, dict):
        raise TrialError(f"{what} did not start (exit {proc.returncode}): {proc.stderr_tail()}")
    return line["listening"]


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def run_trial(env, cfg, files: Files, mode: str, n: int, run: int, registry: Registry, log_dir: str) -> TrialResult:
    """Runs one trial and stops everything it started, whatever happens; the
    machine's CPU idle is sampled throughout (`fidelity`)."""
    bound = cfg.bound(mode, n)
    timeout = cfg.timeout or (3.0 * max(cfg.bound("cs", n), bound) + 60.0)
    scratch = os.path.join(files.work, f"{mode}-n{n}-r{run}")
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch)
    env_vars = dict(os.environ)
    if cfg.log_level:
        env_vars["RUST_LOG"] = cfg.log_level
    started_here = len(registry.procs)
    remote = env.remote
    samplers = [fidelity.Sampler().start()] + (remote.cpu_samplers() if remote else [])
    try:
        try:
            if remote:
                remote.make_folders([scratch, log_dir])
            if mode == "cs":
                result = _client_server(env, cfg, files, n, run, registry, log_dir, scratch, env_vars, bound, timeout)
            else:
                result = _peer_to_peer(env, cfg, files, n, run, registry, log_dir, scratch, env_vars, bound, timeout)
        except TrialError as error:
            result = TrialResult(mode, n, run, [], None, bound, error=str(error))
        finally:
            for proc in list(registry.procs[started_here:]):
                registry.stop(proc, grace=5.0)
            shutil.rmtree(scratch, ignore_errors=True)
            if remote:
                remote.collect(log_dir)
                remote.remove(scratch)
    finally:
        cpu = fidelity.combine([sampler.stop() for sampler in samplers])
        try:
            fidelity.write_series(os.path.join(log_dir, "cpu-idle.csv"), samplers[0].series())
        except OSError:
            pass  # only a diagnostic: the summary above is what the tables use
    result.cpu = cpu
    if cfg.links:
        for host, cls in zip(result.hosts, cfg.hosts(n)):
            host.link = cls.label
    servers = {h.name: getattr(h, "server_name", "") for h in env.clients[:n]}
    for host in result.hosts:
        host.server = servers.get(host.host, "")
    return result


def completions(started, line_of, extra=()) -> List[HostResult]:
    """One HostResult per (host, proc), in the order they were started.

    A host's time counts from the start of the first downloader: its own
    `seconds` (from its JSON line, found by `line_of(proc)`) plus how much
    later than the first it was started. `extra` names JSON keys copied as
    they are (peer-to-peer: peers, uploaded, hash_failures).
    """
    # The earliest start: a process on another server may begin after one
    # spawned later here (ssh takes a moment to start it).
    t0 = min(proc.started for _, proc in started)
    results = []
    for host, proc in started:
        line = line_of(proc)
        offset = proc.started - t0
        if line is None:
            error = "timed out" if proc.alive() else f"exit {proc.returncode}: {proc.stderr_tail(2)}"
            results.append(HostResult(host.name, False, None, None, offset, None, False, exit_code=proc.returncode, error=error))
        else:
            results.append(HostResult(host.name, True, offset + line["seconds"], line["seconds"], offset, line["bytes"], False,
                                      exit_code=proc.returncode, **{key: line.get(key) for key in extra}))
    return results


def _check_copies(results: List[HostResult], hosts, scratch: str, files: Files) -> None:
    """Each completed host's copy against the seed's SHA-1, on its own server."""
    for result, host in zip(results, hosts):
        digest = host.sha1(host.path(os.path.join(scratch, host.name, files.seed_name))) if result.completed else None
        if digest is not None:
            result.verified = digest == files.seed_sha1
            if not result.verified:
                result.error = result.error or "SHA-1 differs from the seed"
        elif result.completed:
            result.error = result.error or "no copy on disk"


def _announced_downloads(stats: bytes, info_hash: str) -> dict:
    """ADDR:PORT -> bytes downloaded, from the tracker's /stats."""
    try:
        swarms = json.loads(stats)["swarms"]
        return {p["address"]: p["downloaded"] for s in swarms if s["info_hash"] == info_hash for p in s["peers"]}
    except (ValueError, KeyError, TypeError):
        return {}


def _knobs(cfg, seeder: bool) -> List[str]:
    """The peer options the study was asked to pass (none: peer's defaults)."""
    slots = (cfg.seeder_unchoke_slots or cfg.unchoke_slots) if seeder else cfg.unchoke_slots
    knobs = ["--unchoke-slots", str(slots)] if slots else []
    if cfg.max_peers:
        knobs += ["--max-peers", str(cfg.max_peers)]
    if seeder and getattr(cfg, "super_seed", False):
        knobs.append("--super-seed")
    return knobs


OTHER_CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "other_client.py")


def _other_client(cfg, env, role: str, torrent: str, folder: str, host, port: int, up: float, down) -> List[str]:
    """`other_client.py` for `cfg.client` on `host`: on one machine with its
    link's rates as the client's own limits (bytes/s), in Mininet none."""
    argv = [sys.executable, host.path(OTHER_CLIENT), cfg.client, role, host.path(torrent), "--dir", host.path(folder),
            "--ip", host.ip, "--port", str(port), "--size", str(cfg.size)]
    if env.name == "local":
        argv += ["--local", "--up", str(int(up * 1e6 / 8))] + (["--down", str(int(down * 1e6 / 8))] if down else [])
    if role == "download" and cfg.leave_on_complete:
        argv.append("--leave")
    return argv


def _on_schedule(hosts, offsets: List[float]):
    """Yields each host when its start time (seconds after the first) comes."""
    first = None
    for host, at in sorted(zip(hosts, offsets), key=lambda pair: pair[1]):
        if first is None:
            first = time.monotonic()
        delay = first + at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield host, at


def _events(cfg, host, log_dir: str, name: str) -> List[str]:
    """`--events` into the trial's log folder, when the study draws pieces."""
    return ["--events", host.path(os.path.join(log_dir, f"{name}.events.jsonl"))] if cfg.events else []


def _create_argv(cfg, files: Files, announce: str, torrent: str) -> List[str]:
    """`peer create` for the seed, with the piece length asked for (if any)."""
    create = [files.peer, "create", os.path.join(files.seed_dir, files.seed_name), "-a", announce,
              "--no-date", "--force", "--json", "-o", torrent]
    if cfg.piece_length != "auto":
        create += ["--piece-length", cfg.piece_length]
    return create


def _client_server(env, cfg, files, n, run, registry, log_dir, scratch, env_vars, bound, timeout) -> TrialResult:
    server = env.server
    serve = registry.spawn(
        server, "server",
        [server.path(files.peer), "serve", server.path(files.seed_dir), "--port", "0", "--bind", server.ip] + env.limits.serve(),
        log_dir, env_vars,
    )
    port = _port(_listening(serve, "peer serve"))
    url = f"http://{server.ip}:{port}/{files.seed_name}"
    fetches = []
    for host, at in _on_schedule(env.clients[:n], cfg.offsets(n)):
        argv = [host.path(files.peer), "fetch", url, "--output", host.path(os.path.join(scratch, host.name))]
        argv += env.limits.fetch(host)
        fetches.append((host, registry.spawn(host, host.name, argv, log_dir, env_vars)))
    wait_for(lambda: not any(p.alive() for _, p in fetches), timeout, interval=0.1)
    results = completions(fetches, lambda proc: proc.find(lambda l: "seconds" in l and "bytes" in l))
    registry.stop(serve, grace=15.0)
    summary = serve.find(lambda l: "bytes_sent" in l)
    _check_copies(results, [h for h, _ in fetches], scratch, files)
    return TrialResult("cs", n, run, results, summary["bytes_sent"] if summary else None, bound)


def _peer_to_peer(env, cfg, files, n, run, registry, log_dir, scratch, env_vars, bound, timeout) -> TrialResult:
    server = env.server
    tracker = registry.spawn(server, "tracker", [server.path(files.tracker), "--listen", f"{server.ip}:0", "--interval", "30"], log_dir, env_vars)
    tracker_port = _port(_listening(tracker, "tracker"))
    announce = f"http://{server.ip}:{tracker_port}/announce"
    torrent = os.path.join(scratch, "study.torrent")
    made = subprocess.run(_create_argv(cfg, files, announce, torrent), capture_output=True, text=True)
    if made.returncode != 0:
        raise TrialError(f"peer create failed: {made.stderr.strip()}")
    info_hash = json.loads(made.stdout.strip().splitlines()[-1])["info_hash"]
    if env.remote:
        env.remote.share(torrent)
    knobs, seeder_knobs = _knobs(cfg, seeder=False), _knobs(cfg, seeder=True)
    if cfg.client == "ours":
        seed_argv = [server.path(files.peer), "seed", server.path(torrent), "--data", server.path(files.seed_dir), "--port", "0"]
        seed_argv += env.limits.seed() + seeder_knobs + _events(cfg, server, log_dir, "seeder")
    else:
        seed_argv = _other_client(cfg, env, "seed", torrent, files.seed_dir, server, server.free_port(), cfg.bw, None)
    seeder = registry.spawn(server, "seeder", seed_argv, log_dir, env_vars)
    stats_url = f"http://{server.ip}:{tracker_port}/stats"

    def seeder_known():
        if not seeder.alive():
            return "dead"
        body = server.http_get(stats_url, timeout=2.0)
        if not body:
            return None
        try:
            swarms = json.loads(body)["swarms"]
        except (ValueError, KeyError):
            return None
        return any(s["info_hash"] == info_hash and s["seeders"] >= 1 for s in swarms)

    if wait_for(seeder_known, 120.0, interval=0.1) in (None, "dead"):
        raise TrialError(f"the seeder never announced (exit {seeder.returncode}): {seeder.stderr_tail()}")

    downloads, ports, taken = [], {}, set()
    links = {host.name: cls for host, cls in zip(env.clients[:n], cfg.hosts(n))}
    for host, at in _on_schedule(env.clients[:n], cfg.offsets(n)):
        # A known port, so the tracker's list of peers says which host is which.
        port = host.free_port()
        while (host.ip, port) in taken:
            port = host.free_port()
        taken.add((host.ip, port))
        ports[host.name] = port
        if cfg.client == "ours":
            argv = [host.path(files.peer), "download", host.path(torrent), "--output",
                    host.path(os.path.join(scratch, host.name)), "--port", str(port)]
            argv += [] if cfg.leave_on_complete else ["--seed"]
            argv += env.limits.download(host) + knobs + _events(cfg, host, log_dir, host.name)
        else:
            cls = links[host.name]
            argv = _other_client(cfg, env, "download", torrent, os.path.join(scratch, host.name), host, port, cls.up, cls.down)
        downloads.append((host, registry.spawn(host, host.name, argv, log_dir, env_vars)))

    def complete(proc):
        return proc.find(lambda l: l.get("event") == "complete")

    wait_for(lambda: all(complete(p) or not p.alive() for _, p in downloads), timeout, interval=0.1)
    results = completions(downloads, complete, ("peers", "uploaded", "hash_failures"))
    # What each peer announced (downloaded, uploaded), for the logs: more than F
    # downloaded means duplicate blocks.
    stats = server.http_get(stats_url, timeout=2.0)
    if stats:
        with open(os.path.join(log_dir, "tracker-stats.json"), "wb") as saved:
            saved.write(stats)
        received = _announced_downloads(stats, info_hash)
        for (host, _), result in zip(downloads, results):
            result.downloaded = received.get(f"{host.ip}:{ports[host.name]}")
    for (host, proc), result in zip(downloads, results):
        result.exit_code = registry.stop(proc, grace=10.0)
    registry.stop(seeder, grace=15.0)
    stopped = seeder.find(lambda l: l.get("event") == "stopped")
    _check_copies(results, [h for h, _ in downloads], scratch, files)
    return TrialResult("p2p", n, run, results, stopped["uploaded"] if stopped else None, bound)
