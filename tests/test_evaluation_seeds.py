"""``parley pipeline --seeds`` on the smoke recipe (two seeds), the aggregate across seeds, and the extractive
baseline in each run's evaluation report."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from parley.cli import main

ROOT = Path(__file__).resolve().parent.parent
SMOKE = str(ROOT / "configs" / "smoke.yaml")
SEEDS = (5, 6)


def _command(output_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "parley.cli", "pipeline", "-c", SMOKE, "--set", f"run.output_dir={output_dir}",
            "--set", f"data.data_dir={ROOT / 'data'}", "--seeds", ",".join(map(str, SEEDS)), *extra]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> Path:
    """The smoke recipe run for two seeds by one command (each stage takes seconds)."""
    out = tmp_path_factory.mktemp("seeds") / "runs"
    done = subprocess.run(_command(out), capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def _reports(out: Path) -> dict[int, dict]:
    return {s: json.loads((out / f"smoke-s{s}" / "evaluate" / "report.json").read_text()) for s in SEEDS}


def test_each_seed_is_a_normal_run_and_the_aggregate_matches_the_seed_reports(seeded: Path) -> None:
    reports = _reports(seeded)
    for seed in SEEDS:
        run = seeded / f"smoke-s{seed}"
        assert (run / "summary.md").is_file() and (run / "ppo" / "stage.json").is_file()
        assert f"seed: {seed}" in (run / "sft" / "recipe.yaml").read_text()
    aggregate = json.loads((seeded / "smoke-seeds" / "evaluate" / "report.json").read_text())
    assert aggregate["seeds"] == list(SEEDS)
    checked = 0
    for model in ("sft", "ppo", "extractive"):
        for key in ("composite_mean", "quality_mean", "kb_fact_accuracy", "mean_response_tokens",
                    "harmful_refusal_rate", "support_substantive_rate"):
            values = [reports[s][model][key] for s in SEEDS]
            assert aggregate[model][f"{key}_median"] == pytest.approx(statistics.median(values))
            assert aggregate[model][f"{key}_min"] == pytest.approx(min(values))
            assert aggregate[model][f"{key}_max"] == pytest.approx(max(values))
            checked += 1
        widths = [reports[s][model]["harmful_refusal_rate_ci_high"] - reports[s][model]["harmful_refusal_rate_ci_low"]
                  for s in SEEDS]
        assert aggregate[model]["harmful_refusal_rate_ci_width_median"] == pytest.approx(statistics.median(widths))
    assert checked == 18
    assert "kl_to_ref_median" not in aggregate["extractive"]  # not a policy
    # PPO vs SFT: the difference in every seed, and "exceeds the seed spread" only when its range excludes 0.
    versus = aggregate["comparisons"]["ppo_vs_sft"]
    assert "extractive" not in json.dumps(versus)
    for key in ("composite_mean", "quality_mean", "kl_to_ref"):
        differences = [reports[s]["ppo"][key] - reports[s]["sft"][key] for s in SEEDS]
        entry = versus[key]
        assert [entry["differences"][str(s)] for s in SEEDS] == pytest.approx(differences)
        assert entry["exceeds_seed_spread"] == (min(differences) > 0 or max(differences) < 0)
    extractive = aggregate["comparisons"]["ppo_vs_extractive"]
    assert set(extractive) >= {"kb_fact_accuracy", "support_substantive_rate"}
    for key, entry in extractive.items():
        assert [entry["differences"][str(s)] for s in SEEDS] == pytest.approx(
            [reports[s]["ppo"][key] - reports[s]["extractive"][key] for s in SEEDS])
    markdown = (seeded / "smoke-seeds" / "evaluate" / "report.md").read_text()
    assert "| metric | base | sft | ppo | extractive |" in markdown
    assert "## PPO vs SFT across seeds" in markdown and "## PPO vs extractive across seeds" in markdown
    assert f"| metric | model | s{SEEDS[0]} | s{SEEDS[1]} |" in markdown


def test_the_extractive_baseline_answers_with_kb_sentences_and_is_scored_like_the_policies(seeded: Path) -> None:
    from serving.explain import sentences
    from serving.retrieval import load_articles

    articles = {p.id: p.text for p in load_articles(ROOT / "data" / "kb")}
    run = seeded / f"smoke-s{SEEDS[0]}" / "evaluate"
    report = json.loads((run / "report.json").read_text())
    extractive, ppo = report["extractive"], report["ppo"]
    for key in ("composite_mean", "quality_mean", "safety_mean", "faithfulness_mean", "kb_fact_accuracy",
                "harmful_refusal_rate", "support_substantive_rate", "system_support_substantive_rate"):
        assert isinstance(extractive[key], float), key
    assert extractive["kl_to_ref"] is None and "win_rate_vs_sft" not in extractive
    assert ppo["kb_fact_accuracy_vs_extractive"] == pytest.approx(ppo["kb_fact_accuracy"] -
                                                                  extractive["kb_fact_accuracy"])
    assert ppo["support_substantive_rate_vs_extractive"] == pytest.approx(
        ppo["support_substantive_rate"] - extractive["support_substantive_rate"])
    sources = report["_settings"]["extractive"]["sources"]
    samples = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == len(sources) == report["_settings"]["prompts"]
    for sample, source in zip(samples, sources, strict=True):
        text = articles[source]
        assert sample["extractive"] in {text[a:b] for a, b in sentences(text)}, (sample["extractive"], source)
    assert all(row["class"] for row in map(json.loads, (run / "system_extractive_samples.jsonl").open()))
    markdown = (run / "report.md").read_text()
    assert "| metric | base | sft | ppo | extractive |" in markdown and "## PPO vs extractive" in markdown
    assert "| KB-fact accuracy (held-out support) |" in markdown


def test_a_second_run_skips_every_seeds_stages_and_rewrites_the_aggregate(seeded: Path) -> None:
    report = seeded / "smoke-seeds" / "evaluate" / "report.json"
    report.unlink()
    again = subprocess.run(_command(seeded), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    rows = [line for line in again.stdout.splitlines() if line.startswith("| ") and "---" not in line
            and not line.startswith("| stage")]
    assert rows and all("| skipped (current) |" in line for line in rows), rows
    assert json.loads(report.read_text())["seeds"] == list(SEEDS)


def test_evaluate_with_seeds_re_evaluates_each_seed_run_and_aggregates(seeded: Path,
                                                                        capsys: pytest.CaptureFixture) -> None:
    base = ["evaluate", "-c", SMOKE, "--set", f"run.output_dir={seeded}", "--set", f"data.data_dir={ROOT / 'data'}",
            "--seeds", ",".join(map(str, SEEDS)), "--set", "evaluate.system=false",
            "--set", "evaluate.include_base=false"]
    assert main([*base, "--out", str(seeded / "elsewhere")]) == 2
    assert "--out with --seeds" in capsys.readouterr().err
    assert main(base) == 0
    aggregate = json.loads((seeded / "smoke-seeds" / "evaluate" / "report.json").read_text())
    reports = _reports(seeded)
    assert "base" not in aggregate and "system" not in aggregate
    values = [reports[s]["ppo"]["composite_mean"] for s in SEEDS]
    assert aggregate["ppo"]["composite_mean_median"] == pytest.approx(statistics.median(values))


@pytest.mark.parametrize("seeds", ["42,x", "42,,43", "42,42", "-1", ""])
def test_a_malformed_seed_list_is_one_usage_error(seeds: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["pipeline", "-c", SMOKE, "--seeds", seeds])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("parley pipeline: error: argument --seeds: ")


def test_a_malformed_seeds_recipe_key_is_one_line(capsys: pytest.CaptureFixture) -> None:
    assert main(["pipeline", "-c", SMOKE, "--set", "pipeline.seeds=[1, 1]"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("parley: error: ") and "seeds must differ" in err[0]
