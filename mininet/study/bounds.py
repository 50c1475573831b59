"""Fluid-model lower bounds on the time to hand one file to N hosts.

Kurose and Ross, "Computer Networking", section 2.5: with a file of F bits,
a server upload rate u_s, a slowest download rate d and peer upload rates
u_1..u_N (all in bits per second),

    client-server:  D_cs  >= max(N F / u_s, F / d)
    peer-to-peer:   D_p2p >= max(F / u_s, F / d, N F / (u_s + sum u_i))

The server must send N copies in client-server; in peer-to-peer it must
send at least one, every host must receive one, and all N copies must be
uploaded by someone.
"""

from typing import Sequence, Union

Rates = Union[float, Sequence[float]]


def _uploads(n: int, peer_up: Rates) -> list:
    if isinstance(peer_up, (int, float)):
        return [float(peer_up)] * n
    uploads = [float(u) for u in peer_up]
    if len(uploads) != n:
        raise ValueError(f"{len(uploads)} peer upload rates for {n} peers")
    return uploads


def _check(n: int, file_bits: float, *rates: float) -> None:
    if n < 1:
        raise ValueError(f"N must be at least 1, got {n}")
    if file_bits <= 0:
        raise ValueError(f"the file must have a positive size, got {file_bits}")
    for rate in rates:
        if rate <= 0:
            raise ValueError(f"rates must be positive, got {rate}")


def client_server(n: int, file_bits: float, server_up: float, down: float) -> float:
    """max(N F / u_s, F / d), in seconds."""
    _check(n, file_bits, server_up, down)
    return max(n * file_bits / server_up, file_bits / down)


def peer_to_peer(n: int, file_bits: float, server_up: float, down: float, peer_up: Rates) -> float:
    """max(F / u_s, F / d, N F / (u_s + sum u_i)), in seconds.

    `peer_up` is one rate for every peer or a list of N rates.
    """
    uploads = _uploads(n, peer_up)
    _check(n, file_bits, server_up, down, *uploads)
    return max(
        file_bits / server_up,
        file_bits / down,
        n * file_bits / (server_up + sum(uploads)),
    )


def bound(mode: str, n: int, file_bits: float, server_up: float, down: float, peer_up: Rates) -> float:
    """The bound for `mode` ("cs" or "p2p")."""
    if mode == "cs":
        return client_server(n, file_bits, server_up, down)
    if mode == "p2p":
        return peer_to_peer(n, file_bits, server_up, down, peer_up)
    raise ValueError(f"unknown mode {mode!r}")
