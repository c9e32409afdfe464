"""The lmms-eval bridge's request handling, without lmms-eval: prompts of the official lmms-eval 0.7.3 task utils
(re-implemented here) become queries whose options come from the document, never from subtitle lines; the
interleaved LongVideoBench prompt; real log-likelihoods from a native VLM; acc_mutual_info's bare requests."""

from __future__ import annotations

import pytest
import torch

from mmlong.apps.lmms_queries import option_logliks, query_for, split_requests
from mmlong.errors import ConfigError
from mmlong.qa import Answer

VIDEOMME_DOC = {"videoID": "vid1", "question": "What does the host say first?", "duration": "short",
                "options": ["A. Hello.", "B. Goodbye.", "C. Thanks.", "D. Welcome."], "answer": "A"}


def lmms_videomme_subtitle_prompt(doc: dict, subtitle_text: str) -> str:
    """videomme_doc_to_text_subtitle's layout."""
    option_prompt = ("Select the best answer to the following multiple-choice question based on the video and the "
                     "subtitles. Respond with only the letter (A, B, C, or D) of the correct option.")
    question = doc["question"] + "\n" + "\n".join(doc["options"])
    return ("This video's subtitles are listed below: \n" + subtitle_text + "\n" + option_prompt + "\n" + question
            + "\n" + "The best answer is:")


def test_subtitle_lines_that_look_like_options_are_not_options():
    prompt = lmms_videomme_subtitle_prompt(VIDEOMME_DOC, "A: Hello everyone.\nB: Hi!\nC. Let us start.")
    query = query_for(prompt, VIDEOMME_DOC)
    assert query.options == ("Hello.", "Goodbye.", "Thanks.", "Welcome.")
    assert "A: Hello everyone." in query.question and "A. Hello." not in query.question
    # without the document (a generic task), the last run of option lines is the options
    assert query_for(prompt, None).options == ("Hello.", "Goodbye.", "Thanks.", "Welcome.")


def test_interleaved_longvideobench_prompt_keeps_subtitles_drops_image_placeholders():
    doc = {"question": "What is worn?", "option0": "a hat", "option1": "a scarf", "option2": "N/A",
           "option3": "N/A", "option4": "N/A", "video_path": "x.mp4"}
    candidates = [doc[f"option{i}"] for i in range(5) if doc[f"option{i}"] != "N/A"]
    question = doc["question"] + "\n" + "\n".join(f"{chr(65 + i)}. {c}" for i, c in enumerate(candidates))
    interleaved = "\n".join(["<image>", "A. man walks in", "<image>", "<image>"])
    prompt = f"{interleaved}\n{question}\nAnswer with the option's letter from the given choices directly.\n"
    query = query_for(prompt, doc)
    assert query.options == ("a hat", "a scarf") and "<image>" not in query.question
    assert "A. man walks in" in query.question  # a subtitle line, even one that looks like an option


def test_loglikelihoods_are_the_models_own_and_bare_requests_are_apart():
    assert split_requests([("c", " A", None, 0, "t", "s"), ("", " A"), ("c", " B", None, 0, "t", "s")]) == ([0, 2],
                                                                                                           [1])
    letters = Answer("A", details={"option_loglik": [-0.5, -2.0], "option_loglik_kind": "letter"})
    assert option_logliks(letters, 2, letters=True) == [-0.5, -2.0]
    with pytest.raises(ConfigError, match="no log-likelihoods of option texts"):
        option_logliks(letters, 2, letters=False)
    with pytest.raises(ConfigError):
        option_logliks(Answer("A", details={"option_probs": {"A": 0.6, "B": 0.4}}), 2, letters=True)


def test_a_native_vlm_reports_real_letter_loglikelihoods_and_scores_bare_text():
    from mmlong.qa import Query
    from mmlong.registry import MODELS
    from tests.vlm_fixtures import build_qwen2_vl, frames_of, random_video

    model, processor = build_qwen2_vl(num_layers=2)
    adapter = MODELS.resolve("qwen2-vl")(MODELS.make_config("qwen2-vl", max_new_tokens=2)).load(model, processor)
    tokens = adapter.native_encoder().encode(frames_of(random_video(2, height=64, width=64), fps=1.0))
    answer = adapter.answer(tokens, Query("which?", ("x", "y", "z")))
    prompt = adapter.build_prompt(tokens, Query("which?", ("x", "y", "z")))
    with torch.inference_mode():
        logits = model(inputs_embeds=prompt.inputs_embeds, position_ids=prompt.position_ids).logits[0, -1]
    full = torch.log_softmax(logits.float(), dim=-1)
    expected = [float(full[i]) for i in adapter.letter_ids(3)]
    assert answer.details["option_loglik_kind"] == "letter"
    assert answer.details["option_loglik"] == pytest.approx(expected, abs=1e-4)
    assert sum(torch.tensor(expected).exp()) < 1.0  # not renormalised over the options
    # the bare continuation (acc_mutual_info): BOS/EOS then the text, summed token log-probabilities
    tokenizer = processor.tokenizer
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    ids = torch.tensor([start] + tokenizer.encode(" a cat", add_special_tokens=False))
    with torch.inference_mode():
        logprobs = torch.log_softmax(model(input_ids=ids[None]).logits[0].float(), -1)
    manual = float(sum(logprobs[i, ids[i + 1]] for i in range(len(ids) - 1)))
    assert adapter.text_loglik("", [" a cat"]) == pytest.approx([manual], abs=1e-4)


def test_the_bridge_answers_lmms_requests_with_a_native_model(tmp_path, monkeypatch, request):
    """The bridge class itself, under a minimal stand-in for lmms-eval's two base classes (lmms-eval is not
    installed in this environment): generate_until on a subtitle prompt, loglikelihood with acc_mutual_info's
    bare requests, on a tiny Qwen2-VL checkpoint."""
    from tests.lmms_stand_ins import import_bridge
    from tests.media import make_test_video
    from tests.vlm_fixtures import build_qwen2_vl, save_checkpoint

    class Instance:
        def __init__(self, request_type, arguments, idx=0, metadata=None):
            self.request_type, self.args, self.idx, self.metadata = request_type, arguments, idx, metadata

    bridge = import_bridge(monkeypatch, request, Instance)

    model, processor = build_qwen2_vl(num_layers=2)
    checkpoint = save_checkpoint(model, processor, tmp_path / "qwen")
    video = str(make_test_video(tmp_path / "v.mp4", num_frames=20, fps=10, size=(64, 64)))
    lm = bridge.MmlongLMM(model=str(checkpoint), sample="uniform:2", cache=False, experts="none")
    doc = {**VIDEOMME_DOC, "video": video}
    lm.task_dict = {"videomme_w_subtitle": {"test": [doc]}}
    prompt = lmms_videomme_subtitle_prompt(doc, "A: Hello everyone.\nB: Hi!")
    visual = lambda d: [d["video"]]  # noqa: E731
    (reply,) = lm.generate_until([Instance("generate_until", (prompt, {"until": ["\n"]}, visual, 0,
                                                               "videomme_w_subtitle", "test"))])
    assert reply in ("A", "B", "C", "D")
    letters = [Instance("loglikelihood", (prompt, f" {x}", visual, 0, "videomme_w_subtitle", "test"))
               for x in "ABCD"]
    bare = [Instance("loglikelihood", ("", f" {x}")) for x in "ABCD"]
    results = lm.loglikelihood(letters + bare)
    conditional = [ll for ll, _ in results[:4]]
    assert all(ll < 0 for ll in conditional) and sum(torch.tensor(conditional).exp()) < 1.0
    assert [greedy for _, greedy in results[:4]] == [ll == max(conditional) for ll in conditional]
    expected = lm.pipeline.model.text_loglik("", [f" {x}" for x in "ABCD"])
    assert [ll for ll, _ in results[4:]] == pytest.approx(expected)
