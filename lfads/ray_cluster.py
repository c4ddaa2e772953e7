"""Ray cluster addresses: parsing ``host:port`` and checking that a cluster answers there.

Used by ``lfads tune`` and ``lfads population --ray`` before any work starts, so a wrong address fails in
a second with one line rather than after Ray's own connection timeout. A Ray cluster has no
authentication: anyone who can reach it can run code on it, so use one only on a trusted network.
"""

from __future__ import annotations

import socket

__all__ = ["LOCAL_ADDRESSES", "connection_failure", "split_address", "unreachable"]

LOCAL_ADDRESSES = ("auto", "local")
"""Addresses Ray resolves on this machine; they are not checked."""


def split_address(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of a Ray cluster address (``host:port`` or ``ray://host:port``); None for ``auto``/``local``.

    Raises
    ------
    ValueError
        If the address has no ``host:port`` form or its port is not an integer in ``1..65535``.
    """
    if address in LOCAL_ADDRESSES:
        return None
    hostport = address.split("://", 1)[1] if "://" in address else address
    host, _, port = hostport.rpartition(":")
    host = host.strip("[]")  # [::1]:6379
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected host:port (e.g. 10.0.0.5:6379), got {address!r}")
    return host, int(port)


def connection_failure(host: str, port: int, timeout: float) -> str | None:
    """Why no TCP connection to ``host:port`` was accepted within ``timeout`` seconds (``"timed out"``,
    ``"connection refused"``, ...), or None when one was."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as err:
        return "timed out" if isinstance(err, TimeoutError) else (err.strerror or type(err).__name__).lower()


def unreachable(address: str, timeout: float) -> tuple[str, int, str] | None:
    """``(host, port, reason)`` when no Ray cluster accepts a connection at ``address`` within ``timeout``
    seconds; None when one does, or for ``auto``/``local``. Raises ``ValueError`` for a malformed address."""
    hostport = split_address(address)
    if hostport is None:
        return None
    reason = connection_failure(*hostport, timeout)
    return None if reason is None else (*hostport, reason)
