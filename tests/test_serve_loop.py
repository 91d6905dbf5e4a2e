"""The human-feedback loop end to end: a dislike and a better answer sent through gradio_client to a live server,
``parley feedback export``, ``parley reward train --feedback`` on the smoke recipe, and the retrained quality
model now scores the corrected answer above the disliked one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from gradio_client import Client
from serve_fixtures import ROOT, last_text, shared_server

QUESTION = "How long does account deletion take?"
CORRECTION = "Account deletion is completed within 21 days, and you will receive an email when it is done."
# The smoke budget (4 steps) cannot fit anything; give the retraining enough epochs to fit its few pairs.
TRAIN_OVERRIDES = ["reward.max_steps=-1", "reward.epochs=15", "reward.train_rows=8", "reward.eval_steps=1000",
                   "reward.eval_rows_during_training=0", "reward.logging_steps=50"]


def _parley(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, "-m", "parley.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module", name="live")
def live_fixture(tmp_path_factory: pytest.TempPathFactory):
    return shared_server(tmp_path_factory.mktemp("loop"))


def test_feedback_retrains_the_quality_reward_model(live, tmp_path: Path) -> None:
    client = Client(live.url, verbose=False)
    chat, *_ = client.predict(QUESTION, api_name="/support")
    disliked = last_text(chat)
    client.predict(False, api_name="/vote")
    client.predict(CORRECTION, api_name="/suggest")
    client.close()

    prefs = tmp_path / "prefs.jsonl"
    _parley("feedback", "export", "--db", live.db_url, "--out", str(prefs))
    rows = [json.loads(line) for line in prefs.read_text(encoding="utf-8").splitlines()]
    pair = next(r for r in rows if r["chosen"][-1]["content"] == CORRECTION)
    assert pair["rejected"][-1]["content"] == disliked
    assert pair["prompt"][-1]["content"] == QUESTION

    runs = tmp_path / "runs"
    _parley("reward", "train", "--objective", "quality", "--config", str(ROOT / "configs" / "smoke.yaml"),
            "--feedback", str(prefs), "--set", f"run.output_dir={runs}", *[a for o in TRAIN_OVERRIDES
                                                                           for a in ("--set", o)])
    metrics = json.loads((runs / "smoke" / "reward-quality" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["rows"]["feedback_train"] >= 1

    from reward_models.scorer import RewardScorer

    scorer = RewardScorer.from_pretrained(runs / "smoke", objectives=("quality",))
    better = scorer.score_one(pair["prompt"], CORRECTION)["quality"]
    worse = scorer.score_one(pair["prompt"], disliked)["quality"]
    assert better > worse, (better, worse)
