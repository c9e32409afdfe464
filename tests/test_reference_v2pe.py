"""Reference test: V2PE positions as the official ``get_rope_pos_id`` (OpenGVLab/V2PE, ``v2pe_fix``) builds them,
written here independently, against :mod:`mmlong.models.positions` (1-D and the M-RoPE form)."""

from __future__ import annotations

import math

import pytest
import torch

from mmlong.models.positions import mrope_positions, positions_1d


def runs(kinds: list[str]) -> list[tuple[str, int]]:
    """Maximal runs of equal kinds: ``[(kind, length), ...]``."""
    out: list[tuple[str, int]] = []
    for kind in kinds:
        if out and out[-1][0] == kind:
            out[-1] = (kind, out[-1][1] + 1)
        else:
            out.append((kind, 1))
    return out


def v2pe_reference(kinds: list[str], delta: float) -> list[float]:
    """kinds: "T" (text) / "V" (visual) per row. Text continues from the last recorded position; a visual span of
    n rows after the record ``q`` takes ``arange(q, q + delta (n + 1), delta)[1:]``; the record becomes the ceil
    of its last position."""
    out, last = [], -1.0
    for kind, n in runs(kinds):
        if kind == "T":
            out += [last + 1 + k for k in range(n)]
            last = out[-1]
        else:
            span = torch.arange(last, last + delta * (n + 1), delta, dtype=torch.float64)[1:n + 1].tolist()
            out += span
            last = float(math.ceil(span[-1]))
    return out


LAYOUTS = {
    "one span": "TTTVVVVVVVTT",
    "several spans": "TTVVVVTVVVVVVVVVTTTVVT",
    "span first": "VVVVVTTT",
    "adjacent text after span of one": "TVTVVT",
}


@pytest.mark.parametrize("delta", [1.0, 0.5, 1 / 16])
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_positions_1d_equal_the_official_rule(layout, delta):
    kinds = list(LAYOUTS[layout])
    mask = torch.tensor([k == "V" for k in kinds])
    assert positions_1d(mask, delta=delta).tolist() == v2pe_reference(kinds, delta)
    if delta == 1.0:
        assert positions_1d(mask, delta=delta).tolist() == list(range(len(kinds)))


@pytest.mark.parametrize("delta", [1.0, 0.5, 1 / 16])
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_mrope_with_a_diagonal_span_is_the_1d_rule_on_every_axis(layout, delta):
    """A span whose tokens sit at offsets (i, i, i), extent n, is a 1-D sequence: each axis follows V2PE exactly."""
    kinds = list(LAYOUTS[layout])
    segments = [n if kind == "T" else (torch.arange(n, dtype=torch.float64).unsqueeze(1).expand(n, 3), float(n))
                for kind, n in runs(kinds)]
    positions = mrope_positions(segments, delta=delta)
    for axis in range(3):
        assert positions[axis].tolist() == v2pe_reference(kinds, delta)


def mrope_reference(segments, delta):
    """Per row, the (t, h, w) positions: text at q + 1 ...; visual at q + delta (1 + offset); q after a span
    ``ceil(q + delta * extent)`` (delta = 1: Qwen2-VL's ``start + extent``)."""
    rows, q = [], -1.0
    for segment in segments:
        if isinstance(segment, int):
            for _ in range(segment):
                q += 1
                rows.append([q, q, q])
        else:
            offsets, extent = segment
            for t, h, w in offsets.tolist():
                rows.append([q + delta * (1 + t), q + delta * (1 + h), q + delta * (1 + w)])
            q = float(math.ceil(q + delta * extent))
    return torch.tensor(rows, dtype=torch.float64).T


def grid_offsets(t, h, w):
    tt, hh, ww = torch.meshgrid(torch.arange(t), torch.arange(h), torch.arange(w), indexing="ij")
    return torch.stack([tt, hh, ww], -1).reshape(-1, 3).double()


@pytest.mark.parametrize("delta", [1.0, 0.5, 1 / 16])
def test_mrope_several_spans_equal_the_reference(delta):
    segments = [4, (grid_offsets(2, 3, 4), 4.0), 3, (grid_offsets(3, 2, 2), 2.0), 2]
    assert torch.equal(mrope_positions(segments, delta=delta), mrope_reference(segments, delta))
    if delta == 1.0:  # the model's own rule: text after a span at start + max(H', W')
        whole = mrope_positions(segments, delta=1.0)
        assert whole[:, 4 + 24].tolist() == [8.0, 8.0, 8.0]
