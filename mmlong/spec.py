"""Plug-in spec strings: ``name[:arg,arg,key=value]`` and chains of them.

A spec names a registered plug-in and fills its ``Config`` fields: positional arguments in field order,
``key=value`` by name. A chain is a comma-separated list of specs; a comma-separated piece that is not a
name (a number, or ``key=value``) continues the spec before it, so the two read naturally together:

>>> parse_spec("tome:0.5")
Spec(name='tome', args=('0.5',), kwargs={})
>>> [s.name for s in parse_chain("scenetile,tome:0.5,fastv:2,0.5,pool:2")]
['scenetile', 'tome', 'fastv', 'pool']
>>> parse_chain("fastv:2,0.5")[0].args
('2', '0.5')
>>> parse_spec("fps:1,max_frames=64")
Spec(name='fps', args=('1',), kwargs={'max_frames': '64'})
>>> str(parse_spec("fps:1,max_frames=64"))
'fps:1,max_frames=64'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mmlong.errors import ConfigError

_NAME = re.compile(r"^[A-Za-z][\w.\-]*$")


class SpecError(ConfigError, ValueError):
    """A spec string could not be read (a :class:`ConfigError`: one line, exit 2)."""


@dataclass(frozen=True)
class Spec:
    name: str
    args: tuple[str, ...] = ()
    kwargs: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        parts = list(self.args) + [f"{k}={v}" for k, v in self.kwargs.items()]
        return self.name + (":" + ",".join(parts) if parts else "")


def _is_new_item(piece: str) -> bool:
    head = piece.split(":", 1)[0]
    return bool(_NAME.match(head)) and "=" not in head


def _add_arg(args: list[str], kwargs: dict[str, str], piece: str, spec: str) -> None:
    if not piece:
        raise SpecError(f"empty argument in {spec!r}")
    if "=" in piece:
        key, _, value = piece.partition("=")
        if not _NAME.match(key):
            raise SpecError(f"bad option name {key!r} in {spec!r}")
        kwargs[key] = value
    elif kwargs:
        raise SpecError(f"positional argument {piece!r} after key=value in {spec!r}")
    else:
        args.append(piece)


def parse_spec(spec: str) -> Spec:
    """Parse one ``name[:args]`` spec."""
    chain = parse_chain(spec)
    if len(chain) != 1:
        raise SpecError(f"expected one spec, got {len(chain)} in {spec!r}")
    return chain[0]


def parse_chain(text: str) -> list[Spec]:
    """Parse a comma-separated chain of specs (empty text gives an empty chain)."""
    text = text.strip()
    if not text or text.lower() == "none":
        return []
    items: list[tuple[str, list[str], dict[str, str]]] = []
    for raw in text.split(","):
        piece = raw.strip()
        if items and not _is_new_item(piece):
            _add_arg(items[-1][1], items[-1][2], piece, text)
            continue
        if not _is_new_item(piece):
            raise SpecError(f"a spec must start with a name, got {piece!r} in {text!r}")
        name, colon, rest = piece.partition(":")
        if colon and not rest.strip():
            raise SpecError(f"{name!r} has ':' with nothing after it in {text!r}; give its arguments "
                            f"({name}:VALUE) or leave out the ':'")
        args: list[str] = []
        kwargs: dict[str, str] = {}
        if rest:
            _add_arg(args, kwargs, rest.strip(), text)
        items.append((name, args, kwargs))
    return [Spec(name, tuple(args), kwargs) for name, args, kwargs in items]
