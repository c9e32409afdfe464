"""An inference-only copy of an EfficientNet(-Lite) network: the same function, fewer and cheaper operations.

Three exact rewrites (results equal the original up to float32 rounding, ~1e-5 on features of size ~6):

- **batch norm folded into the convolution before it** (``w' = w * g / sqrt(v + eps)``,
  ``b' = beta - m * g / sqrt(v + eps)``): one pass over each activation instead of two;
- **symmetric "SAME" padding moved into the convolution** (``padding=(p, p)`` instead of a separate
  ``ZeroPad2d`` that copies the whole tensor); the asymmetric padding of stride-2 layers stays as it is;
- **in-place ReLU6** on tensors no one else holds (each activation follows a fresh convolution output).

The copy is also stored ``channels_last`` (NHWC), the layout oneDNN's depthwise and 1x1 convolutions run
fastest in on CPU. Together about 2x less CPU per frame than the eager module (the 96 px scan of an hour:
~40 -> ~15 CPU s on one core). The original module is left untouched (its weights still identify the encoder).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

#: (convolution, batch norm) attribute pairs of the stem/head and of one MBConv block, in the order they run
NETWORK_PAIRS = (("_conv_stem", "_bn0"), ("_conv_head", "_bn1"))
BLOCK_PAIRS = (("_expand_conv", "_bn0"), ("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2"))


def fold_batch_norm(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> None:
    """Fold ``norm`` (eval mode: running statistics) into ``conv``'s weight ``[O, I, kh, kw]`` and bias ``[O]``."""
    scale = norm.weight.detach() / torch.sqrt(norm.running_var + norm.eps)
    bias = norm.bias.detach() - norm.running_mean * scale
    if conv.bias is not None:
        bias = bias + conv.bias.detach() * scale
    conv.weight = nn.Parameter(conv.weight.detach() * scale.view(-1, 1, 1, 1), requires_grad=False)
    conv.bias = nn.Parameter(bias, requires_grad=False)


def inline_symmetric_padding(conv: nn.Conv2d) -> None:
    """Move a static ``ZeroPad2d`` that pads both sides equally into the convolution's own ``padding``."""
    pad = getattr(conv, "static_padding", None)
    if isinstance(pad, nn.ZeroPad2d):
        left, right, top, bottom = pad.padding
        if left == right and top == bottom and tuple(conv.padding) == (0, 0):
            conv.static_padding = nn.Identity()
            conv.padding = (top, left)


def _fold_pair(owner: nn.Module, conv_name: str, norm_name: str) -> None:
    conv, norm = getattr(owner, conv_name, None), getattr(owner, norm_name, None)
    if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
        fold_batch_norm(conv, norm)
        inline_symmetric_padding(conv)
        setattr(owner, norm_name, nn.Identity())


def inference_copy(network: nn.Module) -> nn.Module:
    """A folded, ``channels_last``, eval-mode deep copy of an ``efficientnet_lite_pytorch`` ``EfficientNet``
    (``extract_features`` and ``forward`` keep their signatures; feed it NHWC-strided input for full speed)."""
    fast = copy.deepcopy(network).eval()
    for conv_name, norm_name in NETWORK_PAIRS:
        _fold_pair(fast, conv_name, norm_name)
    for block in fast._blocks:
        for conv_name, norm_name in BLOCK_PAIRS:
            _fold_pair(block, conv_name, norm_name)
    for module in fast.modules():
        if isinstance(module, nn.ReLU6):
            module.inplace = True
    for parameter in fast.parameters():
        parameter.requires_grad_(False)
    return fast.to(memory_format=torch.channels_last)
