"""PPO stage on the smoke recipe: real TRL PPOTrainer runs, resume after a kill, guards."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dialogue.ppo.callbacks import TIMING_KEYS, PPOGuardError
from dialogue.ppo.checkpoint import list_checkpoints
from dialogue.ppo.trainer import run_ppo
from groundwork.recipe import load_recipe

ROOT = Path(__file__).resolve().parent.parent
SMOKE = str(ROOT / "configs" / "smoke.yaml")


def _copy_prerequisites(src: Path, dst: Path) -> None:
    import shutil

    for name in ("sft", "reward-quality", "reward-safety", "reward-faithfulness"):
        shutil.copytree(src / "smoke" / name, dst / "smoke" / name)


def _overrides(output_dir: Path) -> list[str]:
    return [f"run.output_dir={output_dir}", f"data.data_dir={ROOT / 'data'}"]


def _log(output_dir: Path) -> list[dict]:
    path = output_dir / "smoke" / "ppo" / "log.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _cli(output_dir: Path, *extra: str) -> list[str]:
    args = [sys.executable, "-m", "parley.cli", "ppo", "-c", SMOKE]
    for override in _overrides(output_dir):
        args += ["--set", override]
    return args + list(extra)


def test_ppo_run_logs_metrics_checkpoints_and_plots(trained_run: Path) -> None:
    recipe = load_recipe(SMOKE, _overrides(trained_run))
    metrics = run_ppo(recipe)
    out = trained_run / "smoke" / "ppo"
    log = _log(trained_run)
    assert [entry["step"] for entry in log] == list(range(1, recipe.ppo.steps + 1))
    for entry in log:
        for key in ("objective/kl", "objective/rlhf_reward", "val/ratio", "loss/value_avg",
                    "reward/quality_mean", "reward/safety_mean", "reward/faithfulness_mean",
                    "reward/lagrange_multiplier"):
            assert math.isfinite(entry[key]), (key, entry)
    judged = [entry["step"] for entry in log if "judge/score" in entry]
    assert judged == [s for s in range(1, recipe.ppo.steps + 1) if s % recipe.ppo.judge_every == 0]
    assert (out / "best" / "adapter" / "adapter_config.json").is_file()
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert (out / "ppo_curves.png").stat().st_size > 1000
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    steps = [int(p.name.split("-")[1]) for p in list_checkpoints(out / "checkpoints")]
    assert steps == [4, 6]  # every 2 steps, newest 2 kept
    assert metrics["best_judge_score"] is not None
    # The exported policy adapter (SFT + PPO as one LoRA on the base) equals the stacked models.
    import torch

    from dialogue.evaluation import load_policy_stack
    from groundwork.models import load_causal_lm

    stacked = load_policy_stack(recipe.policy.model, [metrics["sft_adapter"], metrics["policy_adapter_from"]])
    single = load_policy_stack(recipe.policy.model, [metrics["policy_adapter_dir"]])
    base = load_causal_lm(recipe.policy.model)
    tokens = torch.tensor([[1, 5, 9, 200, 3000, 17]])
    with torch.no_grad():
        a, b, c = stacked(tokens).logits, single(tokens).logits, base(tokens).logits
    assert torch.allclose(a, b, atol=1e-5)
    assert not torch.allclose(a, c, atol=1e-5)


def _close(value):
    """A float compared to 1e-6 relative (1e-10 absolute); anything else exactly."""
    return pytest.approx(value, rel=1e-6, abs=1e-10) if isinstance(value, float) else value


def test_resume_after_kill_repeats_the_uninterrupted_run(trained_run: Path, tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    interrupted = tmp_path / "interrupted"
    for folder in (reference, interrupted):
        _copy_prerequisites(trained_run, folder)
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    # With kind baselines on, so their running means must come back from the checkpoint too.
    baselines = ("--set", "ppo.kind_baseline_momentum=0.8")
    subprocess.run(_cli(reference, *baselines), check=True, capture_output=True, timeout=600, env=env)

    process = subprocess.Popen(_cli(interrupted, *baselines), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=env)
    first_checkpoint = interrupted / "smoke" / "ppo" / "checkpoints" / "step-2"
    deadline = time.time() + 600
    while not first_checkpoint.is_dir():
        assert process.poll() is None, "PPO exited before writing its first checkpoint"
        assert time.time() < deadline
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = len(_log(interrupted))
    assert killed_at < 6, "the run finished before it could be killed"

    resumed = subprocess.run(_cli(interrupted, *baselines, "--resume"), capture_output=True, text=True, timeout=600,
                             env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected, got = _log(reference), _log(interrupted)
    assert [e["step"] for e in got] == [e["step"] for e in expected]
    assert all(any(k.startswith("reward/baseline_") for k in e) for e in expected)
    for want, have in zip(expected, got, strict=True):
        # A resumed process allocates its tensors elsewhere, and CPU kernels may then sum in another order: last-bit
        # differences, which a variance of ratios near 1 (val/ratio_var ~1e-9) turns into ~1e-12. A wrong resume
        # (other samples, optimizer or RNG state) moves losses and rewards by far more than this tolerance.
        assert {k: _close(v) for k, v in have.items() if k not in TIMING_KEYS} == {
            k: v for k, v in want.items() if k not in TIMING_KEYS}, f"step {want['step']} differs after resume"
    summary = json.loads((interrupted / "smoke" / "ppo" / "metrics.json").read_text())
    assert summary["resumed_from_step"] >= 2


@pytest.mark.parametrize(("overrides", "message"), [
    (["ppo.kl_budget=-1.0"], "exceeds the budget ppo.kl_budget"),
    (["ppo.ratio_band=[1.5, 2.0]", "ppo.ratio_patience=2"], "val/ratio="),
    (["reward.composite.quality_weight=.nan"], "non-finite"),
])
def test_guards_stop_with_a_clear_message_and_keep_the_last_good_checkpoint(
        trained_run: Path, tmp_path: Path, overrides: list[str], message: str) -> None:
    _copy_prerequisites(trained_run, tmp_path)
    recipe = load_recipe(SMOKE, [*_overrides(tmp_path), "ppo.checkpoint_every=1", "ppo.judge_every=0", *overrides])
    with pytest.raises(PPOGuardError, match=message.replace("[", r"\[")) as caught:
        run_ppo(recipe)
    checkpoints = list_checkpoints(tmp_path / "smoke" / "ppo" / "checkpoints")
    stopped_at = int(str(caught.value).split("step ")[1].split(":")[0])
    # Nothing from the failing step was checkpointed.
    assert all(int(p.name.split("-")[1]) < stopped_at for p in checkpoints)
    if stopped_at > 1:
        assert checkpoints and f"last good checkpoint: {checkpoints[-1]}" in str(caught.value)


def test_value_model_copies_the_lower_layers_and_freezes_the_embeddings() -> None:
    """The value model's decoder layers and head train; its token embeddings (the largest matrix) do not."""
    import torch

    from dialogue.ppo.models import build_value_model
    from groundwork.models import load_causal_lm

    policy = load_causal_lm("tiny-random-llama")
    value = build_value_model(policy, 1, pad_token_id=0)
    embeddings = value.get_input_embeddings().weight
    assert not embeddings.requires_grad
    assert torch.equal(embeddings, policy.get_input_embeddings().weight)
    trainable = {name for name, p in value.named_parameters() if p.requires_grad}
    assert "score.weight" in trainable and any(".layers.0." in name for name in trainable)
    assert value.config.num_hidden_layers == 1


def test_replaying_the_frozen_layers_trains_like_trl_passes(trained_run: Path, tmp_path: Path) -> None:
    """Same seed, ``ppo.reuse_frozen_layers`` on and off: the same PPO statistics at every step."""
    logs = {}
    for flag in ("true", "false"):
        folder = tmp_path / flag
        _copy_prerequisites(trained_run, folder)
        recipe = load_recipe(SMOKE, [*_overrides(folder), "ppo.steps=3", "ppo.judge_every=0",
                                     "ppo.checkpoint_every=0", f"ppo.reuse_frozen_layers={flag}"])
        metrics = run_ppo(recipe)
        logs[flag] = _log(folder)
        replayed = metrics["frozen_prefix"]
        if flag == "true":  # the reference and both minibatches of every update (4 rows each) were replayed
            assert replayed == {"depth": 1, "replayed_rows": 3 * 4 * 2, "full_rows": 0}
        else:
            assert replayed == {"depth": 0, "replayed_rows": 0, "full_rows": 0}
    keys = ("objective/kl", "objective/scores", "loss/policy_avg", "loss/value_avg", "val/ratio", "policy/approxkl_avg")
    for fast, full in zip(logs["true"], logs["false"], strict=True):
        for key in keys:
            assert math.isclose(fast[key], full[key], rel_tol=1e-3, abs_tol=1e-5), (fast["step"], key)
