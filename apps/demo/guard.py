"""What the demo lets a web page do: requests only for its own host names, models only from a short list.

**Host and Origin.** A page on any site the user visits can point its own name at 127.0.0.1 (DNS rebinding)
and then talk to a loopback demo as if it were the same site. :class:`HostOriginGuard`, an ASGI middleware,
answers 403 to any request whose ``Host`` header is not one of the demo's names, or whose ``Origin`` (when a
browser sends one) is not a page of the demo itself. The names are ``localhost``, ``127.0.0.1`` and ``::1``,
the ``--host`` address, and each ``--allowed-host`` (a name the demo is reached by through a proxy or DNS). A
demo bound to every address (``0.0.0.0``, ``::``) accepts any IP address literal as well: the user chose a
network-wide server, but a rebinding name still needs ``--allowed-host``.

**The model field.** The page may choose a registered model name, or a folder under ``--model-root`` (given at
launch), nothing else: no hub ids (no downloads started from a web page), no folder outside that root, and the
refusal reads the same whether a folder exists or not, so a page cannot probe the server's folders.

>>> allowed = allowed_hosts("127.0.0.1", ())
>>> host_allowed("127.0.0.1:7860", allowed, wildcard=False), host_allowed("evil.example:7860", allowed, False)
(True, False)
>>> origin_allowed("http://localhost:7860", allowed, False), origin_allowed("http://evil.example", allowed, False)
(True, False)
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import urlsplit

from mmlong.errors import ConfigError

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARDS = ("0.0.0.0", "::", "")


def allowed_hosts(bind: str, extra: Iterable[str]) -> frozenset[str]:
    """The host names (lower case, no port, no brackets) requests may carry in ``Host`` and ``Origin``."""
    names = {*LOOPBACK_NAMES, *(str(e).strip().lower().strip("[]") for e in extra if str(e).strip())}
    if bind not in WILDCARDS:
        names.add(bind.lower().strip("[]"))
    return frozenset(names)


def _hostname(authority: str) -> str | None:
    """``"Example.org:7860"`` -> ``"example.org"``, ``"[::1]:7860"`` -> ``"::1"``; None when unreadable."""
    try:
        name = urlsplit("//" + authority.strip()).hostname
    except ValueError:
        return None
    return name.lower() if name else None


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def host_allowed(host_header: str | None, allowed: frozenset[str], wildcard: bool) -> bool:
    """True when ``Host`` names the demo (see the module docstring); a missing Host header is refused."""
    name = _hostname(host_header or "")
    return name is not None and (name in allowed or (wildcard and _is_ip(name)))


def origin_allowed(origin: str | None, allowed: frozenset[str], wildcard: bool) -> bool:
    """True when there is no ``Origin`` (not a cross-site browser request) or it is a page of the demo."""
    if origin is None:
        return True
    try:
        parts = urlsplit(origin.strip())
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False  # "null" (sandboxed frames, files) and anything odd
    return host_allowed(parts.netloc, allowed, wildcard)


class HostOriginGuard:
    """ASGI middleware: 403 for a request (HTTP or WebSocket) whose Host or Origin is not the demo's."""

    def __init__(self, app: Any, allowed: frozenset[str], wildcard: bool = False) -> None:
        self.app = app
        self.allowed = allowed
        self.wildcard = wildcard

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") in ("http", "websocket"):
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
            if not (host_allowed(headers.get("host"), self.allowed, self.wildcard)
                    and origin_allowed(headers.get("origin"), self.allowed, self.wildcard)):
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                body = b"mmlong demo: this host or origin is not allowed (see mmlong demo --allowed-host)\n"
                headers_out = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
                await send({"type": "http.response.start", "status": 403, "headers": headers_out})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def guard_app_kwargs(bind: str, extra_hosts: Iterable[str]) -> dict[str, Any]:
    """``app_kwargs`` for ``Blocks.launch`` that put :class:`HostOriginGuard` in front of every route."""
    from starlette.middleware import Middleware

    return {"middleware": [Middleware(HostOriginGuard, allowed=allowed_hosts(bind, extra_hosts),
                                      wildcard=bind in WILDCARDS)]}


def check_model_field(value: str, model_root: str | None) -> str:
    """The model a web page asked for, if the page may choose it: a registered name, or a folder under
    ``model_root``; otherwise a one-line ConfigError that says the same for folders that exist and those
    that do not."""
    from mmlong.registry import MODELS

    text = value.strip()
    names = MODELS.names()
    if text in names:
        return text
    refusal = (f"the model field takes a registered model ({', '.join(names)})"
               + (f" or a folder under {model_root}" if model_root else "; start the demo with --model-root DIR "
                  "to allow checkpoint folders"))
    if not model_root or not text or "\x00" in text:
        raise ConfigError(refusal)
    root = os.path.realpath(os.path.expanduser(model_root))
    candidate = os.path.realpath(os.path.join(root, os.path.expanduser(text)))  # absolute text replaces root
    if os.path.commonpath([root, candidate]) != root or candidate == root:
        raise ConfigError(refusal)
    if not os.path.isdir(candidate):  # inside the root: saying it is missing reveals nothing outside it
        raise ConfigError(f"no checkpoint folder {text!r} under the model root {model_root}")
    return str(Path(candidate))
