"""Is there a network route? Cheap checks run before a client that would retry for a long time: a bottom module
(the standard library only), shared by model resolution (`selfcorrect.models`), dataset loading
(`selfcorrect.data.loading`) and the experiment trackers (`selfcorrect.tracking`).
"""

from __future__ import annotations

import os
import socket


def host_resolves(host: str, timeout: float = 3.0) -> bool:
    """Whether `host` resolves (a DNS lookup, no request): a cheap test for a network route before a slow client."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        socket.getaddrinfo(host, 443)
        return True
    except OSError:
        return False
    finally:
        socket.setdefaulttimeout(previous)


def hub_is_reachable(host: str = "huggingface.co") -> bool:
    """Checked before any hub download: without it, transformers retries for ~25 s before failing."""
    if os.environ.get("HF_HUB_OFFLINE", "0") in ("1", "true", "True"):
        return False
    return host_resolves(host)
