"""The timestamped transcript: grouping by frame or segment, exact spans, merging, formatting."""

from __future__ import annotations

import math

import pytest
import torch

from mmlong.experts.base import format_span, format_time
from mmlong.models.socratic.transcript import build_transcript, clean_class_name, time_groups
from mmlong.types import VisualTokens

#: the test classifier's distribution for a one-hot feature of each "scene kind"
KIND_PROBS = {
    0: [0.05, 0.90, 0.04, 0.01],  # seashore
    1: [0.90, 0.05, 0.03, 0.02],  # cat
    2: [0.02, 0.08, 0.90, 0.00],  # guitar
}
CLASS_NAMES = ["Egyptian cat, cat", "seashore, coast, seacoast", "acoustic_guitar", "crane"]


def make_head() -> torch.nn.Linear:
    """A real linear classifier head whose softmax is exactly KIND_PROBS[k] for the one-hot feature e_k."""
    head = torch.nn.Linear(4, 4, bias=False)
    with torch.no_grad():
        head.weight.zero_()
        for kind, probs in KIND_PROBS.items():
            head.weight[:, kind] = torch.log(torch.tensor(probs).clamp_min(1e-9))
    return head


HEAD = make_head()


def classify(features: torch.Tensor) -> torch.Tensor:
    return torch.softmax(HEAD(features), dim=-1)


def frame_tokens(kinds: list[int], times: list[float] | None = None, per_frame: int = 4) -> VisualTokens:
    """``per_frame`` tokens per frame, every token the one-hot feature of its frame's kind."""
    t = len(kinds)
    grid = torch.zeros(t, 2, per_frame // 2, 4)
    for i, kind in enumerate(kinds):
        grid[i, :, :, kind] = 1.0
    ts = torch.tensor(times if times is not None else [float(i) for i in range(t)])
    return VisualTokens.from_grid(grid, timestamps=ts)


def test_time_formatting():
    assert format_time(0) == "00:00"
    assert format_time(42.99) == "00:42"
    assert format_time(599) == "09:59"
    assert format_time(3599.5) == "59:59"
    assert format_time(3600) == "1:00:00"
    assert format_time(3725) == "1:02:05"
    assert format_time(-3) == "00:00"
    assert format_span(42, 43.2) == "00:42\u201300:43"
    assert format_span(12.1, 12.9) == "00:12"


def test_clean_class_names():
    assert clean_class_name("tabby, tabby cat") == "tabby"
    assert clean_class_name("great_white_shark") == "great white shark"
    assert clean_class_name("  Egyptian cat ") == "Egyptian cat"


def test_repeated_lines_merge_into_exact_spans():
    tokens = frame_tokens([0, 0, 0, 1, 1, 0, 2])
    transcript = build_transcript(tokens, classify, CLASS_NAMES, top_k=2, min_prob=0.04)
    assert [(line.start, line.end, line.groups) for line in transcript.lines] == [
        (0.0, 2.0, 3), (3.0, 4.0, 2), (5.0, 5.0, 1), (6.0, 6.0, 1)
    ]
    assert transcript.text().splitlines() == [
        "00:00\u201300:02: seashore 0.90, Egyptian cat 0.05",
        "00:03\u201300:04: Egyptian cat 0.90, seashore 0.05",
        "00:05: seashore 0.90, Egyptian cat 0.05",
        "00:06: acoustic guitar 0.90, seashore 0.08",
    ]
    assert transcript.lines[1].centre == 3.5
    assert transcript.features().shape == (4, 4)


def test_lines_with_the_same_classes_in_another_order_stay_apart():
    rows = torch.tensor([[0.90, 0.08, 0.02, 0.0], [0.85, 0.10, 0.05, 0.0], [0.08, 0.90, 0.02, 0.0]])
    tokens = frame_tokens([0, 1, 2])
    transcript = build_transcript(tokens, lambda f: rows[f.argmax(dim=1)], CLASS_NAMES, top_k=2)
    assert [(line.start, line.end) for line in transcript.lines] == [(0.0, 1.0), (2.0, 2.0)]
    assert transcript.lines[0].labels[0] == ("Egyptian cat", pytest.approx(0.875))


def test_top_k_and_min_prob_limit_each_line():
    tokens = frame_tokens([1])
    one = build_transcript(tokens, classify, CLASS_NAMES, top_k=3, min_prob=0.5)
    assert one.lines[0].labels == (("Egyptian cat", pytest.approx(0.9)),)
    three = build_transcript(tokens, classify, CLASS_NAMES, top_k=3, min_prob=0.01)
    assert [name for name, _ in three.lines[0].labels] == ["Egyptian cat", "seashore", "acoustic guitar"]
    # the most likely class is always said, even under min_prob
    assert len(build_transcript(tokens, classify, CLASS_NAMES, top_k=3, min_prob=1.0).lines[0].labels) == 1


def test_classes_sharing_a_cleaned_name_add_up():
    names = ["crane", "seashore", "guitar", "crane"]  # ImageNet has two classes named "crane"
    tokens = frame_tokens([2])
    transcript = build_transcript(tokens, lambda f: torch.softmax(HEAD(f), -1)[:, [2, 1, 3, 0]], names,
                                  top_k=1, min_prob=0.0)
    assert transcript.lines[0].labels[0][0] == "crane"
    assert transcript.lines[0].labels[0][1] == pytest.approx(0.92)


def test_segments_group_tokens_across_frames():
    tokens = frame_tokens([0, 0, 1, 1, 1, 2], times=[0.0, 2.0, 4.0, 6.0, 8.0, 10.0])
    segments = torch.tensor([0, 0, 1, 1, 1, 2]).repeat_interleave(4)
    tokens = tokens.replace(segments=segments)
    assert time_groups(tokens).unique().tolist() == [0, 1, 2]
    transcript = build_transcript(tokens, classify, CLASS_NAMES, top_k=1)
    assert [(line.start, line.end, line.groups) for line in transcript.lines] == [
        (0.0, 2.0, 1), (4.0, 8.0, 1), (10.0, 10.0, 1)
    ]
    assert transcript.to_dicts()[1]["labels"] == [["Egyptian cat", 0.9]]


def test_group_mean_is_size_weighted():
    # one frame: a merged token standing for 3 cat tokens and one seashore token of size 1
    tokens = VisualTokens(
        features=torch.tensor([[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]]),
        frame_ids=torch.tensor([0, 0]),
        timestamps=torch.tensor([5.0, 5.0], dtype=torch.float64),
        positions=torch.zeros(2, 3),
        sizes=torch.tensor([3.0, 1.0]),
        grid=(1, 1, 2),
    )
    transcript = build_transcript(tokens, classify, CLASS_NAMES, top_k=1)
    assert torch.allclose(transcript.lines[0].feature, torch.tensor([0.25, 0.75, 0.0, 0.0]))
    assert transcript.lines[0].weight == 4.0


def test_any_chain_output_works():
    tokens = frame_tokens([0, 0, 1, 1, 0, 0])
    # keep one token of frames 2 and 5 only (a selection)
    picked = tokens.select(torch.tensor([9, 20]))
    assert [(line.start, line.text()) for line in build_transcript(picked, classify, CLASS_NAMES, top_k=1).lines] == [
        (2.0, "00:02: Egyptian cat 0.90"), (5.0, "00:05: seashore 0.90")
    ]
    # merge every frame's tokens into one (a pooling): spans stay the frames' times
    pooled = tokens.merge(tokens.frame_ids)
    assert [(line.start, line.end) for line in build_transcript(pooled, classify, CLASS_NAMES).lines] == [
        (0.0, 1.0), (2.0, 3.0), (4.0, 5.0)
    ]


def test_max_lines_pools_time_into_coarser_spans():
    tokens = frame_tokens([0, 1, 0, 1, 2, 2, 2, 2])
    fine = build_transcript(tokens, classify, CLASS_NAMES, top_k=1)
    assert len(fine) == 5
    coarse = build_transcript(tokens, classify, CLASS_NAMES, top_k=1, max_lines=2)
    assert [(line.start, line.end) for line in coarse.lines] == [(0.0, 3.0), (4.0, 7.0)]
    assert coarse.lines[1].labels[0][0] == "acoustic guitar"
    # half seashore, half cat: the class probability of the pooled feature, not a vote
    expected = classify(torch.tensor([0.5, 0.5, 0.0, 0.0])).detach()
    assert coarse.lines[0].labels[0][1] == pytest.approx(float(expected.max()), abs=1e-6)


def test_bad_classifier_output_is_refused():
    with pytest.raises(ValueError, match="classify returned"):
        build_transcript(frame_tokens([0]), lambda f: torch.ones(f.shape[0], 2), CLASS_NAMES)
    assert len(build_transcript(frame_tokens([0]).select(torch.tensor([], dtype=torch.long)),
                                classify, CLASS_NAMES)) == 0
    assert not math.isnan(build_transcript(frame_tokens([0]), classify, CLASS_NAMES).lines[0].centre)


def test_unconfident_moments_are_written_as_nothing_recognisable():
    # frames 1-2 are out of domain: a mix of two kinds, on which the classifier spreads its mass
    tokens = frame_tokens([1, 0, 0, 1])
    tokens = tokens.replace(features=tokens.features.clone())
    mixed = torch.tensor([0.5, 0.5, 0.0, 0.0])  # softmax of this mix is far less peaked than either kind
    tokens.features[4:12] = mixed
    with torch.no_grad():
        assert float(classify(mixed.unsqueeze(0)).max()) < 0.6
    plain = build_transcript(tokens, classify, CLASS_NAMES, top_k=1)
    strict = build_transcript(tokens, classify, CLASS_NAMES, top_k=1, min_confidence=0.6)
    assert [line.text() for line in strict.lines] == [
        "00:00: Egyptian cat 0.90",
        "00:01\u201300:02: nothing recognisable",
        "00:03: Egyptian cat 0.90",
    ]
    assert "nothing recognisable" not in plain.text()
