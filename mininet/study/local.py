"""Every host a process on one machine, no root: all on 127.0.0.1, each
listening on a port the system picks (`--port 0`, read back from its JSON
line or the tracker), and each link's rate emulated by `peer`'s own token
buckets:

- the server's uplink u_s: `peer serve --max-upload-rate`, `peer seed --max-upload-rate`;
- a host's downlink d: `peer fetch --max-download-rate`, `peer download --max-download-rate`;
- a host's uplink u_i: `peer download --max-upload-rate`.

Loopback itself is far faster than these rates, so the limits are the only
bottlenecks, as the access links are in the fluid model. Delay and loss
cannot be emulated this way; they are refused (use Mininet).
"""

import socket
import subprocess
import urllib.request
from typing import List, Optional

from .links import rate_flag as link_rate_flag
from .net import tcp_note
from .trial import LocalFiles


class LocalHost(LocalFiles):
    def __init__(self, name: str):
        self.name = name
        self.ip = "127.0.0.1"

    def popen(self, argv: List[str], stdout, stderr, env: Optional[dict] = None):
        # A session of its own: a Ctrl-C on the terminal reaches only the
        # study, which then stops each process by its PID, gracefully.
        return subprocess.Popen(argv, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, env=env, start_new_session=True)

    def free_port(self) -> int:
        """A port free right now (another program could take it before `peer`
        binds it; the peer then fails to start and the trial says so)."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("0.0.0.0", 0))
            return probe.getsockname()[1]

    def http_get(self, url: str, timeout: float = 2.0) -> Optional[bytes]:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return response.read()
        except OSError:
            return None


# Every host's peer connects from 127.0.0.1, so a peer's --max-per-ip (3 by
# default, meant for distinct hosts) would refuse all but three of the others.
ONE_ADDRESS_FOR_ALL = ["--max-per-ip", "10000"]


class RateLimits:
    """The flags that make `peer` behave as if behind its host's links (the
    server's at `rate` both ways, each host's from `hosts`: name -> LinkClass),
    and as if every host had an address of its own."""

    def __init__(self, rate: str, hosts: Optional[dict] = None):
        self.rate = rate
        self.hosts = hosts or {}

    def _host(self, host):
        cls = self.hosts.get(host.name)
        if cls is None:
            return self.rate, self.rate
        return link_rate_flag(cls.up), link_rate_flag(cls.down)

    def serve(self) -> List[str]:
        return ["--max-upload-rate", self.rate]

    def fetch(self, host) -> List[str]:
        return ["--max-download-rate", self._host(host)[1]]

    def seed(self) -> List[str]:
        return ["--max-upload-rate", self.rate] + ONE_ADDRESS_FOR_ALL

    def download(self, host) -> List[str]:
        up, down = self._host(host)
        return ["--max-upload-rate", up, "--max-download-rate", down] + ONE_ADDRESS_FOR_ALL


class LocalEnvironment:
    """h0 (the server) and h1..hN, all processes on loopback."""

    name = "local"
    remote = None  # every host is on this machine

    def __init__(self, cfg, max_n: int):
        if cfg.delay or cfg.loss:
            raise ValueError("--delay and --loss need Mininet (netem); --local emulates only link rates")
        self.server = LocalHost("h0")
        self.clients = [LocalHost(f"h{i}") for i in range(1, max_n + 1)]
        classes = cfg.hosts(max_n)
        self.limits = RateLimits(cfg.rate_flag, {h.name: c for h, c in zip(self.clients, classes)})
        links = f"at {cfg.rate_flag}" if not cfg.links else f"server at {cfg.rate_flag}, hosts {cfg.links} (upload/download)"
        self.notes = [f"every host a process on 127.0.0.1; links emulated by peer's rate limits {links}", tcp_note(cfg.tcp)]

    def close(self) -> None:
        pass
