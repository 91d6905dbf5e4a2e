"""PPO prompt pools: kind weighting over the project's real prompt file (no model needed)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from dialogue.ppo.prompts import load_prompt_pools
from groundwork.config_io import from_dict
from groundwork.errors import ConfigError
from groundwork.sections.ppo import PPOSection

DATA = str(Path(__file__).resolve().parent.parent / "data")


def _kinds(rows: list[dict]) -> Counter:
    return Counter(row["kind"] for row in rows)


def test_kind_weights_repeat_rows_of_a_kind_and_leave_the_judge_slice_alone() -> None:
    plain, plain_judge, _ = load_prompt_pools(DATA, judge_size=16, seed=3, max_prompts=None)
    weighted, weighted_judge, _ = load_prompt_pools(DATA, judge_size=16, seed=3, max_prompts=None,
                                                    kind_weights={"harmful": 3.0, "benign_risky": 1.5})
    before, after = _kinds(plain), _kinds(weighted)
    assert after["harmful"] == 3 * before["harmful"]
    assert before["benign_risky"] < after["benign_risky"] < 2 * before["benign_risky"]
    assert after["support"] == before["support"] and after["translation"] == before["translation"]
    assert [row["id"] for row in weighted_judge] == [row["id"] for row in plain_judge]
    # The weighted pool is shuffled as a whole: harmful copies are spread over the run, not bunched at the end.
    first_quarter = _kinds(weighted[: len(weighted) // 4])
    assert first_quarter["harmful"] > 0.5 * after["harmful"] / 4


def test_kind_weights_reject_a_kind_no_prompt_has_and_negative_weights() -> None:
    with pytest.raises(ConfigError, match="harmfull"):
        load_prompt_pools(DATA, judge_size=0, seed=0, max_prompts=None, kind_weights={"harmfull": 2.0})
    with pytest.raises(ConfigError, match="kind_weights must be >= 0"):
        from_dict(PPOSection, {"kind_weights": {"harmful": -1.0}}, prefix="ppo")


def test_public_prompt_sources_join_the_training_pool_only(tmp_path: Path, capsys) -> None:
    requests = [f"How can I break into locker number {i} at the gym?" for i in range(30)]
    path = tmp_path / "dna.jsonl"
    path.write_text("".join(f'{{"prompt": "{r}"}}\n' for r in requests) + '{"prompt": ""}\n')
    sources = [from_dict(PPOSection, {"prompt_sources": [{"path": str(path), "rows": 12}]}, prefix="ppo")
               .prompt_sources[0]]
    plain, plain_judge, _ = load_prompt_pools(DATA, judge_size=16, seed=3, max_prompts=None)
    mixed, mixed_judge, bad = load_prompt_pools(DATA, judge_size=16, seed=3, max_prompts=None,
                                                kind_weights={"harmful": 2.0}, sources=sources)
    public = [row for row in mixed if row["messages"][0]["content"] in requests]
    # 12 sampled requests, each repeated by the harmful kind weight; never in the judge-watch slice.
    assert len(public) == 24 and len({row["id"] for row in public}) == 12
    assert all(row["kind"] == "harmful" and row["expected"]["should_refuse"] for row in public)
    assert _kinds(mixed)["harmful"] == 2 * (_kinds(plain)["harmful"] + 12)
    assert [row["id"] for row in mixed_judge] == [row["id"] for row in plain_judge]
    assert len(bad.problems) == 1  # the empty request is counted, not used
    # A missing file is skipped with a message (a fresh machine has no public copies), not a crash.
    gone = from_dict(PPOSection, {"prompt_sources": [{"path": str(tmp_path / "nope.jsonl")}]}, prefix="ppo")
    rows, _, _ = load_prompt_pools(DATA, judge_size=16, seed=3, max_prompts=None, sources=gone.prompt_sources)
    assert len(rows) == len(plain)
    assert "nope.jsonl not found" in capsys.readouterr().out
