"""One rule for settings: every flag of every command is sugar for a ``--set`` of a recipe key, every command takes
``--config``/``--set``, pipeline stage names are checked, and a run with missing upstream stages ends in one line."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from groundwork.recipe import Recipe
from parley.cli import build_parser, main
from parley.flags import FLAG_KEYS, flag_overrides, recipe_from_args
from parley.pipeline import STAGE_NAMES, _section

ROOT = Path(__file__).resolve().parent.parent
SMOKE = str(ROOT / "configs" / "smoke.yaml")
# Not settings: the recipe flags themselves, the files one invocation reads or writes, and what to do now.
OPERANDS = {"input", "output", "out"}
ACTIONS = {"resume", "system_only", "serve", "only", "force", "objective"}
NOT_SETTINGS = {"help", "config", "overrides", *OPERANDS, *ACTIONS}
# Commands that load no recipe: they list the bundled recipe files or write a starter one.
RECIPE_FREE = {("recipes",), ("init",)}


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command path, leaf parser) for every runnable command."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
    for action in subs:
        for name, child in action.choices.items():
            yield from _commands(child, (*path, name))


def _is_recipe_key(key: str) -> bool:
    node: type = Recipe
    for part in key.split("."):
        if not dataclasses.is_dataclass(node):
            return False
        field = {f.name: f for f in dataclasses.fields(node)}.get(part)
        if field is None:
            return False
        node = field.default_factory if field.default_factory is not dataclasses.MISSING else type(field.default)
        node = node if isinstance(node, type) else type(node())
    return True


COMMANDS = list(_commands(build_parser()))


def test_every_command_is_found() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"serve", "quantize", "feedback export", "generate", "chat", "pipeline", "reward score"} <= names


@pytest.mark.parametrize(("path", "parser"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_flag_is_a_recipe_key_and_every_command_takes_config_and_set(path, parser) -> None:
    dests = {a.dest for a in parser._actions}
    if path in RECIPE_FREE:
        assert not [a for a in parser._actions if a.option_strings and a.dest != "help"]
        return
    assert {"config", "overrides"} <= dests, f"parley {' '.join(path)} lacks --config/--set"
    keys = parser.get_default(FLAG_KEYS)
    settings = [a for a in parser._actions if a.option_strings and a.dest not in NOT_SETTINGS]
    unmapped = [a.option_strings[0] for a in settings if a.dest not in keys]
    assert not unmapped, f"parley {' '.join(path)}: flags without a recipe key: {unmapped}"
    for action in settings:
        key = keys[action.dest]
        assert _is_recipe_key(key), f"{action.option_strings[0]} -> {key}: no such recipe key"
        assert action.default is None, f"{action.option_strings[0]} restates a default (it lives in {key})"
        assert f"recipe key {key}" in action.help


def test_flags_map_to_their_keys_after_the_users_sets() -> None:
    parser = build_parser()
    quantize = parser.parse_args(["quantize", "-m", "tiny-random-llama", "--adapter", "a", "--out", "o", "--formats",
                                  "int8", "--gguf-types", "q8_0,Q4_0", "--base-gguf", "b.gguf", "--no-verify",
                                  "--no-gguf-lora", "--set", "quantize.verify=true"])
    recipe = recipe_from_args(quantize)
    q = recipe.quantize
    assert (recipe.policy.model, q.adapter, q.formats, q.gguf_types, q.base_gguf, q.verify, q.gguf_lora) == (
        "tiny-random-llama", "a", ["int8"], ["q8_0", "q4_0"], "b.gguf", False, False)
    assert recipe_from_args(parser.parse_args(["quantize", "--out", "o"])) == Recipe()

    generate = recipe_from_args(parser.parse_args(["generate", "-i", "x", "-o", "y", "--model", "m", "--adapter", "a",
                                                   "--max-new-tokens", "7", "--temperature", "0.5",
                                                   "--batch-size", "3"]))
    g = generate.generate
    assert (generate.policy.model, g.adapter, g.max_new_tokens, g.temperature, g.batch_size) == ("m", "a", 7, 0.5, 3)
    assert recipe_from_args(parser.parse_args(["chat", "--context", "KB: 42"])).generate.context == "KB: 42"

    export = parser.parse_args(["feedback", "export", "--db", "sqlite:///f.db", "--out", "o",
                                "--max-pairs-per-prompt", "5", "--set", "serve.db=sqlite:///other.db"])
    assert flag_overrides(export) == ['serve.db="sqlite:///f.db"', "serve.export_max_pairs_per_prompt=5"]
    assert recipe_from_args(export).serve.db == "sqlite:///f.db"

    score = recipe_from_args(parser.parse_args(["reward", "score", "--reward-dir", "r", "-i", "x", "-o", "y",
                                                "--batch-size", "4"]))
    assert (score.reward.score_dir, score.reward.score_batch_size) == ("r", 4)
    train = recipe_from_args(parser.parse_args(["reward", "train", "--objective", "all", "--feedback", "a",
                                                "--feedback", "b"]))
    assert train.reward.feedback == ["a", "b"]
    risk = recipe_from_args(parser.parse_args(["risk", "score", "--model", "m", "-i", "x", "-o", "y"]))
    assert risk.risk.score_model == "m"


def test_keys_only_stand_alone_commands_read_are_not_hashed_and_stage_keys_are() -> None:
    recipe = Recipe()
    assert "export_max_pairs_per_prompt" not in _section(recipe, "serve")
    assert "adapter" not in _section(recipe, "quantize") and "score_dir" not in _section(recipe, "reward")
    changed = recipe_from_args(build_parser().parse_args(
        ["serve", "--engine", "llamacpp", "--gguf-type", "q4_1", "--set", "quantize.adapter=x",
         "--set", "quantize.base_gguf=b.gguf", "--set", "reward.feedback=[f]"]))
    assert _section(changed, "serve")["gguf_type"] == "q4_1" and _section(changed, "quantize")["base_gguf"] == "b.gguf"
    assert "adapter" not in _section(changed, "quantize") and _section(changed, "reward")["feedback"] == ["f"]


def test_stage_names_match_the_pipeline() -> None:
    from parley.pipeline import stages

    assert list(STAGE_NAMES) == [s.name for s in stages()]


@pytest.mark.parametrize("flag", ["--only", "--force"])
def test_a_misspelled_stage_is_a_usage_error(flag: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["pipeline", flag, "evalute"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert "usage: parley pipeline" in err and "invalid choice: 'evalute'" in err
    assert all(f"'{name}'" in err for name in STAGE_NAMES)


@pytest.mark.parametrize("stage", ["evaluate", "quantize"])
def test_a_stage_without_its_upstream_ends_in_one_line(stage: str, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "fresh" / "runs"
    code = main(["pipeline", "-c", SMOKE, "--set", f"run.output_dir={out}", "--set", f"data.data_dir={ROOT / 'data'}",
                 "--only", stage])
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert code == 2 and "Traceback" not in err
    assert last.startswith(f"parley: error: {stage} needs the stages ") and "not finished in" in last


def test_the_run_folder_exists_before_the_summary_is_written(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "new" / "runs"
    code = main(["pipeline", "-c", SMOKE, "--set", f"run.output_dir={out}", "--set", f"data.data_dir={ROOT / 'data'}",
                 "--only", "soup"])
    assert code == 0 and (out / "smoke" / "summary.md").is_file()
    assert "| soup | ran |" in capsys.readouterr().out
