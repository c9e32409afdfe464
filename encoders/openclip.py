"""Any open_clip model as a visual encoder: patch tokens in the joint image-text space, and its text tower.

Radford et al. 2021, "Learning Transferable Visual Models From Natural Language Supervision" (CLIP); the models
come from open_clip (Ilharco et al. 2021; Cherti et al. 2023, "Reproducible scaling laws for contrastive
language-image learning"). Architecture (``model="ViT-B-32"``) and weights (``pretrained=/path/file``) are
separate, as in open_clip. Weights load only from a local file: safetensors, or ``.pt/.pth/.bin`` through
``torch.load(weights_only=True)``; without one the model is randomly initialised (with a warning).

Tokens: for ViT image towers, the last block's patch tokens after the final LayerNorm, projected with the tower's
own projection into the joint space, on the grid ``(T, image_size / patch, image_size / patch)``; so
``embed_visual`` of any token mean is just its L2 normalisation. Other towers (ResNet, timm) give one token per
frame, the pooled image embedding, on the grid ``(T, 1, 1)``.
"""

from __future__ import annotations

import difflib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mmlong.cache import file_sha256
from mmlong.encoders.base import Encoder
from mmlong.encoders.preprocess import encode_batched, l2_normalize, prepare_pixels, resolve_device, resolve_dtype
from mmlong.errors import ConfigError, ModelLoadError
from mmlong.types import Frames, VisualTokens

WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".npz")


def _pair(size: Any) -> tuple[int, int]:
    return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))


class OpenClipEncoder(Encoder):
    """open_clip image tower as an encoder; its text tower gives ``encode_text``.

    >>> config = OpenClipEncoder.Config(model="ViT-B-32", pretrained="/weights/b32.safetensors")
    >>> enc = OpenClipEncoder(config)  # doctest: +SKIP
    >>> enc.encode(frames).grid        # doctest: +SKIP
    (T, 7, 7)
    """

    name = "open_clip"
    has_text = True

    @dataclass
    class Config:
        device: str = "cpu"
        dtype: str = "float32"
        batch_size: int = 16
        #: Any architecture open_clip lists (``open_clip.list_models()``).
        model: str = "ViT-B-32"
        #: Local weights file (.safetensors, or .pt/.pth/.bin read with weights_only=True). None: random init.
        pretrained: str | None = None
        #: Input side in pixels; None keeps the architecture's own.
        image_size: int | None = None
        resize: str = "squash"
        #: Pixel normalisation; None keeps the architecture's preprocessing config.
        mean: tuple[float, ...] | None = None
        std: tuple[float, ...] | None = None

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        import open_clip

        cfg = self.config
        self.device = resolve_device(cfg.device)
        self.dtype = resolve_dtype(cfg.dtype)
        available = open_clip.list_models()
        if cfg.model not in available:
            close = difflib.get_close_matches(cfg.model, available, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"unknown open_clip model {cfg.model!r}{hint} (open_clip.list_models() lists them)")
        weights = self._check_weights_path() if cfg.pretrained else None
        module = open_clip.create_model(
            cfg.model,
            pretrained=None,
            pretrained_image=False,
            pretrained_text=False,
            force_image_size=cfg.image_size,
        )
        self.weights_path = self._load_weights(module, weights) if weights is not None else None
        if self.weights_path is None:
            warnings.warn(
                f"open_clip {cfg.model}: no pretrained= file given, using random weights (features mean nothing)",
                stacklevel=2,
            )
        self.module = module.to(device=self.device, dtype=self.dtype).eval()
        self.tokenizer = open_clip.get_tokenizer(cfg.model)
        pp = module.visual.preprocess_cfg
        self.image_size = _pair(module.visual.image_size if hasattr(module.visual, "image_size") else pp["size"])
        self.mean = tuple(cfg.mean) if cfg.mean is not None else tuple(pp["mean"])
        self.std = tuple(cfg.std) if cfg.std is not None else tuple(pp["std"])
        self.patch_tokens = isinstance(module.visual, open_clip.transformer.VisionTransformer) and (
            getattr(module.visual, "attn_pool", None) is None
        )
        if self.patch_tokens:
            patch = _pair(module.visual.patch_size)
            self.grid_size = (self.image_size[0] // patch[0], self.image_size[1] // patch[1])
        else:
            self.grid_size = (1, 1)

    def _check_weights_path(self) -> Path:
        path = Path(self.config.pretrained).expanduser()
        if not path.is_file():
            raise ModelLoadError(
                "pretrained= must be a local weights file (.safetensors, .pt, .bin); hub tags cannot be downloaded "
                "here", str(path)
            )
        if path.suffix not in WEIGHT_SUFFIXES:
            raise ModelLoadError(f"unknown weights format {path.suffix!r}; use one of {', '.join(WEIGHT_SUFFIXES)}",
                                 str(path))
        return path

    def _load_weights(self, module: torch.nn.Module, path: Path) -> Path:
        import open_clip

        try:
            open_clip.load_checkpoint(module, str(path), strict=True, weights_only=True)
        except Exception as err:  # refused pickles, shape mismatches, damaged files
            raise ModelLoadError(
                f"cannot load into open_clip {self.config.model} ({type(err).__name__}: {str(err).splitlines()[0]})",
                str(path),
            ) from err
        return path

    # ------------------------------------------------------------------ visual side
    def _pixels(self, frames: torch.Tensor) -> torch.Tensor:
        return prepare_pixels(frames, self.image_size, self.mean, self.std, self.config.resize, self.device, self.dtype)

    def _joint_grid(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels ``[B, 3, H, W]`` to joint-space tokens ``[B, h, w, E]``."""
        visual = self.module.visual
        b = pixels.shape[0]
        if not self.patch_tokens:
            return self.module.encode_image(pixels).reshape(b, 1, 1, -1)
        out = visual.forward_intermediates(
            pixels, indices=1, normalize_intermediates=True, intermediates_only=True, output_fmt="NLC"
        )
        tokens = out["image_intermediates"][-1]  # [B, h*w, width], after ln_post
        if visual.proj is not None:
            tokens = tokens @ visual.proj
        return tokens.reshape(b, *self.grid_size, -1)

    @property
    def embed_dim(self) -> int:
        proj = getattr(self.module.visual, "proj", None)
        if self.patch_tokens and proj is not None:
            return int(proj.shape[1])
        if self.patch_tokens:
            return int(self.module.visual.ln_post.normalized_shape[0])
        return int(self.module.text_projection.shape[1]) if hasattr(self.module, "text_projection") else -1

    def encode(self, frames: Frames) -> VisualTokens:
        """``T`` frames to ``T * h * w`` joint-space tokens on the grid ``(T, h, w)``."""
        if len(frames) == 0:
            grid = torch.empty(0, *self.grid_size, self.embed_dim)
        else:
            grid = encode_batched(frames.data, self.config.batch_size, self._pixels, self._joint_grid)
        meta = {
            "encoder": self.name,
            "model": self.config.model,
            "frame_indices": frames.indices.tolist(),
            "input_size": list(self.image_size),
        }
        return VisualTokens.from_grid(grid, frames.timestamps, meta=meta)

    # ------------------------------------------------------------------ text side
    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """Unit text-tower embeddings ``[Q, E]``."""
        tokens = self.tokenizer(list(texts)).to(self.device)
        with torch.inference_mode():
            return l2_normalize(self.module.encode_text(tokens).float().cpu())

    def embed_visual(self, features: torch.Tensor) -> torch.Tensor:
        """Tokens are already in the joint space: just L2-normalise ``[F, E]``."""
        return l2_normalize(features)

    # ------------------------------------------------------------------ identity
    def fingerprint_weights(self) -> str:
        """Hash of the weights file when one was given, else of the (random) state dict."""
        if self.weights_path is not None:
            return file_sha256(self.weights_path)[:16]
        return super().fingerprint_weights()
