"""Pairing checks for merging compressors: each output feature must sit on its own position, time and size.

A reference test that compares sorted columns or multisets of feature rows passes even when a compressor gives
the right features to the wrong tokens. These helpers compare whole tokens instead: the row
``[feature, t, h, w, time, size]`` of every output token against the rows a reference builds from its own groups.
"""

from __future__ import annotations

from typing import Sequence

import torch

from mmlong.types import VisualTokens


def token_rows(tokens: VisualTokens) -> torch.Tensor:
    """float64 ``[N, D + 5]``: each token's feature, position (t, h, w), time and size side by side."""
    return torch.cat([tokens.features.double(), tokens.positions.double(), tokens.timestamps.double().unsqueeze(1),
                      tokens.sizes.double().unsqueeze(1)], dim=1)


def group_rows(tokens: VisualTokens, members: Sequence[Sequence[int]], features: torch.Tensor,
               weights: torch.Tensor | None = None) -> torch.Tensor:
    """The rows a merge should give: output ``g`` has ``features[g]``, the ``weights``-weighted (default: size)
    mean position and time of the input tokens ``members[g]`` and the sum of their sizes."""
    w = (tokens.sizes if weights is None else weights).double()
    rows = []
    for feature, group in zip(features, members):
        index = torch.as_tensor(list(group), dtype=torch.long)
        gw = w[index]
        pos = (tokens.positions[index].double() * gw.unsqueeze(1)).sum(0) / gw.sum()
        time = (tokens.timestamps[index].double() * gw).sum() / gw.sum()
        rows.append(torch.cat([feature.double(), pos, time.view(1), tokens.sizes[index].double().sum().view(1)]))
    return torch.stack(rows) if rows else torch.zeros(0, tokens.dim + 5, dtype=torch.float64)


def assert_paired(out: VisualTokens, expected: torch.Tensor, atol: float = 1e-5) -> None:
    """Every output token equals one expected row (feature, position, time and size together), one to one."""
    got = token_rows(out)
    assert got.shape == expected.shape, (tuple(got.shape), tuple(expected.shape))
    if got.shape[0] == 0:
        return
    cost = (got.unsqueeze(1) - expected.unsqueeze(0)).abs().amax(dim=-1)  # [N_out, N_expected]
    best = cost.argmin(dim=1)
    worst = float(cost[torch.arange(got.shape[0]), best].max())
    assert torch.unique(best).shape[0] == got.shape[0], "two output tokens claim the same expected token"
    assert worst <= atol, f"an output token's feature does not sit on its position/time/size (off by {worst:.3g})"


def mean_rows(tokens: VisualTokens, members: Sequence[Sequence[int]],
              weights: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`group_rows` of a plain merge: each group's feature is its ``weights``-weighted (default: size) mean."""
    w = (tokens.sizes if weights is None else weights).double()
    features = []
    for group in members:
        index = torch.as_tensor(list(group), dtype=torch.long)
        features.append((tokens.features[index].double() * w[index].unsqueeze(1)).sum(0) / w[index].sum())
    return group_rows(tokens, members, torch.stack(features) if features else tokens.features[:0], weights)
