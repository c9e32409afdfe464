"""Checks for values a user gives: one place where input is judged before any work starts.

Every check raises :class:`~mmlong.errors.ConfigError` (one line naming the input and how to fix it), which the
CLI prints as ``mmlong: error: ...`` with exit status 2. Every value a user gives (spec strings, YAML, flags)
is read and checked by one function, :func:`coerce`: plug-in configs reach it through the registry, pipeline
settings when a preset, YAML file and flags are layered (:mod:`mmlong.config.request`), output files through
:func:`check_output_file`, and YAML documents through :func:`mmlong.yaml_file.read_yaml_mapping`.

>>> check_value("fps", 2, float)
2.0
>>> check_value("fps", float("nan"), float)
Traceback (most recent call last):
...
mmlong.errors.ConfigError: fps: expected a finite number, got nan
>>> check_value("frames", True, int)
Traceback (most recent call last):
...
mmlong.errors.ConfigError: frames: expected a whole number, got True
>>> check_value("ratio", [0.5], float | None)
Traceback (most recent call last):
...
mmlong.errors.ConfigError: ratio: expected a number or nothing, got a list ([0.5])
"""

from __future__ import annotations

import math
import types
import typing
from pathlib import Path
from typing import Any, Iterable

from mmlong.errors import ConfigError

# Where an output file can never sensibly go (kernel and device file systems).
_SYSTEM_ROOTS = ("/proc", "/sys", "/dev")

_KIND_WORDS = {bool: "true or false", int: "a whole number", float: "a number", str: "a string",
               dict: "a mapping (key: value)", list: "a list", tuple: "a list"}


def describe_value(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    if isinstance(value, (list, tuple, dict)):
        return f"a {type(value).__name__} ({text})"
    return text


def _words(annotation: Any) -> str:
    if _is_optional(annotation):
        inner = sorted((a for a in typing.get_args(annotation) if a is not type(None)), key=lambda a: a is str)
        return " or ".join(_words(a) for a in inner) + " or nothing"
    origin = typing.get_origin(annotation) or annotation
    return _KIND_WORDS.get(origin, getattr(annotation, "__name__", str(annotation)))


def _is_optional(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def finite_number(what: str, value: Any) -> float:
    """``value`` as a finite float (ints accepted, bools and non-numbers refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{what}: expected a finite number, got {describe_value(value)}")
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        number = math.inf
    if not math.isfinite(number):
        raise ConfigError(f"{what}: expected a finite number, got {describe_value(value)}")
    return number


def number_argument(kind: type = float, low: float | None = None, high: float | None = None,
                    above: bool = False) -> Any:
    """An argparse ``type=`` for a number flag: ``kind`` (int or float), finite, ``>= low`` (``> low`` when
    ``above``) and ``<= high``; anything else is argparse's one-line usage error (exit status 2).

    >>> number_argument(float, 0, above=True)("2.5")
    2.5
    >>> number_argument(int, 1, 65535)("99999")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: expected a whole number from 1 to 65535, got '99999'
    """
    import argparse

    word = "a whole number" if kind is int else "a finite number"
    if low is not None and high is not None:
        rule = f"{word} from {low:g} to {high:g}"
    elif low is not None:
        rule = f"{word} {'>' if above else '>='} {low:g}"
    else:
        rule = word if high is None else f"{word} <= {high:g}"

    def parse(text: str) -> Any:
        try:
            value = kind(text)
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"expected {rule}, got {text!r}") from None
        bad = (not math.isfinite(number) or (low is not None and (number <= low if above else number < low))
               or (high is not None and number > high))
        if bad:
            raise argparse.ArgumentTypeError(f"expected {rule}, got {text!r}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its message
    return parse


def check_device(device: str) -> str:
    """A device the run can use (``cpu``, ``cuda``, ``cuda:N``, ``mps``), checked before anything loads."""
    import re

    text = str(device).strip()
    if not re.fullmatch(r"cpu|cuda(:\d+)?|mps", text):
        raise ConfigError(f"--device: unknown device {device!r}; use cpu, cuda, cuda:N or mps")
    if text == "cpu":
        return text
    import torch

    if text == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ConfigError("--device mps: this machine has no MPS (Apple GPU) device; use --device cpu")
        return text
    if not torch.cuda.is_available():
        raise ConfigError(f"--device {text}: this machine has no CUDA device; use --device cpu")
    index = int(text.split(":")[1]) if ":" in text else 0
    if index >= torch.cuda.device_count():
        raise ConfigError(f"--device {text}: there are {torch.cuda.device_count()} CUDA devices (0 to "
                          f"{torch.cuda.device_count() - 1})")
    return text


def check_cache_dir(path: str | Path, what: str = "cache folder") -> Path:
    """A cache folder that exists as a writable folder or can be made (``$MMLONG_CACHE_DIR``, ``--cache-dir``)."""
    return check_output_folder(path, what)
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def coerce(what: str, value: Any, annotation: Any) -> Any:
    """The one value-coercion step: ``value`` as the type of a dataclass field ``annotation``, checked.

    Every value a user gives passes here: spec-string arguments (``tome:0.5``), YAML values, command-line flags
    and ``key=value`` settings (the lmms-eval bridge). Text is read as the annotation says (``"0.5"`` -> 0.5,
    ``"false"`` -> False, ``"none"`` -> None for an optional field, ``"2/4"`` -> ``(2, 4)`` for a tuple);
    a union takes the first of its types that reads the text (``float | str``: ``"0.5"`` -> 0.5, ``"auto"`` stays
    text; ``str | int``: text stays text). Typed values are checked as they are (:func:`check_value`). Raises
    :class:`ConfigError` naming ``what``.

    >>> coerce("ratio", "0.5", float), coerce("cache", "off", bool), coerce("frames", "none", int | None)
    (0.5, False, None)
    >>> coerce("layers", "2/4", tuple[int, ...]), coerce("budget", "2048", str | int | None)
    ((2, 4), '2048')
    >>> coerce("frames", "8.5", int)
    Traceback (most recent call last):
    ...
    mmlong.errors.ConfigError: frames: expected int, got '8.5'
    """
    return check_value(what, _from_text(what, value, annotation), annotation)


def _from_text(what: str, value: Any, annotation: Any) -> Any:
    """``value`` converted from text to ``annotation`` (int, float, bool, str, tuples/lists of those,
    Optional/unions); non-text values and unknown annotations are returned unchanged."""
    if annotation is None or annotation is Any or not isinstance(value, str):
        return value
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if _is_optional(annotation):
        non_none = [a for a in args if a is not type(None)]
        if value.strip().lower() in ("none", "null") and len(non_none) < len(args):
            return None
        failures: list[ConfigError] = []
        for candidate in non_none:
            try:
                return check_value(what, _from_text(what, value, candidate), candidate)
            except ConfigError as err:
                failures.append(err)
        if len(failures) == 1:
            raise failures[0]
        raise ConfigError(f"{what}: cannot read {value!r}")
    if origin in (tuple, list):
        inner = args[0] if args else str
        items = [v for v in value.replace("/", " ").replace(";", " ").split() if v]
        out = [_from_text(what, v, inner) for v in items]
        return tuple(out) if origin is tuple else out
    try:
        if annotation is bool:
            low = value.strip().lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError(value)
        if annotation in (int, float):
            if annotation is int and "." in value:
                raise ValueError(value)
            number = annotation(value)
            if annotation is float and not math.isfinite(number):
                raise ConfigError(f"{what}: expected a finite number, got {value!r}")
            return number
    except ValueError as err:
        raise ConfigError(f"{what}: expected {annotation.__name__}, got {value!r}") from err
    return value


def check_value(what: str, value: Any, annotation: Any) -> Any:
    """Check an already-typed value (from YAML or Python) against a dataclass field annotation.

    Returns the value (ints widened to float for float fields, lists to tuples for tuple fields). Text is read
    into the annotation's type first by :func:`coerce`, the entry point every user value goes through.
    """
    if annotation is None or annotation is Any:
        return value
    if _is_optional(annotation):
        if value is None:
            return None
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        for candidate in inner:
            try:
                return check_value(what, value, candidate)
            except ConfigError:
                continue
        raise ConfigError(f"{what}: expected {_words(annotation)}, got {describe_value(value)}")
    origin = typing.get_origin(annotation) or annotation
    args = typing.get_args(annotation)
    if origin is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{what}: expected true or false, got {describe_value(value)}")
        return value
    if origin is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{what}: expected a whole number, got {describe_value(value)}")
        return value
    if origin is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{what}: expected a number, got {describe_value(value)}")
        return finite_number(what, value)
    if origin is str:
        if not isinstance(value, str):
            raise ConfigError(f"{what}: expected a string, got {describe_value(value)}")
        return value
    if origin in (tuple, list):
        if isinstance(value, (str, bytes, dict)) or not isinstance(value, Iterable):
            raise ConfigError(f"{what}: expected a list, got {describe_value(value)}")
        items = list(value)
        if origin is tuple and args and args[-1] is not Ellipsis:  # fixed length: tuple[int, int]
            if len(items) != len(args):
                raise ConfigError(f"{what}: expected {len(args)} values, got {len(items)}")
            items = [check_value(f"{what}[{i}]", v, a) for i, (v, a) in enumerate(zip(items, args))]
        elif args:
            items = [check_value(f"{what}[{i}]", v, args[0]) for i, v in enumerate(items)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{what}: expected a mapping (key: value), got {describe_value(value)}")
        for key in value:
            if not isinstance(key, str):
                raise ConfigError(f"{what}: keys must be names, got {describe_value(key)}")
        return value
    return value


def check_settings(what: str, values: dict[str, Any], hints: dict[str, Any]) -> dict[str, Any]:
    """:func:`coerce` for each ``key: value`` against ``hints`` (a dataclass's type hints)."""
    return {key: coerce(f"{what} {key!r}", value, hints.get(key)) for key, value in values.items()}


def check_output_file(path: str | Path, suffixes: Iterable[str] | None = None, what: str = "output") -> Path:
    """A path a command may write one file to, checked before any work starts.

    Not a folder, not under /proc, /sys or /dev, one of ``suffixes`` (lower-case endings with the dot; ``None``
    allows any), and inside a folder that exists or can be created (its nearest existing ancestor is a
    writable folder). Returns the path with ``~`` expanded.
    """
    import os

    p = Path(path).expanduser()
    text = str(path)
    if not text.strip() or text.endswith(("/", os.sep)):
        raise ConfigError(f"{what} must be a file name, not a folder", text or "''")
    _check_not_system(p, what, text)
    if p.is_dir():
        raise ConfigError(f"{what} is a folder; give a file name inside it, e.g. {p / ('out' + _first(suffixes))}",
                          text)
    if suffixes is not None:
        allowed = sorted({s.lower() for s in suffixes})
        if p.suffix.lower() not in allowed:
            raise ConfigError(f"{what} must end in one of {', '.join(allowed)}", text)
    if p.exists() or p.is_symlink():
        import stat

        try:
            mode = p.stat().st_mode
        except OSError as err:  # a dangling or looping link
            raise ConfigError(f"{what} cannot be used ({err.strerror or err})", text) from err
        if not stat.S_ISREG(mode):
            raise ConfigError(f"{what} exists and is not a regular file (a device, pipe or socket)", text)
        if not os.access(p, os.W_OK):
            raise ConfigError(f"{what} exists and is not writable", text)
    _check_writable_parent(p.parent, text, what)
    return p


def check_output_folder(path: str | Path, what: str = "output folder") -> Path:
    """A folder a command may write its files into, checked before any work starts (the same rules as
    :func:`check_output_file`: not under /proc, /sys or /dev, not a file, inside a writable folder)."""
    import os

    text = str(path)
    if not text.strip():
        raise ConfigError(f"{what} must be a folder name", "''")
    p = Path(path).expanduser()
    _check_not_system(p, what, text)
    if p.exists() and not p.is_dir():
        raise ConfigError(f"{what} is a file, not a folder; give a folder name", text)
    if p.is_dir():
        if not os.access(p, os.W_OK | os.X_OK):
            raise ConfigError(f"{what} is not writable", text)
        return p
    _check_writable_parent(p.parent, text, what)
    return p


def check_not_input(output: str | Path, inputs: Iterable[str | Path], what: str = "--out") -> None:
    """Refuse an output that is one of the command's input files (it would be read as results or replaced)."""
    import os

    out = Path(output).expanduser()
    for source in inputs:
        src = Path(source).expanduser()
        try:
            same = out.resolve(strict=False) == src.resolve(strict=False)
        except (OSError, RuntimeError):
            same = False
        if not same and out.exists() and src.exists():
            try:
                same = os.path.samefile(out, src)
            except OSError:
                same = False
        if same:
            raise ConfigError(f"{what} is the input file {src}; write the results to another file", str(output))


def _check_not_system(p: Path, what: str, text: str) -> None:
    try:
        resolved = p.resolve(strict=False)
    except (OSError, RuntimeError) as err:  # a symlink loop
        raise ConfigError(f"{what} cannot be used ({err})", text) from err
    for root in _SYSTEM_ROOTS:
        if str(resolved) == root or str(resolved).startswith(root + "/"):
            raise ConfigError(f"{what} cannot be written under {root}; choose a file in your own folders", text)


def _check_writable_parent(parent: Path, text: str, what: str) -> None:
    import os

    ancestor = parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConfigError(f"{what}: {ancestor} is a file, not a folder", text)
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ConfigError(f"{what}: folder {ancestor} is not writable", text)


def _first(suffixes: Iterable[str] | None) -> str:
    return next(iter(suffixes), "") if suffixes is not None else ""
