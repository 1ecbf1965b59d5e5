"""Loopback HTTP probes of the side ports (/readyz, /metrics) of processes the tests start."""

from __future__ import annotations

import urllib.error
import urllib.request


def http_get(port: int, path: str, timeout: float = 2.0) -> tuple[int, str] | None:
    """(status, body) of a GET on 127.0.0.1:port, or None when nothing answers.

    A 4xx/5xx arrives as an HTTPError that owns the response's socket; it is closed here, or
    the socket leaks until the garbage collector finds it, as a ResourceWarning in whichever
    test runs then.
    """
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return int(r.status), r.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return int(exc.code), exc.read().decode()
    except OSError:
        return None


def is_ready(port: int, path: str = "/readyz", timeout: float = 2.0) -> bool:
    got = http_get(port, path, timeout)
    return got is not None and got[0] == 200
