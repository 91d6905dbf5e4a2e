"""``parley pipeline`` on the smoke recipe: all stages, skip when current, finish after a kill mid-PPO."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STAGES = ["data", "sft", "reward-quality", "reward-safety", "reward-faithfulness", "risk", "ppo", "soup", "quantize",
          "evaluate"]


def _command(output_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "parley.cli", "pipeline", "-c", str(ROOT / "configs" / "smoke.yaml"),
            "--set", f"run.output_dir={output_dir}", "--set", f"data.data_dir={ROOT / 'data'}",
            "--set", "ppo.steps=8", *extra]


def _statuses(stdout: str) -> dict[str, str]:
    rows = [line.split("|") for line in stdout.splitlines() if line.startswith("| ") and "---" not in line]
    return {cells[1].strip(): cells[2].strip() for cells in rows if cells[1].strip() in STAGES}


def test_pipeline_resumes_after_a_kill_mid_ppo_and_skips_current_stages(tmp_path: Path) -> None:
    run = tmp_path / "smoke"
    process = subprocess.Popen(_command(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = run / "ppo" / "checkpoints" / "step-2"
    deadline = time.time() + 900
    while not checkpoint.is_dir():
        assert process.poll() is None, "pipeline exited before PPO wrote a checkpoint"
        assert time.time() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (run / "ppo" / "stage.json").exists()
    finished_before = {s for s in STAGES if (run / s / "stage.json").is_file()}
    assert finished_before == {"data", "sft", "reward-quality", "reward-safety", "reward-faithfulness", "risk"}

    second = subprocess.run(_command(tmp_path), capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stderr[-3000:]
    statuses = _statuses(second.stdout)
    assert all(statuses[s] == "skipped (current)" for s in finished_before), statuses
    assert statuses["ppo"] == "ran" and statuses["quantize"] == "ran" and statuses["evaluate"] == "ran"
    ppo = json.loads((run / "ppo" / "metrics.json").read_text())
    assert ppo["resumed_from_step"] >= 2
    log = [json.loads(line) for line in (run / "ppo" / "log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == list(range(1, 9))
    report = json.loads((run / "evaluate" / "report.json").read_text())
    sets = {name: entry for name, entry in report["system"].items() if not name.startswith("_")}
    assert sets and "support" in {entry["kind"] for entry in sets.values()}
    for entry in sets.values():  # every answer in exactly one class ("refused" counts the guard's blocks too)
        shares = ("refusal_rate", "handoff_rate", "non_answer_rate", "degenerate_rate", "substantive_rate")
        assert sum(entry[key] for key in shares) == pytest.approx(1.0) and entry["n"] > 0
    assert "| ppo | ran |" in (run / "summary.md").read_text()

    third = subprocess.run(_command(tmp_path), capture_output=True, text=True, timeout=900)
    assert third.returncode == 0, third.stderr[-3000:]
    assert set(_statuses(third.stdout).values()) == {"skipped (current)"}

    # A changed recipe key re-runs the stage that reads it and everything downstream, nothing upstream.
    fourth = subprocess.run(_command(tmp_path, "--set", "ppo.kl_coef=0.2"), capture_output=True, text=True,
                            timeout=900)
    assert fourth.returncode == 0, fourth.stderr[-3000:]
    statuses = _statuses(fourth.stdout)
    assert statuses["sft"] == "skipped (current)" and statuses["ppo"] == "ran" and statuses["evaluate"] == "ran"


def test_parallel_lanes_run_side_by_side_and_keep_a_finished_lane_when_the_other_fails(tmp_path: Path) -> None:
    run = tmp_path / "smoke"
    early = ["--only", "data", "sft", "reward-quality", "reward-safety", "reward-faithfulness", "risk",
             "--set", "pipeline.parallel_lanes=true"]
    broken = subprocess.run(_command(tmp_path, *early, "--set", f"risk.model={tmp_path / 'no-such-model'}"),
                            capture_output=True, text=True, timeout=900)
    assert broken.returncode != 0
    assert "lane risk exited with" in broken.stderr
    for name in ("sft", "reward-safety", "reward-faithfulness", "reward-quality"):
        assert (run / name / "stage.json").is_file(), name
    assert not (run / "risk" / "stage.json").exists()
    assert "no-such-model" in (run / "lane-2.log").read_text()

    fixed = subprocess.run(_command(tmp_path, *early), capture_output=True, text=True, timeout=900)
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    statuses = _statuses(fixed.stdout)
    assert all(statuses[s] == "skipped (current)" for s in STAGES[1:5]), statuses  # finished stages were kept
    # Only one lane was left to run, so it ran in this process.
    assert statuses["risk"] == "ran", statuses

    both = subprocess.run(_command(tmp_path, *early, "--force", *STAGES[1:6]), capture_output=True, text=True,
                          timeout=900)
    assert both.returncode == 0, both.stderr[-3000:]
    statuses = _statuses(both.stdout)
    assert all(statuses[s] == "ran (lane)" for s in STAGES[1:6]), statuses
    lanes_row = next(line for line in both.stdout.splitlines() if line.startswith("| lanes | ran |"))
    assert lanes_row.count("|") == 6  # a well-formed row of the five-column summary table
    assert both.stderr.count("thread(s), log:") == 2
    assert not list(run.glob("lane-*.threads"))
    for name in STAGES[1:6]:
        assert json.loads((run / name / "stage.json").read_text())["seconds"] > 0


@pytest.mark.skipif(not Path("/proc/self/cmdline").is_file(), reason="reads the process's command line from /proc")
def test_pipeline_serve_becomes_parley_serve_in_the_same_process(tmp_path: Path) -> None:
    """``--serve`` after the stages replaces the pipeline process with ``parley serve`` (a fresh interpreter,
    no OpenMP team left over from training) and that server answers."""
    import httpx

    sys.path.insert(0, str(ROOT / "tests"))
    from serve_fixtures import free_port, server_process

    port = free_port()
    log_path = tmp_path / "pipeline-serve.log"
    command = _command(tmp_path, "--only", "data", "--serve", "--set", f"serve.port={port}",
                       "--set", f"serve.db=sqlite:///{tmp_path / 'feedback.db'}")
    url = f"http://127.0.0.1:{port}"
    with server_process(command, url, log_path, timeout_s=240) as process:
        argv = Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")
        assert b"serve" in argv and b"pipeline" not in argv, argv
        reply = httpx.post(f"{url}/v1/chat/completions", timeout=120,
                           json={"messages": [{"role": "user", "content": "When will my order arrive?"}],
                                 "max_tokens": 8}).json()
        assert isinstance(reply["choices"][0]["message"]["content"], str)
        assert "| data |" in log_path.read_text()  # the pipeline's summary came first
