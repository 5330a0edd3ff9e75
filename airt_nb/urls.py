"""Checking the address of an HTTP receiver before anything is sent to it.

:func:`url_problem` says what is wrong with a URL (scheme, host, port,
IPv6 brackets, line breaks and other characters a URL cannot hold);
:func:`check_webhook_url` turns that into an :class:`~airt_nb.AirtError` for
``AIRT_WEBHOOK_URL``, and ``http.request`` uses it for its ``url`` input.

Imports nothing from airt_nb but the errors.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

from .errors import AirtError

__all__ = ["check_webhook_url", "url_problem"]

_HOST = re.compile(r"^[\w.~%-]+$")


def url_problem(url: Any) -> str | None:
    """What is wrong with ``url`` as the address of an HTTP receiver, or ``None``.

    Checks what would otherwise fail only when a request is sent: the
    scheme, a host, the port, brackets of an IPv6 address, and characters
    that cannot be in a URL (line breaks, spaces, control characters).

    >>> url_problem("http://")
    'names no host; write e.g. https://hooks.example.com/airt'
    """
    if not isinstance(url, str):
        return f"must be text, not {type(url).__name__}"
    if len(url) > 2048:
        return f"is {len(url)} characters long; a URL of at most 2048 is expected"
    for char in url:
        if char in "\r\n":
            return "contains a line break (CR/LF); remove it (check for a trailing newline)"
        if char.isspace() or ord(char) < 32 or ord(char) == 127:
            return f"contains {char!r}, which cannot be in a URL; remove it or percent-encode it"
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. "Invalid IPv6 URL" for http://[::1
        return f"cannot be parsed ({exc}); check the brackets around an IPv6 address, e.g. http://[::1]:8000/"
    if parts.scheme.lower() not in ("http", "https"):
        return "must start with http:// or https://"
    host = parts.hostname
    if not host:
        return "names no host; write e.g. https://hooks.example.com/airt"
    if "[" in parts.netloc:
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            return f"has {host!r} in brackets, which is not an IPv6 address; write e.g. http://[::1]:8000/"
    elif not _HOST.match(host):
        return f"has a host name {host!r} with characters a host cannot have; fix the host"
    try:
        port = parts.port
    except ValueError:
        return "has a port that is not a number from 1 to 65535; fix or remove the port"
    if port == 0:
        return "has port 0; use a port from 1 to 65535, or none for the default"
    return None


def check_webhook_url(url: Any) -> str:
    """Return ``url`` if it can receive webhooks; otherwise raise :class:`~airt_nb.AirtError` saying what to fix.

    The engine calls this when it opens, so a bad ``AIRT_WEBHOOK_URL`` is
    refused at once instead of leaving deliveries pending forever.

    >>> check_webhook_url("http://[::1")
    Traceback (most recent call last):
    ...
    airt_nb.errors.AirtError: webhook URL 'http://[::1' (AIRT_WEBHOOK_URL) cannot be parsed (Invalid IPv6 URL); check the brackets around an IPv6 address, e.g. http://[::1]:8000/; set it to the full address of the receiver, or unset it
    """
    problem = url_problem(url)
    if problem:
        raise AirtError(
            f"webhook URL {url!r} (AIRT_WEBHOOK_URL) {problem}; set it to the full address of the receiver, or unset it"
        )
    return url
