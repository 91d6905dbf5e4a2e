"""``parley`` command line: a thin layer of argument parsing over the Python API."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from groundwork.errors import ParleyError
from groundwork.recipe import Recipe
from groundwork.sections.pipeline import parse_seeds
from parley.feedback_commands import add_feedback_commands
from parley.flags import add_recipe_args, add_setting, flag_overrides, recipe_from_args
from parley.pipeline import STAGE_NAMES
from parley.project_commands import add_project_commands
from parley.quantize_commands import add_quantize_command
from parley.reward_commands import add_reward_commands
from parley.risk_commands import add_risk_commands
from parley.serve_commands import add_serve_command

Handler = Callable[[argparse.Namespace], int]
_recipe = recipe_from_args


def _print_json(data: dict) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def cmd_sft(args: argparse.Namespace) -> int:
    from dialogue.sft import run_sft

    _print_json(run_sft(_recipe(args)))
    return 0


def cmd_ppo(args: argparse.Namespace) -> int:
    from dialogue.ppo.trainer import run_ppo

    _print_json(run_ppo(_recipe(args), resume=args.resume))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from dialogue.evaluation import run_evaluation, run_system_only

    recipe = _recipe(args)
    if args.system_only:
        _print_json(run_system_only(recipe, out_dir=args.out))
        return 0
    if recipe.pipeline.seeds:
        from parley.seeds import seeds_evaluate

        if args.out:
            raise ParleyError("--out with --seeds: each seed's report goes to its run, the aggregate to "
                              "runs/<run.name>-seeds/evaluate")
        _print_json(seeds_evaluate(recipe))
        return 0
    report = run_evaluation(recipe, out_dir=args.out)
    _print_json({k: v for k, v in report.items() if not k.startswith("_")})
    return 0


def cmd_pipeline(args: argparse.Namespace) -> int:
    from parley.pipeline import pipeline_main

    recipe = _recipe(args)
    if recipe.pipeline.seeds:
        from parley.seeds import seeds_pipeline_main

        return seeds_pipeline_main(recipe, args.only, args.force, serve=args.serve)
    return pipeline_main(recipe, args.only, args.force, serve=args.serve, config=args.config,
                         overrides=[*args.overrides, *flag_overrides(args)])


def _seeds(text: str) -> list[int]:
    """``--seeds 42,43,44``: a malformed list is a usage error naming what is wrong."""
    try:
        return parse_seeds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_seeds(parser: argparse.ArgumentParser, what: str) -> None:
    add_setting(parser, "--seeds", key="pipeline.seeds", type=_seeds, metavar="S1,S2,...",
                help=f"{what} once per seed (runs <run.name>-s<seed>), then aggregate the reports in "
                     "runs/<run.name>-seeds/evaluate (median and range over seeds)")


def _generator(recipe: Recipe):
    from dialogue.generation import Generator

    return Generator(recipe.policy.model, adapter=recipe.generate.adapter, dtype=recipe.policy.dtype,
                     system_prompt=recipe.policy.system_prompt)


def _params(recipe: Recipe):
    from dialogue.generation import GenerationParams

    g = recipe.generate
    return GenerationParams(max_new_tokens=g.max_new_tokens, temperature=g.temperature, top_p=g.top_p)


def cmd_generate(args: argparse.Namespace) -> int:
    from dialogue.generation import generate_file

    recipe = _recipe(args)
    summary = generate_file(_generator(recipe), args.input, args.output, _params(recipe),
                            batch_size=recipe.generate.batch_size,
                            on_bad_row=recipe.data.on_bad_row)
    print(f"parley: wrote {summary['rows']} responses to {args.output} in {summary['seconds']} s "
          f"({summary['skipped']} malformed input rows skipped)", file=sys.stderr)
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    from dialogue.generation import chat_loop

    recipe = _recipe(args)
    generator = _generator(recipe)
    print("parley chat: type a message; /reset clears the conversation, /quit or Ctrl-D ends.", file=sys.stderr)

    def lines():
        while True:
            try:
                yield input("you: ")
            except EOFError:
                return

    chat_loop(generator, _params(recipe), lines(), context=recipe.generate.context)
    return 0


def cmd_data_stats(args: argparse.Namespace) -> int:
    from dialogue.data_stats import data_stats

    _print_json(data_stats(_recipe(args).data.data_dir))
    return 0


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    add_setting(parser, "--model", "-m", key="policy.model", help="bundled name, hub id or local directory")
    add_setting(parser, "--adapter", key="generate.adapter", help="LoRA adapter directory (e.g. runs/demo/sft/adapter)")
    add_setting(parser, "--max-new-tokens", key="generate.max_new_tokens", type=int, help="tokens per answer")
    add_setting(parser, "--temperature", key="generate.temperature", type=float, help="0 = greedy")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="parley", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sft = sub.add_parser("sft", help="supervised fine-tuning with a LoRA adapter")
    add_recipe_args(sft)
    sft.set_defaults(handler=cmd_sft)

    pipeline = sub.add_parser("pipeline", help="the whole loop: data, sft, reward x3, ppo, evaluate (resumable)")
    add_recipe_args(pipeline)
    pipeline.add_argument("--only", nargs="+", metavar="STAGE", choices=STAGE_NAMES,
                          help=f"run only these stages (of: {' '.join(STAGE_NAMES)})")
    pipeline.add_argument("--force", nargs="+", metavar="STAGE", default=[], choices=STAGE_NAMES,
                          help="re-run these stages")
    pipeline.add_argument("--serve", action="store_true", help="then serve the tuned model (UI at / and /v1)")
    _add_seeds(pipeline, "run the pipeline")
    pipeline.set_defaults(handler=cmd_pipeline)

    ppo = sub.add_parser("ppo", help="PPO against the composite reward (LoRA policy, resumable)")
    add_recipe_args(ppo)
    ppo.add_argument("--resume", action="store_true", help="continue from the last checkpoint of this run")
    ppo.set_defaults(handler=cmd_ppo)

    evaluate = sub.add_parser("evaluate", help="compare base/SFT/PPO on held-out prompts; writes report.md/json")
    add_recipe_args(evaluate)
    evaluate.add_argument("--out", help="report folder (default runs/<run>/evaluate)")
    evaluate.add_argument("--system-only", action="store_true",
                          help="only the system table: the served path on public dev prompts (system.json/.md)")
    _add_seeds(evaluate, "evaluate each seed's run")
    evaluate.set_defaults(handler=cmd_evaluate)

    generate = sub.add_parser("generate", help="answer every row of a JSONL file")
    add_recipe_args(generate)
    _add_model_args(generate)
    generate.add_argument("--input", "-i", required=True, help='JSONL rows {"messages": [...]} or {"prompt": "..."}')
    generate.add_argument("--output", "-o", required=True, help="JSONL: each input row plus \"response\"")
    add_setting(generate, "--batch-size", key="generate.batch_size", type=int, help="rows generated at once")
    generate.set_defaults(handler=cmd_generate)

    chat = sub.add_parser("chat", help="terminal chat with a model for a quick look")
    add_recipe_args(chat)
    _add_model_args(chat)
    add_setting(chat, "--context", key="generate.context", help="KB text to ground the conversation on")
    chat.set_defaults(handler=cmd_chat)

    data = sub.add_parser("data", help="project data utilities")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    stats = data_sub.add_parser("stats", help="row counts per file and split")
    add_recipe_args(stats)
    stats.set_defaults(handler=cmd_data_stats)
    add_reward_commands(sub)
    add_risk_commands(sub)
    add_feedback_commands(sub)
    add_quantize_command(sub)
    add_serve_command(sub)
    add_project_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except ParleyError as exc:
        print(f"parley: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("parley: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
