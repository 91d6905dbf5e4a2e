"""Time to first token in the UI path: gradio_client streaming submit to ``/support`` on a live ``parley serve``.

What is timed is what a customer waits for: the Gradio queue, KB retrieval (MiniLM), the feedback-store writes,
the prompt build and the engine's prefill until the first answer text reaches the client. The engine is the
torch engine on the int8 artifact (built once with ``parley quantize --formats int8`` into the cache when
``--artifact`` is not given); ``--fp32`` measures the plain fp32 model instead. Prints one JSON line.

    python benchmarks/ui_ttft.py [--model smollm2-135m-instruct] [--artifact DIR] [--fp32] [--runs 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

QUESTIONS = [
    "How long does account deletion take?",
    "How many failed logins lock my account?",
    "When will my refund arrive?",
    "Can I change my delivery address after ordering?",
    "Do you price match?",
]


def int8_artifact(model: str) -> Path:
    """The cached int8 export of ``model`` (made once; ``parley quantize`` is the same code)."""
    from groundwork.models import cache_dir
    from serving.quantize.export import QuantizeSettings, quantize
    from serving.quantize.manifest import MANIFEST_FILE

    out = cache_dir() / "bench" / f"{model.replace('/', '_')}-int8"
    if not (out / MANIFEST_FILE).is_file():
        quantize(model, None, out, QuantizeSettings(formats=("int8",), verify=False))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cfg):
    import uvicorn

    from serving.server import build_service, create_app

    server = create_app(cfg, build_service(cfg, cfg.model))
    uv = uvicorn.Server(uvicorn.Config(server.app, host="127.0.0.1", port=cfg.port, log_level="warning"))
    threading.Thread(target=uv.run, daemon=True).start()
    while not uv.started:
        time.sleep(0.05)
    return server, uv


def first_token_s(client, question: str) -> float:
    """Seconds from submit until an update whose assistant bubble holds text."""
    client.reset_session()
    started = time.perf_counter()
    job = client.submit(question, api_name="/support")
    for chat, *_ in job:
        content = chat[-1]["content"] if chat else ""
        text = content if isinstance(content, str) else "".join(p.get("text", "") for p in content)
        if chat and chat[-1]["role"] == "assistant" and text.strip():
            elapsed = time.perf_counter() - started
            job.result()  # let the answer finish so the next request starts from an idle engine
            return elapsed
    raise RuntimeError("the answer never produced text")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--artifact", help="int8 artifact folder (default: build/cached from --model)")
    parser.add_argument("--fp32", action="store_true", help="plain fp32 model instead of the int8 artifact")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()

    from gradio_client import Client

    from groundwork.sections.serve import ServeSection

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    artifact = None if args.fp32 else str(args.artifact or int8_artifact(args.model))
    with tempfile.TemporaryDirectory() as tmp:
        cfg = ServeSection(model=args.model, artifact=artifact, db=f"sqlite:///{tmp}/bench.db", port=free_port(),
                           max_new_tokens=args.max_new_tokens, kb_dir=str(ROOT / "data" / "kb"))
        server, uv = start(cfg)
        client = Client(f"http://127.0.0.1:{cfg.port}", verbose=False)
        first_token_s(client, "warm-up question about returns")
        times = [first_token_s(client, QUESTIONS[i % len(QUESTIONS)]) for i in range(args.runs)]
        client.close()
        uv.should_exit = True
        server.close()
    ms = sorted(t * 1000 for t in times)
    p90 = ms[int(0.9 * (len(ms) - 1))]
    print(json.dumps({
        "benchmark": "ui_ttft", "path": "gradio_client submit /support (queue + MiniLM retrieval + store + prefill)",
        "engine": "torch-fp32" if args.fp32 else "torch-int8", "model": args.model, "artifact": artifact,
        "runs": args.runs, "median_ms": round(statistics.median(ms), 1), "p90_ms": round(p90, 1),
        "min_ms": round(ms[0], 1), "max_new_tokens": args.max_new_tokens, "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
    }))


if __name__ == "__main__":
    main()
