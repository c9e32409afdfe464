"""The shared base of the native VLM adapters (Qwen2-VL, LLaVA-OneVision, SmolVLM2) and their ``native`` encoder.

A family adapter subclasses :class:`NativeVLMAdapter` and implements three things:

- ``model_class()``: the transformers class to load (e.g. ``Qwen2VLForConditionalGeneration``);
- ``encode_frames(frames) -> VisualTokens``: the model's own processor + vision tower (+ projector) on frames;
- ``build_prompt(tokens, query) -> PromptInputs``: the family's chat prompt with the visual tokens spliced in
  (:func:`mmlong.models.prompt_inputs.splice_embeddings`), position ids (1-D, or 3-D M-RoPE) and where the
  visual tokens sit.

The base does the rest with the helpers of its neighbours: loading (:mod:`mmlong.models.loading`), the greedy
decode (:mod:`mmlong.models.decoding`), the option letter (:func:`mmlong.models.prompts.read_letter`), and
:meth:`NativeVLMAdapter.answer`, which installs in-LLM compressors (:mod:`mmlong.compressors.llm_pruning`)
around the decode. Nothing here patches a transformers class; pruning uses forward pre-hooks removed on exit.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import torch

from mmlong.encoders.base import Encoder
from mmlong.errors import ConfigError, ModelLoadError
from mmlong.models.base import VideoQAModel
from mmlong.models.decoding import eos_token_ids, greedy_decode, language_model
from mmlong.models.loading import load_pretrained
from mmlong.models.prompt_inputs import PromptInputs
from mmlong.models.prompts import MLVU_ANSWER_PREFIX, answer_prefix, letter_token_ids, read_letter
from mmlong.qa import Answer, Query
from mmlong.types import Frames, VisualTokens


class NativeEncoder(Encoder):
    """A native VLM's own vision tower (and projector) as an :class:`Encoder` named ``native``.

    ``encode(frames)`` delegates to the adapter's ``encode_frames``; the tokens come out in the language
    model's embedding space, on the family's grid, ready for pre-LLM compressors.
    """

    name = "native"

    @dataclass
    class Config:
        model: str = ""

    def __init__(self, adapter: "NativeVLMAdapter") -> None:
        attention = ":attention" if getattr(adapter.config, "attention", False) else ""
        super().__init__(self.Config(model=f"{adapter.name}:{adapter.config.path}{attention}"))
        self.adapter = adapter

    @property
    def module(self) -> torch.nn.Module:
        return self.adapter.vision_module()

    def encode(self, frames: Frames) -> VisualTokens:
        return self.adapter.encode_frames(frames)


@dataclass
class NativeVLMConfig:
    """Options every native adapter takes. ``path``: local directory or hub id; ``max_new_tokens`` for free-form
    answers; ``frames_per_batch`` bounds the vision tower's memory."""

    path: str = ""
    device: str = "cpu"
    dtype: str = "float32"
    attn_implementation: str = "sdpa"
    trust_remote_code: bool = False
    allow_pickle: bool = False
    max_new_tokens: int = 64
    frames_per_batch: int = 16


class NativeVLMAdapter(VideoQAModel):
    """Shared base of the native adapters: loading, the encoder wrapper, in-LLM hooks and decoding.

    Subclasses set ``name``, ``model_type`` (config.json's), a ``Config`` (a :class:`NativeVLMConfig` subclass
    with the family's default ``path``), and implement :meth:`model_class`, :meth:`encode_frames`,
    :meth:`build_prompt` and :meth:`vision_module`. ``load(model, processor)`` also accepts objects built in
    memory (tests build tiny random-init models this way).
    """

    supports_in_llm = True
    reads_timed_text = True
    model_type: ClassVar[str] = ""
    Config = NativeVLMConfig

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.model: Any = None
        self.processor: Any = None

    # ------------------------------------------------------------------ family hooks
    def model_class(self) -> type:
        raise NotImplementedError

    def vision_module(self) -> torch.nn.Module:
        raise NotImplementedError

    def encode_frames(self, frames: Frames) -> VisualTokens:
        raise NotImplementedError

    def frame_features(self, frames: torch.Tensor) -> torch.Tensor:
        """Per-frame square token grids: uint8 ``[t, H, W, 3]`` -> ``[t * s * s, D_llm]`` (families whose
        tokens are one square grid per frame implement this and get :meth:`encode_square_grids`)."""
        raise NotImplementedError

    @torch.inference_mode()
    def encode_square_grids(self, frames: Frames) -> VisualTokens:
        """Frames ``[T, H, W, 3]`` -> tokens on grid ``(T, s, s)``, :meth:`frame_features` over chunks of
        ``frames_per_batch`` frames (bounded memory)."""
        self.load()
        chunk = max(1, int(self.config.frames_per_batch))
        parts = []
        for start in range(0, len(frames), chunk):
            data = frames.data[start:start + chunk]
            features = self.frame_features(data)
            attention = None
            if getattr(self.config, "attention", False):  # the family appended each token's attention
                features, attention = features[:, :-1], features[:, -1].float().cpu()
            count = data.shape[0]
            side = int(round((features.shape[0] // count) ** 0.5))
            grid = features.reshape(count, side, side, -1).float().cpu()
            part = VisualTokens.from_grid(grid, frames.timestamps[start:start + chunk], first_frame=start)
            parts.append(part.replace(attention=attention))
        tokens = VisualTokens.concat(parts)
        meta = {"encoder": "native", "family": self.name, "duration": float(frames.meta.duration)}
        return tokens.replace(frame_times=frames.timestamps.to(torch.float64).clone(), meta=meta)

    def build_prompt(self, tokens: VisualTokens, query: Query, subtitles: str = "") -> PromptInputs:
        """The family's prompt; ``subtitles``: a subtitle block to put before the question."""
        raise NotImplementedError

    # ------------------------------------------------------------------ shared
    def load(self, model: Any = None, processor: Any = None) -> "NativeVLMAdapter":
        """Load from ``config.path`` (or adopt an in-memory ``model`` and ``processor``); returns self."""
        if model is not None:
            self.model, self.processor = model.eval(), processor
            return self
        if self.model is None:
            if not self.config.path:
                raise ModelLoadError(f"model {self.name!r} needs a path: pass --model DIR (a checkpoint directory)")
            self.model, self.processor = load_pretrained(
                self.model_class(),
                self.config.path,
                device=self.config.device,
                dtype=self.config.dtype,
                attn_implementation=self.config.attn_implementation,
                trust_remote_code=self.config.trust_remote_code,
                allow_pickle=self.config.allow_pickle,
                expected_model_type=self.model_type or None,
            )
        return self

    @property
    def tokenizer(self) -> Any:
        return getattr(self.processor, "tokenizer", self.processor)

    @property
    def device(self) -> torch.device:
        return next(self.load().model.parameters()).device

    def native_encoder(self) -> NativeEncoder:
        return NativeEncoder(self)

    def letter_ids(self, count: int, prefix: str = MLVU_ANSWER_PREFIX) -> list[int]:
        """Token ids of the first ``count`` option letters as they follow ``prefix``, the start of the assistant
        turn (MLVU's ``Best option: (``, or nothing after an official layout's answer line;
        :func:`~mmlong.models.prompts.letter_token_ids`, the reader the Socratic model uses too)."""
        return letter_token_ids(lambda text: self.tokenizer.encode(text, add_special_tokens=False), count,
                                prefix=prefix)

    def text_ids(self, text: str) -> torch.Tensor:
        """Token ids ``[n]`` of a prompt piece (special tokens in the text are recognised, none added)."""
        return torch.tensor(self.tokenizer.encode(text, add_special_tokens=False), dtype=torch.long)

    @torch.inference_mode()
    def text_loglik(self, prompt: str, continuations: Sequence[str]) -> list[float]:
        """The language model's summed log-likelihood of each continuation after ``prompt``, with no video (the
        tokenizer's BOS, or EOS, stands before an empty prompt)."""
        self.load()
        start = self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else self.tokenizer.eos_token_id
        context = torch.cat([torch.tensor([start], dtype=torch.long), self.text_ids(prompt)])
        out = []
        for text in continuations:
            ids = torch.cat([context, self.text_ids(text)]).to(self.device)
            logits = self.model(input_ids=ids[None]).logits[0].float()
            logprobs = torch.log_softmax(logits[:-1], dim=-1).gather(1, ids[1:, None])[:, 0]
            out.append(float(logprobs[len(context) - 1:].sum()))
        return out

    def pruning(self, prompt: PromptInputs, in_llm: Sequence[Any], tokens: VisualTokens | None = None) -> Any:
        """The context manager that runs ``in_llm`` compressors inside the language model (or a no-op).

        A step with a ``hooks(layers, visual_mask, tokens)`` method (DyCoke's KV pruning, FrameFusion) brings its
        own context manager and must be the chain's only in-LLM step."""
        if not in_llm:
            return nullcontext(None)
        from mmlong.compressors.llm_pruning import InLLMPruning

        lm = language_model(self.model)
        own = [step for step in in_llm if hasattr(step, "hooks")]  # steps that bring their own hooks
        if own:
            if len(in_llm) > 1:
                names = ", ".join(getattr(step, "name", type(step).__name__) for step in in_llm)
                raise ConfigError(f"in-LLM steps {names}: {own[0].name!r} must be the only in-LLM step of a chain")
            return own[0].hooks(lm.layers, prompt.visual_mask, tokens)
        return InLLMPruning(lm.layers, list(in_llm), prompt.visual_mask, rotary=getattr(lm, "rotary_emb", None),
                            position_ids=prompt.position_ids)

    def answer(self, tokens: VisualTokens, query: Query, *, encoder: Any = None, in_llm: Sequence[Any] = (),
               timed_text: Sequence[Any] = ()) -> Answer:
        """Build the prompt from ``tokens`` (with ``timed_text`` as subtitles at the sampled frames' times), run
        in-LLM compressors, decode greedily (or pick an option)."""
        from mmlong.models.subtitles import lines_in_block, sampled_frame_times, subtitle_context

        self.load()
        times = sampled_frame_times(tokens)
        plain = bool(query.benchmark)  # an official layout lists the subtitle lines themselves
        subtitles = subtitle_context(timed_text, times, plain=plain) if timed_text else ""
        prompt = self.build_prompt(tokens, query, subtitles) if subtitles else self.build_prompt(tokens, query)
        max_new = 0 if query.is_multiple_choice else int(self.config.max_new_tokens)
        with self.pruning(prompt, in_llm, tokens) as pruner:
            result = greedy_decode(self.model, prompt.inputs_embeds, prompt.position_ids,
                                   max_new_tokens=max_new, eos_token_ids=eos_token_ids(self.model, self.tokenizer))
        details: dict[str, Any] = {
            "timed_text_seen": [line.to_dict() for line in lines_in_block(timed_text, times)] if subtitles else [],
            "prompt_tokens": prompt.length,
            "visual_tokens": int(prompt.visual_mask.sum()),
            "prefill_ms": round(result.prefill_ms, 2),
            "decode_ms": round(result.decode_ms, 2),
        }
        if pruner is not None:
            details["in_llm"] = pruner.summary()
        if query.is_multiple_choice:
            ids = self.letter_ids(len(query.options), answer_prefix(query))
            choice = read_letter(result.logits[0], ids)
            details["option_probs"] = choice.as_dict()
            vocabulary = torch.log_softmax(result.logits[0].float(), dim=-1)  # each letter's real log-likelihood
            details.update(option_loglik=[round(float(vocabulary[i]), 6) for i in ids], option_loglik_kind="letter")
            option = query.options[choice.index]
            return Answer(text=option, option=option, option_index=choice.index, details=details)
        text = self.tokenizer.decode(result.token_ids, skip_special_tokens=True).strip()
        details["generated_tokens"] = len(result.token_ids)
        return Answer(text=text, details=details)
