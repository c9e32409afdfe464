"""The model-adapter interface: visual tokens + a query -> :class:`~mmlong.types.Answer`."""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

from mmlong.qa import Answer, Query
from mmlong.types import VisualTokens


class VideoQAModel:
    """Base class. Subclasses set ``name`` and a ``Config`` dataclass and implement ``answer``.

    ``encoder`` is the encoder that produced the tokens (the Socratic model reads its classifier head);
    ``in_llm`` are in-LLM compressors (FastV, PyramidDrop) the adapter installs around its language model;
    ``timed_text`` are the experts' timestamped lines about the video (on-screen text, speech, subtitles:
    :class:`~mmlong.experts.base.TimedText`, time order), passed only to models with ``reads_timed_text``.
    """

    name: ClassVar[str] = "model"
    #: whether ``in_llm`` compressors are supported
    supports_in_llm: ClassVar[bool] = False
    #: whether ``answer`` takes the experts' ``timed_text`` lines
    reads_timed_text: ClassVar[bool] = False

    def __init__(self, config: Any = None) -> None:
        self.config = config if config is not None else self.Config()  # type: ignore[attr-defined]

    def load(self) -> Any:
        """Load the weights now rather than on the first answer (benchmarks time answers without loading)."""
        return self

    def native_encoder(self) -> Any:
        """The model's own vision tower as an :class:`~mmlong.encoders.base.Encoder`, or None."""
        return None

    def answer(
        self,
        tokens: VisualTokens,
        query: Query,
        *,
        encoder: Any = None,
        in_llm: Sequence[Any] = (),
        timed_text: Sequence[Any] = (),
    ) -> Answer:
        raise NotImplementedError
