"""KB retrieval recall at k on the project's held-out support questions: how many passages does a prompt need?

Each passage put before a question costs prefill time before the first token (``serve.top_k``); this says
what a smaller k loses. A question counts as found at k when one of its ``kb_ids`` is among the first k
passages the server's retriever returns. Prints one JSON line and appends it to
``benchmarks/results/retrieval_recall.jsonl``; the prompt tokens per passage come from the policy's tokenizer.

    python benchmarks/retrieval_recall.py [--max-k 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from timing import report  # noqa: E402 - this folder is on sys.path when run as a script

RESULTS = ROOT / "benchmarks" / "results" / "retrieval_recall.jsonl"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kb-dir", default=str(ROOT / "data" / "kb"))
    parser.add_argument("--questions", default=str(ROOT / "data" / "support" / "heldout.jsonl"))
    parser.add_argument("--model", default="smollm2-135m-instruct", help="tokenizer for the passage lengths")
    parser.add_argument("--max-k", type=int, default=5)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()

    from groundwork.chat_format import last_user_text
    from groundwork.models import load_tokenizer
    from serving.retrieval import KnowledgeBase

    kb = KnowledgeBase.load(args.kb_dir)
    rows = [json.loads(line) for line in Path(args.questions).read_text(encoding="utf-8").splitlines() if line]
    rows = [row for row in rows if row.get("kb_ids")]
    found = {k: 0 for k in range(1, args.max_k + 1)}
    for row in rows:
        ids = [p.id for p in kb.search(last_user_text(row["messages"]), args.max_k)]
        for k in found:
            found[k] += bool(set(row["kb_ids"]) & set(ids[:k]))
    tokenizer = load_tokenizer(args.model)
    lengths = [len(tokenizer(f"{p.title}: {p.text}")["input_ids"]) for p in kb.passages]
    record = {"benchmark": "retrieval_recall", "questions": len(rows), "passages": len(kb.passages),
              **{f"recall_at_{k}": round(v / len(rows), 3) for k, v in found.items()},
              "passage_tokens_median": statistics.median(lengths), "passage_tokens_max": max(lengths)}
    report(record, RESULTS, append=not args.no_append)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
