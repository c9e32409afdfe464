"""What every native VLM adapter (Qwen2-VL, LLaVA-OneVision, SmolVLM2) shares, written once.

A family adapter subclasses :class:`NativeVLMAdapter` and implements three things:

- ``model_class()``: the transformers class to load (e.g. ``Qwen2VLForConditionalGeneration``);
- ``encode_frames(frames) -> VisualTokens``: the model's own processor + vision tower (+ projector) on frames;
- ``build_prompt(tokens, query) -> PromptInputs``: the family's chat prompt with the visual tokens spliced in
  (:func:`splice_embeddings`), position ids (1-D, or 3-D M-RoPE) and where the visual tokens sit.

Everything else lives here: loading with the security switches (:func:`load_pretrained`: ``trust_remote_code``
off, safetensors only unless ``allow_pickle``; one-line :class:`~mmlong.errors.ModelLoadError` otherwise), family
detection from ``config.json`` (:func:`detect_family`), the greedy decode loop over ``inputs_embeds`` with a KV
cache (:func:`greedy_decode`), multiple-choice letters from the next-token distribution (:func:`mmlong.models.prompts.read_letter`),
the ``native`` encoder wrapper (:class:`NativeEncoder`) and :meth:`NativeVLMAdapter.answer`, which installs
in-LLM compressors (:mod:`mmlong.compressors.llm_pruning`) around the decode.

Nothing here patches a transformers class; pruning uses forward pre-hooks that are removed on exit.
"""

from __future__ import annotations

import json
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Mapping, Sequence

import torch

from mmlong.encoders.base import Encoder
from mmlong.errors import ModelLoadError
from mmlong.models.base import VideoQAModel
from mmlong.types import Answer, Frames, Query, VisualTokens

#: config.json ``model_type`` -> registered model name
FAMILIES: Mapping[str, str] = MappingProxyType(
    {
        "qwen2_vl": "qwen2-vl",
        "llava_onevision": "llava-onevision",
        "smolvlm": "smolvlm2",
    }
)

_DTYPES: Mapping[str, torch.dtype] = MappingProxyType(
    {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
)


# ---------------------------------------------------------------------------------------------- checkpoints
def is_local_reference(path: str) -> bool:
    """True when ``path`` names a local directory (existing, or spelled like one) rather than a hub id."""
    if Path(path).expanduser().exists():
        return True
    return path.startswith((".", "/", "~", "\\")) or path.count("/") > 1 or "\\" in path


def read_checkpoint_config(path: str) -> dict[str, Any]:
    """The parsed ``config.json`` of a local checkpoint directory; ModelLoadError when missing or unreadable."""
    root = Path(path).expanduser()
    if not root.exists():
        raise ModelLoadError(
            "no such model directory; pass a local checkpoint directory (config.json + *.safetensors) or a hub id",
            path,
        )
    if not root.is_dir():
        raise ModelLoadError("not a directory; pass the checkpoint directory that holds config.json", path)
    config_file = root / "config.json"
    if not config_file.is_file():
        raise ModelLoadError("no config.json in this directory; pass the checkpoint directory itself", path)
    try:
        return json.loads(config_file.read_text())
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"config.json cannot be read ({err}); re-save the checkpoint", path) from err


def detect_family(path: str) -> str:
    """The registered model name for a local checkpoint, from ``config.json``'s ``model_type``.

    >>> detect_family("/no/such/dir")
    Traceback (most recent call last):
    ...
    mmlong.errors.ModelLoadError: /no/such/dir: no such model directory; pass a local checkpoint directory (config.json + *.safetensors) or a hub id
    """
    model_type = read_checkpoint_config(path).get("model_type", "")
    if model_type not in FAMILIES:
        known = ", ".join(f"{k} ({v})" for k, v in FAMILIES.items())
        raise ModelLoadError(
            f"model_type {model_type!r} is not a supported family; supported: {known}", path
        )
    return FAMILIES[model_type]


def check_local_checkpoint(path: str, *, trust_remote_code: bool, allow_pickle: bool) -> dict[str, Any]:
    """Refuse, with a one-line fix, a local checkpoint that needs remote code or pickle weights we were not allowed."""
    config = read_checkpoint_config(path)
    if config.get("auto_map") and not trust_remote_code:
        raise ModelLoadError(
            "config.json maps to the checkpoint's own Python code (auto_map), which needs trust_remote_code; "
            "pass --trust-remote-code if you trust it",
            path,
        )
    root = Path(path).expanduser()
    safetensors = list(root.glob("*.safetensors"))
    pickles = [p for p in root.glob("*") if p.suffix in (".bin", ".pt", ".pth", ".ckpt")]
    if not safetensors and pickles and not allow_pickle:
        raise ModelLoadError(
            f"only pickle weights ({pickles[0].name}); pass --allow-pickle if you trust the file, "
            "or convert it to safetensors",
            path,
        )
    if not safetensors and not pickles:
        raise ModelLoadError("no weights (*.safetensors) in this directory; save the model there first", path)
    return config


def resolve_dtype(name: str | torch.dtype) -> torch.dtype:
    if isinstance(name, torch.dtype):
        return name
    if name not in _DTYPES:
        raise ModelLoadError(f"unknown dtype {name!r}; use one of {', '.join(_DTYPES)}")
    return _DTYPES[name]


def load_pretrained(
    model_class: type,
    path: str,
    *,
    device: str = "cpu",
    dtype: str | torch.dtype = "float32",
    attn_implementation: str | None = "sdpa",
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
    expected_model_type: str | None = None,
) -> tuple[Any, Any]:
    """Load ``(model, processor)`` from a local directory or a hub id, safely.

    Local directories are checked first (:func:`check_local_checkpoint`) and a wrong family is named.
    Weights load with ``use_safetensors=True`` unless ``allow_pickle``; ``trust_remote_code`` is passed through
    and off by default. Any loading failure becomes a one-line :class:`ModelLoadError` saying what to do.
    """
    from transformers import AutoProcessor

    if is_local_reference(path):
        config = check_local_checkpoint(path, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
        found = config.get("model_type")
        if expected_model_type and found != expected_model_type:
            hint = f"; use --model {FAMILIES[found]}" if found in FAMILIES else ""
            raise ModelLoadError(f"config.json says model_type {found!r}, not {expected_model_type!r}{hint}", path)
        path = str(Path(path).expanduser())
    kwargs: dict[str, Any] = dict(dtype=resolve_dtype(dtype), trust_remote_code=trust_remote_code)
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if not allow_pickle:
        kwargs["use_safetensors"] = True
    try:
        model = model_class.from_pretrained(path, **kwargs)
        processor = AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)
    except ModelLoadError:
        raise
    except Exception as err:  # transformers raises OSError/ValueError/EnvironmentError with long texts
        reason = " ".join(str(err).split())
        if "trust_remote_code" in reason:
            reason = "it needs trust_remote_code; pass --trust-remote-code if you trust it"
        elif len(reason) > 200:
            reason = reason[:200] + "..."
        raise ModelLoadError(
            f"cannot load the model ({reason}); pass a local checkpoint directory saved with save_pretrained",
            path,
        ) from err
    model.to(device)
    model.eval()
    return model, processor


# ---------------------------------------------------------------------------------------------- model parts
def language_model(model: torch.nn.Module) -> torch.nn.Module:
    """The decoder-only text model inside a VLM (the module that owns ``layers``)."""
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    for candidate in (decoder, getattr(getattr(model, "model", None), "language_model", None),
                      getattr(getattr(model, "model", None), "text_model", None)):
        if candidate is not None and isinstance(getattr(candidate, "layers", None), torch.nn.ModuleList):
            return candidate
    raise ModelLoadError(f"{type(model).__name__}: cannot find the language model's decoder layers")


def decoder_layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The decoder layers of the VLM's language model, where in-LLM compressors hook."""
    return language_model(model).layers


def splice_embeddings(
    embed: torch.nn.Module, segments: Sequence[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate text and visual segments into one sequence of embeddings.

    segments: int64 ``[n_i]`` token ids (embedded with ``embed``) or float ``[n_i, D]`` visual features (used as
    they are). Returns ``inputs_embeds [1, L, D]`` and ``visual_mask`` bool ``[L]`` (True at visual rows).
    """
    weight = embed.weight
    parts, masks = [], []
    for seg in segments:
        if seg.dtype in (torch.int32, torch.int64):
            parts.append(embed(seg.to(weight.device)))
            masks.append(torch.zeros(seg.shape[0], dtype=torch.bool))
        else:
            parts.append(seg.to(device=weight.device, dtype=weight.dtype))
            masks.append(torch.ones(seg.shape[0], dtype=torch.bool))
    return torch.cat(parts).unsqueeze(0), torch.cat(masks)


def placeholder_segments(ids: torch.Tensor, placeholder_id: int, spans: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Segments for :func:`splice_embeddings` from a prompt tokenized with one placeholder per visual span.

    ids: int64 ``[L]`` with exactly ``len(spans)`` occurrences of ``placeholder_id``; spans: float ``[n_i, D]``.
    Tokenizing the whole prompt once (placeholders are special tokens, so they split the text) gives the same
    text ids as the family's processor, which expands each placeholder to ``n_i`` copies.

    >>> segs = placeholder_segments(torch.tensor([5, 9, 6, 9]), 9, [torch.zeros(2, 4), torch.ones(1, 4)])
    >>> [tuple(s.shape) for s in segs]
    [(1,), (2, 4), (1,), (1, 4), (0,)]
    """
    where = (ids == placeholder_id).nonzero().flatten().tolist()
    if len(where) != len(spans):
        raise ValueError(f"prompt has {len(where)} visual placeholder(s) for {len(spans)} span(s)")
    segments, start = [], 0
    for row, span in zip(where, spans):
        segments += [ids[start:row], span]
        start = row + 1
    segments.append(ids[start:])
    return segments


def video_duration(tokens: VisualTokens) -> float:
    """The video's duration in seconds: the decoder's (``meta["video"]``), the encoder's (``meta["duration"]``),
    else the last sampled frame's time."""
    video = tokens.meta.get("video") or {}
    for value in (video.get("duration"), tokens.meta.get("duration")):
        if value:
            return float(value)
    times = tokens.frame_times if tokens.frame_times is not None else tokens.timestamps
    return float(times.max()) if times.numel() else 0.0


def frame_time(tokens: VisualTokens, frame_id: int) -> float:
    """Time in seconds of sampled frame ``frame_id``: ``frame_times`` when kept, else its earliest token's time."""
    if tokens.frame_times is not None and 0 <= frame_id < tokens.frame_times.shape[0]:
        return float(tokens.frame_times[frame_id])
    return float(tokens.timestamps[tokens.frame_ids == frame_id].min())


@dataclass
class PromptInputs:
    """One prompt ready for the language model.

    inputs_embeds ``[1, L, D]``; position_ids ``[1, L]`` (1-D RoPE) or ``[3, 1, L]`` (M-RoPE), long or float
    (V2PE); visual_mask bool ``[L]`` (True at visual rows); text: the prompt with one marker per visual span.
    """

    inputs_embeds: torch.Tensor
    position_ids: torch.Tensor
    visual_mask: torch.Tensor
    text: str = ""

    @property
    def length(self) -> int:
        return int(self.inputs_embeds.shape[1])


@dataclass
class DecodeResult:
    """Greedy decode output: generated ``token_ids``, ``logits`` float32 ``[steps, V]`` (row 0 is the prefill's
    next-token distribution), ``prefill_ms`` and ``decode_ms``."""

    token_ids: list[int]
    logits: torch.Tensor
    prefill_ms: float
    decode_ms: float


def _cache_keyword(model: torch.nn.Module) -> str:
    import inspect

    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


@torch.inference_mode()
def greedy_decode(
    model: torch.nn.Module,
    inputs_embeds: torch.Tensor,
    position_ids: torch.Tensor,
    *,
    max_new_tokens: int,
    eos_token_ids: Sequence[int] = (),
) -> DecodeResult:
    """Greedy decoding from ``inputs_embeds [1, L, D]`` with a KV cache.

    ``position_ids`` (``[1, L]`` or ``[3, 1, L]``) are the prompt's; each new token takes ``max + 1``, then
    ``+1`` per step (as transformers' own M-RoPE ``rope_deltas`` do). ``max_new_tokens = 0`` runs the prefill
    only (its logits are what multiple choice reads). Stops after an ``eos_token_ids`` token.
    """
    cache_kw = _cache_keyword(model)
    embed = model.get_input_embeddings()
    length = inputs_embeds.shape[1]
    attention_mask = torch.ones(1, length, dtype=torch.long, device=inputs_embeds.device)
    start = time.perf_counter()
    out = model(inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids,
                use_cache=True, logits_to_keep=1)
    prefill_ms = (time.perf_counter() - start) * 1000.0
    logits = [out.logits[0, -1].float()]
    cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
    next_position = position_ids.max() + 1
    tokens: list[int] = []
    eos = set(int(e) for e in eos_token_ids)
    start = time.perf_counter()
    for step in range(max_new_tokens):
        token = int(logits[-1].argmax())
        tokens.append(token)
        if token in eos or step == max_new_tokens - 1:
            break
        step_embeds = embed(torch.tensor([[token]], device=inputs_embeds.device))
        step_positions = torch.full_like(position_ids[..., :1], 0) + next_position + step
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones(1, 1)], dim=1)
        out = model(inputs_embeds=step_embeds, attention_mask=attention_mask, position_ids=step_positions,
                    use_cache=True, logits_to_keep=1, **{cache_kw: cache})
        cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
        logits.append(out.logits[0, -1].float())
    decode_ms = (time.perf_counter() - start) * 1000.0
    return DecodeResult(tokens, torch.stack(logits), prefill_ms, decode_ms)


def eos_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """End-of-sequence ids: the generation config's (an int or a list), else the tokenizer's."""
    gen = getattr(model, "generation_config", None)
    ids = getattr(gen, "eos_token_id", None) if gen is not None else None
    if ids is None:
        ids = getattr(tokenizer, "eos_token_id", None)
    if ids is None:
        return []
    return [int(i) for i in (ids if isinstance(ids, (list, tuple)) else [ids])]


# ---------------------------------------------------------------------------------------------- prompts
def option_letter_ids(tokenizer: Any, count: int) -> list[int]:
    """Token id of each option letter ``A, B, ...`` (the token that follows ``"("``)."""
    ids = []
    for i in range(count):
        letter = chr(ord("A") + i)
        token_id = tokenizer.convert_tokens_to_ids(letter)
        if token_id is None or token_id == getattr(tokenizer, "unk_token_id", None):
            encoded = tokenizer.encode("(" + letter, add_special_tokens=False)
            token_id = encoded[-1]
        ids.append(int(token_id))
    return ids


def multiple_choice_text(query: Query, subtitles: str = "") -> str:
    """The question text that follows the video: the MLVU instruction and question block when there are
    options (the answer prefix goes after, in the assistant turn), else the question; ``subtitles`` (a block
    from :func:`mmlong.models.subtitles.subtitle_context`) goes before the question."""
    from mmlong.models.prompts import mc_prompt

    if not query.is_multiple_choice:
        return "\n".join(p for p in (subtitles, query.question) if p)
    return mc_prompt(query.question, query.options, context=subtitles, answer_prefix="")


#: what follows the assistant turn's start for multiple choice, so the next token is the letter
MC_ANSWER_PREFIX = "Best option: ("


# ---------------------------------------------------------------------------------------------- encoder + adapter
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
        super().__init__(self.Config(model=f"{adapter.name}:{adapter.config.path}"))
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
            count = data.shape[0]
            side = int(round((features.shape[0] // count) ** 0.5))
            grid = features.reshape(count, side, side, -1).float().cpu()
            parts.append(VisualTokens.from_grid(grid, frames.timestamps[start:start + chunk], first_frame=start))
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

    def text_ids(self, text: str) -> torch.Tensor:
        """Token ids ``[n]`` of a prompt piece (special tokens in the text are recognised, none added)."""
        return torch.tensor(self.tokenizer.encode(text, add_special_tokens=False), dtype=torch.long)

    def pruning(self, prompt: PromptInputs, in_llm: Sequence[Any]) -> Any:
        """The context manager that runs ``in_llm`` compressors inside the language model (or a no-op)."""
        if not in_llm:
            return nullcontext(None)
        from mmlong.compressors.llm_pruning import InLLMPruning

        return InLLMPruning(decoder_layers(self.model), list(in_llm), prompt.visual_mask)

    def answer(self, tokens: VisualTokens, query: Query, *, encoder: Any = None, in_llm: Sequence[Any] = (),
               timed_text: Sequence[Any] = ()) -> Answer:
        """Build the prompt from ``tokens`` (with ``timed_text`` as subtitles at the sampled frames' times), run
        in-LLM compressors, decode greedily (or pick an option)."""
        from mmlong.models.subtitles import sampled_frame_times, subtitle_context

        self.load()
        subtitles = subtitle_context(timed_text, sampled_frame_times(tokens)) if timed_text else ""
        prompt = self.build_prompt(tokens, query, subtitles) if subtitles else self.build_prompt(tokens, query)
        max_new = 0 if query.is_multiple_choice else int(self.config.max_new_tokens)
        with self.pruning(prompt, in_llm) as pruner:
            result = greedy_decode(self.model, prompt.inputs_embeds, prompt.position_ids,
                                   max_new_tokens=max_new, eos_token_ids=eos_token_ids(self.model, self.tokenizer))
        details: dict[str, Any] = {
            "prompt_tokens": prompt.length,
            "visual_tokens": int(prompt.visual_mask.sum()),
            "prefill_ms": round(result.prefill_ms, 2),
            "decode_ms": round(result.decode_ms, 2),
        }
        if pruner is not None:
            details["in_llm"] = pruner.summary()
        if query.is_multiple_choice:
            from mmlong.models.prompts import read_letter

            choice = read_letter(result.logits[0], option_letter_ids(self.tokenizer, len(query.options)))
            details["option_probs"] = choice.as_dict()
            option = query.options[choice.index]
            return Answer(text=option, option=option, option_index=choice.index, details=details)
        text = self.tokenizer.decode(result.token_ids, skip_special_tokens=True).strip()
        details["generated_tokens"] = len(result.token_ids)
        return Answer(text=text, details=details)

