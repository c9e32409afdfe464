"""Reading a YAML file a user gives (a pipeline config): one mapping of settings, checked before it is trusted.

Size, encoding, nesting depth and alias expansion are bounded before the document is built, so a 430-byte
"billion laughs" file is refused at once instead of hanging whatever walks it. Every failure is one
:class:`~mmlong.errors.ConfigError` naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmlong.errors import ConfigError
from mmlong.validate import describe_value

# Deeper YAML than this is not a pipeline config; a limit keeps the parser far from Python's recursion limit.
MAX_YAML_DEPTH = 32
MAX_YAML_BYTES = 1 << 20
# Nodes of a YAML document counted with every alias expanded: a config has a few hundred; a "billion laughs"
# file has billions (and anything walking it would walk them all).
MAX_YAML_NODES = 100_000


def _yaml_size(node: Any, limit: int) -> tuple[int, int]:
    """(depth, node count) of a composed YAML node graph with every alias expanded, each shared node visited
    once (an alias is a second edge to the same node object), so a "billion laughs" file costs its own size.
    Counts stop growing once past ``limit`` (no recursion)."""
    memo: dict[int, tuple[int, int]] = {}
    open_nodes: set[int] = set()  # being expanded: meeting one again is an alias to itself (a cycle)
    stack: list[tuple[Any, bool]] = [(node, False)]
    while stack:
        current, expanded = stack.pop()
        key = id(current)
        if key in memo:
            continue
        if not expanded and key in open_nodes:
            return limit + 1, limit + 1
        value = getattr(current, "value", None)
        children = []
        if isinstance(value, list):
            for child in value:
                children.extend(child if isinstance(child, tuple) else (child,))  # mapping: (key, value) nodes
        if not expanded:
            if len(stack) > limit:
                return limit + 1, limit + 1
            open_nodes.add(key)
            stack.append((current, True))
            stack.extend((child, False) for child in children if id(child) not in memo)
            continue
        depth = 1 + max((memo[id(c)][0] for c in children if id(c) in memo), default=0)
        count = min(limit + 1, 1 + sum(memo[id(c)][1] for c in children if id(c) in memo))
        memo[key] = (depth, count)
        open_nodes.discard(key)
    return memo.get(id(node), (0, 0))


def read_yaml_mapping(path: str | Path, what: str = "a pipeline config") -> dict[str, Any]:
    """Read a YAML file that must hold one mapping with string keys; any other content is one-line error."""
    import yaml

    p = Path(path)
    if not p.exists():
        raise ConfigError("config file not found", str(p))
    if not p.is_file():
        raise ConfigError("not a file (a config must be a YAML file)", str(p))
    try:
        raw = p.read_bytes()[: MAX_YAML_BYTES + 1]
    except OSError as err:
        raise ConfigError(f"cannot read it ({err.strerror or err})", str(p)) from err
    if len(raw) > MAX_YAML_BYTES:
        raise ConfigError(f"larger than {MAX_YAML_BYTES // 1024} KiB; not {what}", str(p))
    if b"\x00" in raw:
        raise ConfigError(f"a binary file, not a YAML file ({what})", str(p))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"not UTF-8 text (byte {err.start}); not a YAML file", str(p)) from err
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        depth, count = _yaml_size(node, MAX_YAML_NODES) if node is not None else (0, 0)
        if depth > MAX_YAML_DEPTH:
            raise ConfigError(f"nested deeper than {MAX_YAML_DEPTH} levels; not {what}", str(p))
        if count > MAX_YAML_NODES:
            raise ConfigError(f"its aliases expand to more than {MAX_YAML_NODES:,} values (an alias bomb); "
                              f"not {what}", str(p))
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"not valid YAML ({first})", str(p)) from err
    except (RecursionError, MemoryError) as err:
        raise ConfigError(f"too deeply nested or too large; not {what}", str(p)) from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{what} must be a mapping of settings (name: value), got a {type(data).__name__}",
                          str(p))
    for key in data:
        if not isinstance(key, str):
            raise ConfigError(f"setting names must be words, got {describe_value(key)}", str(p))
    return data
