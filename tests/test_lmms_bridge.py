"""The lmms-eval bridge: lmms-eval's own task API runs two local video tasks through the mmlong model.

lmms-eval pins av 15.x, so it lives in ``.venv-lmms`` (scripts/ensure-lmms-venv.sh, run by scripts/test.sh);
the tasks run there in a subprocess. The tasks are defined here (YAML + utils.py over a local JSONL dataset of
generated videos), so nothing is downloaded: a ``generate_until`` task runs through ``simple_evaluate`` (options in
the prompt, the reply is a letter), and ``loglikelihood`` gets lmms-eval ``Instance`` objects the way a
``multiple_choice`` task sends them. (lmms-eval 0.7.3's evaluator turns every model output into ``str`` before
scoring, so its own ``multiple_choice`` tasks fail for any model; the model side is tested directly.)
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LMMS_PYTHON = ROOT / ".venv-lmms" / "bin" / "python"
OPTIONS = ["a cat", "a rocket", "a cup of coffee", "a motorcycle"]

TASK_UTILS = '''
def doc_to_visual(doc):
    return [doc["video"]]

def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    lines = [doc["question"]] + [f"({chr(65 + i)}) {o}" for i, o in enumerate(doc["options"])]
    return "\\n".join(lines + ["Answer with the option's letter from the given choices directly."])

def doc_to_question(doc, lmms_eval_specific_kwargs=None):
    return doc["question"]

def process_results(doc, results):
    reply = results[0].strip()
    return {"letter_acc": float(reply == doc["answer"])}
'''

GENERATE_YAML = """task: mmlong_local_letters
dataset_path: json
dataset_kwargs:
  data_files:
    test: {docs}
test_split: test
output_type: generate_until
doc_to_visual: !function utils.doc_to_visual
doc_to_text: !function utils.doc_to_text
doc_to_target: answer
generation_kwargs:
  until: ["\\n"]
  max_new_tokens: 8
process_results: !function utils.process_results
metric_list:
  - metric: letter_acc
    aggregation: mean
    higher_is_better: true
"""

RUNNER = r"""
import json, sys
from lmms_eval.api.instance import Instance
from lmms_eval.evaluator import simple_evaluate
from lmms_eval.models import get_model
from lmms_eval.tasks import TaskManager
task_dir, model_args = sys.argv[1], sys.argv[2]
sys.path.insert(0, task_dir)
import utils

lm = get_model("mmlong").create_from_arg_string(model_args, {"batch_size": 1})  # found through the entry point
out = simple_evaluate(model=lm, tasks=["mmlong_local_letters"], task_manager=TaskManager(include_path=task_dir),
                      log_samples=True, batch_size=1)
samples = [{"doc_id": s["doc_id"], "resps": s["resps"], "target": s["target"]}
           for s in out["samples"]["mmlong_local_letters"]]
# loglikelihood as lmms-eval's multiple_choice tasks request it: one Instance per choice, same context
docs = lm.task_dict["mmlong_local_letters"]["test"]
requests = [Instance("loglikelihood", (utils.doc_to_question(doc), " " + choice, utils.doc_to_visual, doc_id,
                                       "mmlong_local_letters", "test"), idx=n,
                     metadata={"task": "mmlong_local_letters", "doc_id": doc_id, "repeats": 1})
            for doc_id, doc in enumerate(docs) for n, choice in enumerate(doc["options"])]
lls = lm.loglikelihood(requests)
print("RESULT " + json.dumps({"results": out["results"], "samples": samples,
                              "loglikelihood": [[r.args[3], r.args[1], ll, greedy] for r, ll in zip(requests, lls)
                                                for ll, greedy in [ll]]}, default=str))
"""


def _needle_video(path: Path, photo: str) -> None:
    import numpy as np

    from mmlong.benchmarks.niavh_media import fit_frame, load_image
    from mmlong.media.video.write import write_video

    frame = fit_frame(load_image(photo), 160, 120)
    write_video(path, np.repeat(frame[None], 12, axis=0), 4.0)


@pytest.mark.lmms
@pytest.mark.slow
def test_lmms_eval_runs_local_video_tasks_through_mmlong(tmp_path):
    if not LMMS_PYTHON.exists():
        pytest.fail("lmms-eval is not installed: run `bash scripts/ensure-lmms-venv.sh` (scripts/test.sh does)")
    docs = []
    for photo, answer_text in [("chelsea", "a cat"), ("rocket", "a rocket")]:
        video = tmp_path / f"{photo}.mp4"
        _needle_video(video, photo)
        docs.append({"video": str(video), "question": "What is shown in the video?", "options": OPTIONS,
                     "answer_text": answer_text, "answer": chr(65 + OPTIONS.index(answer_text))})
    data = tmp_path / "docs.jsonl"
    data.write_text("\n".join(json.dumps(d) for d in docs) + "\n")
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "utils.py").write_text(TASK_UTILS)
    (tasks / "letters.yaml").write_text(GENERATE_YAML.format(docs=data))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([str(LMMS_PYTHON), "-c", RUNNER, str(tasks), "preset=offline,sample=uniform:4"],
                          capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-4000:]
    out = json.loads(lines[-1][len("RESULT "):])

    # generate_until: the reply is the chosen option's letter, and the model sees which photo the video shows
    letters = sorted(out["samples"], key=lambda s: s["doc_id"])
    assert [s["resps"][0][0] for s in letters] == [d["answer"] for d in docs]
    assert out["results"]["mmlong_local_letters"]["letter_acc,none"] == 1.0

    # loglikelihood (multiple choice): per document, one (log-likelihood, is-greedy) per choice: the option
    # text's real summed log-probability (negative, not renormalised over the options); the greedy one is the answer
    for doc_id, doc in enumerate(docs):
        rows = [r for r in out["loglikelihood"] if r[0] == doc_id]
        assert [r[1].strip() for r in rows] == OPTIONS
        logprobs = [float(r[2]) for r in rows]
        assert all(v < 0 for v in logprobs)
        best = max(range(len(OPTIONS)), key=lambda i: logprobs[i])
        assert best == OPTIONS.index(doc["answer_text"]) and [r[3] for r in rows] == [i == best for i in range(4)]
