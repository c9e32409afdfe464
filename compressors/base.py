"""The compressor interface and :class:`Chain`.

A compressor is ``__call__(tokens, ctx) -> VisualTokens``. Subclasses implement :meth:`Compressor.compress`;
``__call__`` times it and appends one :class:`~mmlong.types.Step` (name, config, tokens in/out, ms) to the
provenance. ``compress`` may return ``report(tokens, {...})`` to also record what it decided (scores, chosen
frames, scene boundaries, pooling factors; plain lists and numbers) in that Step's ``extra``. ``stage`` is a
:class:`Placement`: ``PRE_LLM`` (runs on :class:`VisualTokens` before the model) or ``IN_LLM`` (a model adapter
installs it inside the language model, see :mod:`mmlong.compressors.llm_pruning`). A plug-in may still write
the strings ``"pre_llm"``/``"in_llm"``: a Placement compares equal to its string, and :class:`Chain` reads it.

>>> Placement("in_llm") is Placement.IN_LLM, Placement.PRE_LLM == "pre_llm"
(True, True)

Stateful memory bridges subclass :class:`StreamingCompressor`: ``reset()``, ``update(chunk)``, ``read()``;
the pipeline feeds them chunk by chunk so memory does not grow with the video's length.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Iterable, Sequence

from mmlong.errors import ConfigError
from mmlong.qa import Query
from mmlong.types import Step, VisualTokens


def report(tokens: VisualTokens, extra: dict[str, Any]) -> tuple[VisualTokens, dict[str, Any]]:
    """What :meth:`Compressor.compress` returns to record ``extra`` in its provenance Step.

    >>> import torch
    >>> class Count(Compressor):
    ...     name = "count"
    ...     def compress(self, tokens, ctx):
    ...         return report(tokens, {"frames": tokens.grid[0]})
    >>> Count()(VisualTokens.from_grid(torch.ones(3, 1, 1, 2), torch.arange(3.0))).provenance[-1].extra
    {'frames': 3}
    """
    return tokens, dict(extra)


@dataclass
class CompressContext:
    """What a compressor may consult besides the tokens.

    query: the question (for query-aware stages). budget: the token budget the chain should meet, or None.
    encoder: the encoder that produced the tokens (``encode_text`` / ``embed_visual`` for relevance).
    state: scratch space for stateful stages within one run.
    """

    query: Query | None = None
    budget: int | None = None
    encoder: Any = None
    state: dict[str, Any] = field(default_factory=dict)


class Placement(StrEnum):
    """Where a compressor runs: on the visual tokens before the model, or inside the language model."""

    PRE_LLM = "pre_llm"
    IN_LLM = "in_llm"

    __hash__ = str.__hash__  # a Placement and its string are one key


class Compressor:
    """Base class. Subclasses set ``name``, ``stage`` and a ``Config`` dataclass and implement ``compress``."""

    name: ClassVar[str] = "compressor"
    stage: ClassVar[Placement] = Placement.PRE_LLM

    @dataclass
    class Config:
        pass

    def __init__(self, config: Any = None) -> None:
        self.config = config if config is not None else self.Config()

    def config_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config) if dataclasses.is_dataclass(self.config) else {}

    def compress(self, tokens: VisualTokens, ctx: CompressContext) -> VisualTokens | tuple[VisualTokens, dict]:
        raise NotImplementedError(f"{type(self).__name__} must implement compress()")

    def __call__(self, tokens: VisualTokens, ctx: CompressContext | None = None) -> VisualTokens:
        ctx = ctx if ctx is not None else CompressContext()
        start = time.perf_counter()
        out = self.compress(tokens, ctx)
        ms = (time.perf_counter() - start) * 1000.0
        extra: dict[str, Any] = {}
        if isinstance(out, tuple):
            out, extra = out
        step = Step(self.name, self.config_dict(), tokens.num_tokens, out.num_tokens, ms, extra)
        return out.replace(provenance=tokens.provenance + (step,))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"


class StreamingCompressor(Compressor):
    """A stateful stage fed chunk by chunk: ``reset()``, ``update(chunk)``, ``read()``.

    Called on whole tokens it resets, updates once and reads, so it also works inside a plain chain.
    """

    def reset(self) -> None:
        raise NotImplementedError

    def update(self, chunk: VisualTokens, ctx: CompressContext | None = None) -> None:
        raise NotImplementedError

    def read(self) -> VisualTokens:
        raise NotImplementedError

    def compress(self, tokens: VisualTokens, ctx: CompressContext) -> VisualTokens:
        self.reset()
        self.update(tokens, ctx)
        return self.read()


class Chain(Compressor):
    """Compressors applied in order; itself a compressor.

    Pre-LLM steps run in :meth:`compress`; in-LLM steps are handed to the model adapter (:attr:`in_llm`).
    A pre-LLM step after an in-LLM one is rejected: it could never run in that order.
    """

    name = "chain"

    def __init__(self, steps: Sequence[Compressor] = ()) -> None:
        super().__init__(None)
        self.steps = list(steps)
        seen_in_llm = None
        for step in self.steps:
            try:
                placement = Placement(step.stage)
            except ValueError:
                raise ConfigError(f"compressor {step.name!r} has unknown stage {step.stage!r}; "
                                  f"one of {', '.join(Placement)}") from None
            if placement is Placement.IN_LLM:
                seen_in_llm = step
            elif seen_in_llm is not None:
                raise ConfigError(
                    f"compressor chain: pre-LLM step {step.name!r} comes after in-LLM step {seen_in_llm.name!r}; "
                    "put pre-LLM steps first"
                )
        in_llm = [s for s in self.steps if s.stage == Placement.IN_LLM]
        names = [s.name for s in in_llm]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ConfigError(f"compressor chain: in-LLM step {twice[0]!r} is given twice; an in-LLM method prunes "
                              "the model's layers once")
        own = [s.name for s in in_llm if hasattr(s, "hooks")]  # prunes through its own hooks (DyCoke-KV, ...)
        if own and len(in_llm) > 1:
            others = [n for n in names if n != own[0]]
            raise ConfigError(f"compressor chain: in-LLM step {own[0]!r} prunes through its own hooks and must be "
                              f"the only in-LLM step of a chain (also given: {others[0]!r}); keep one of them")

    @classmethod
    def from_spec(cls, spec: str | Iterable[str]) -> "Chain":
        """Build from ``"scenetile,tome:0.5,pool:2"`` (or a list of single specs)."""
        from mmlong.registry import COMPRESSORS, RegistryError
        from mmlong.spec import SpecError, parse_chain

        text = spec if isinstance(spec, str) else ",".join(spec)
        try:
            return cls([COMPRESSORS.from_spec(s) for s in parse_chain(text)])
        except (RegistryError, SpecError) as err:
            raise ConfigError(f"--compress {text!r}: {err}") from err

    @property
    def pre_llm(self) -> list[Compressor]:
        return [s for s in self.steps if s.stage == Placement.PRE_LLM]

    @property
    def in_llm(self) -> list[Compressor]:
        return [s for s in self.steps if s.stage == Placement.IN_LLM]

    def config_dict(self) -> dict[str, Any]:
        return {"steps": [{"name": s.name, **s.config_dict()} for s in self.steps]}

    def compress(self, tokens: VisualTokens, ctx: CompressContext) -> VisualTokens:
        for step in self.pre_llm:
            tokens = step(tokens, ctx)
        return tokens

    def __call__(self, tokens: VisualTokens, ctx: CompressContext | None = None) -> VisualTokens:
        # each step records its own provenance; the chain adds none of its own
        return self.compress(tokens, ctx if ctx is not None else CompressContext())

    def __len__(self) -> int:
        return len(self.steps)

    def __repr__(self) -> str:
        return f"Chain({self.steps!r})"
