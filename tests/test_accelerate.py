"""Scale-out: every training stage under ``accelerate launch`` with two CPU processes (gloo), plus the shipped
accelerate configs, the rank-sharded PPO sampler and the rank-pooled Lagrange update.

The two-process test runs SFT, reward training (all three objectives) and PPO on the smoke recipe with
``PARLEY_RANK_REPORT=1``: each rank writes a digest of its trainable weights, and the ranks must agree.
DeepSpeed cannot run here (no GPU, no deepspeed package): its configs are only checked for the keys accelerate reads.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dialogue.ppo.sampler import ResumableSampler
from groundwork.recipe import load_recipe

ROOT = Path(__file__).resolve().parent.parent
SMOKE = str(ROOT / "configs" / "smoke.yaml")
ACCELERATE_DIR = ROOT / "configs" / "accelerate"
ACCELERATE = str(Path(sys.executable).with_name("accelerate"))


# --- shipped accelerate configs ---------------------------------------------------------------------------------

EXPECTED = {
    "cpu-2proc.yaml": {"distributed_type": "MULTI_GPU", "num_processes": 2, "use_cpu": True, "zero_stage": None},
    "ddp-multigpu.yaml": {"distributed_type": "MULTI_GPU", "use_cpu": False, "zero_stage": None},
    "zero2.yaml": {"distributed_type": "DEEPSPEED", "use_cpu": False, "zero_stage": 2},
    "zero3.yaml": {"distributed_type": "DEEPSPEED", "use_cpu": False, "zero_stage": 3},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_accelerate_config_has_the_keys_accelerate_reads(name: str) -> None:
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file

    path = ACCELERATE_DIR / name
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    expected = EXPECTED[name]
    for key in ("compute_environment", "distributed_type", "num_processes", "num_machines", "machine_rank",
                "mixed_precision", "use_cpu"):
        assert key in raw, (name, key)
    assert raw["compute_environment"] == "LOCAL_MACHINE"
    assert raw["distributed_type"] == expected["distributed_type"]
    assert raw["use_cpu"] is expected["use_cpu"]
    assert isinstance(raw["num_processes"], int) and raw["num_processes"] >= 2
    assert raw["num_processes"] == expected.get("num_processes", raw["num_processes"])
    assert raw["num_machines"] == 1 and raw["mixed_precision"] in ("no", "bf16", "fp16")
    if expected["zero_stage"] is None:
        assert "deepspeed_config" not in raw
    else:
        ds = raw["deepspeed_config"]
        assert ds["zero_stage"] == expected["zero_stage"]
        assert ds["offload_optimizer_device"] == "none" and ds["offload_param_device"] == "none"
        assert ds["zero3_init_flag"] is (expected["zero_stage"] == 3)
        # Left to the trainer ("auto"), so a recipe's grad_accum never conflicts with the launcher.
        assert "gradient_accumulation_steps" not in ds
    # accelerate's own loader accepts it (unknown keys or bad enum values raise here).
    config = load_config_from_file(str(path))
    assert isinstance(config, ClusterConfig)
    assert config.distributed_type.value == expected["distributed_type"]
    assert config.num_processes == raw["num_processes"]


# --- PPO prompt sharding -----------------------------------------------------------------------------------------

def _batches(sampler: ResumableSampler, count: int) -> list[list[int]]:
    """``count`` batches in the order TRL's repeat-the-loader loop sees them."""
    out: list[list[int]] = []
    while len(out) < count:
        indices = list(iter(sampler))
        out += [indices[i:i + sampler.batch_size] for i in range(0, len(indices), sampler.batch_size)]
    return out[:count]


def test_sampler_gives_each_rank_its_slice_of_every_global_batch_and_resumes_exactly() -> None:
    size, local, world, steps = 37, 3, 2, 14  # 6 global batches per epoch; 14 steps cross two epochs
    single = _batches(ResumableSampler(size, local * world, seed=5), steps)
    ranks = [_batches(ResumableSampler(size, local, seed=5, num_replicas=world, rank=r), steps) for r in range(world)]
    for step in range(steps):
        assert ranks[0][step] + ranks[1][step] == single[step]  # rank slices tile the global batch, in rank order
        assert not set(ranks[0][step]) & set(ranks[1][step])
    for skip in (1, 6, 9):
        for rank in range(world):
            resumed = _batches(ResumableSampler(size, local, seed=5, skip_batches=skip, num_replicas=world,
                                                rank=rank), steps - skip)
            assert resumed == ranks[rank][skip:]
    # One process is the old behaviour: the permutation in batch_size chunks, the ragged tail dropped.
    assert len(ResumableSampler(size, 4, seed=5)) == 36
    with pytest.raises(ValueError):
        ResumableSampler(7, 4, seed=5, num_replicas=2)


def test_lagrange_update_pools_every_ranks_rewards() -> None:
    from groundwork.models import load_tokenizer
    from groundwork.sections.reward import CompositeSection
    from reward_models.composite import CompositeReward

    tokenizer = load_tokenizer("tiny-random-llama")
    cfg = CompositeSection(lagrange_init=0.5, lagrange_lr=0.1, safety_threshold=0.0)
    ranks = [CompositeReward(None, tokenizer, cfg) for _ in range(2)]
    ranks[0]._pending = {"quality": [1.0, 2.0], "safety": [-1.0, -3.0]}
    ranks[1]._pending = {"quality": [0.0, 1.0], "safety": [1.0, 1.0]}
    everyone = [dict(r._pending) for r in ranks]
    stats = [r.step(gather=lambda items: [p for p in everyone]) for r in ranks]
    assert stats[0] == stats[1]
    assert stats[0]["reward/safety_mean"] == pytest.approx(-0.5)
    assert ranks[0].lagrange.value == ranks[1].lagrange.value == pytest.approx(0.5 + 0.1 * 0.5)
    alone = CompositeReward(None, tokenizer, cfg)
    alone._pending = {"safety": [-1.0, -3.0]}
    assert alone.step()["reward/safety_mean"] == pytest.approx(-2.0)  # no gather: this process only


def test_ppo_refuses_deepspeed_before_loading_anything(monkeypatch, tmp_path: Path) -> None:
    from dialogue.ppo.trainer import run_ppo
    from groundwork.errors import ParleyError

    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")  # what `accelerate launch` sets for a DeepSpeed config
    with pytest.raises(ParleyError, match="ddp-multigpu.yaml"):
        run_ppo(load_recipe(SMOKE, [f"run.output_dir={tmp_path}"]))
    assert not (tmp_path / "smoke").exists()


# --- every stage on two processes --------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(output_dir: Path, *command: str, overrides: tuple[str, ...] = ()) -> str:
    args = [ACCELERATE, "launch", "--config_file", str(ACCELERATE_DIR / "cpu-2proc.yaml"),
            "--main_process_port", str(_free_port()), "-m", "parley.cli", *command, "-c", SMOKE]
    for override in (f"run.output_dir={output_dir}", f"data.data_dir={ROOT / 'data'}", *overrides):
        args += ["--set", override]
    env = {**os.environ, "PARLEY_RANK_REPORT": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    return result.stdout


def _rank_reports(stage_dir: Path) -> list[dict]:
    reports = [json.loads(p.read_text(encoding="utf-8")) for p in sorted((stage_dir / "rank-reports").glob("*.json"))]
    assert [r["rank"] for r in reports] == [0, 1], stage_dir
    assert {r["world_size"] for r in reports} == {2}
    return reports


def _assert_ranks_agree(stage_dir: Path, *keys: str) -> dict:
    first, second = _rank_reports(stage_dir)
    for key in ("trainable_sha256", *keys):
        assert first[key] == second[key], (stage_dir.name, key, first[key], second[key])
    return first


@pytest.mark.skipif(not Path(ACCELERATE).exists(), reason="accelerate CLI not installed next to this Python")
def test_every_stage_runs_on_two_processes_and_the_ranks_agree(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    root = load_recipe(SMOKE, [f"run.output_dir={runs}"]).run.root

    _launch(runs, "sft")
    sft = root / "sft"
    _assert_ranks_agree(sft, "steps")
    assert (sft / "adapter" / "adapter_model.safetensors").is_file()
    metrics = json.loads((sft / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["processes"] == 2 and metrics["steps"] == 4
    assert metrics["eval_loss_before"] > 0 and metrics["eval_loss_after"] > 0
    assert len(list((sft / "tensorboard").glob("events.out.tfevents.*"))) == 1  # the main process only
    checkpoint = sft / "trainer" / "checkpoint-4"
    assert {p.name for p in checkpoint.glob("rng_state_*.pth")} == {"rng_state_0.pth", "rng_state_1.pth"}

    _launch(runs, "reward", "train", "--objective", "all")
    for objective in ("quality", "safety", "faithfulness"):
        stage = root / f"reward-{objective}"
        _assert_ranks_agree(stage, "steps")
        assert (stage / "model" / "normalization.json").is_file()
        assert json.loads((stage / "metrics.json").read_text(encoding="utf-8"))["processes"] == 2

    steps = 3
    _launch(runs, "ppo", overrides=(f"ppo.steps={steps}", "ppo.judge_every=2", "ppo.checkpoint_every=2"))
    ppo = root / "ppo"
    report = _assert_ranks_agree(ppo, "lagrange", "final")
    assert report["global_batch"] == 8
    log = [json.loads(line) for line in (ppo / "log.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [entry["step"] for entry in log] == [1, 2, 3]  # written once (main process), not once per rank
    assert [entry["episode"] for entry in log] == [8.0, 16.0, 24.0]  # 4 prompts per rank x 2 ranks per update
    assert [("judge/score" in entry) for entry in log] == [False, True, False]
    assert log[-1]["reward/lagrange_multiplier_next"] == pytest.approx(report["lagrange"])
    assert [p.name for p in sorted((ppo / "checkpoints").iterdir())] == ["step-2", "step-3"]
    state = json.loads((ppo / "checkpoints" / "step-3" / "state.json").read_text(encoding="utf-8"))
    assert state["world_size"] == 2 and state["episode"] == 24
    for path in ("adapter/adapter_model.safetensors", "policy_adapter/adapter_config.json",
                 "best/adapter/adapter_config.json", "ppo_curves.png"):
        assert (ppo / path).is_file(), path
    assert len(list((ppo / "tensorboard").glob("events.out.tfevents.*"))) == 1
    assert json.loads((ppo / "metrics.json").read_text(encoding="utf-8"))["processes"] == 2
