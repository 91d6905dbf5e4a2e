"""torchao's int8 dynamic-activation/int8-weight arm of ``benchmarks/torch_decode.py`` on tiny-random-llama.

Skipped without torchao (the ``torchao`` extra). The quantized model must still answer like the fp32 one for the
first greedy tokens, and the compiled int8 GEMM must equal the eager one for a one-token activation (the case
pytorch/pytorch#195066 breaks without the benchmark's workaround).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("torchao")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import torch_decode  # noqa: E402

TINY = "tiny-random-llama"
ASK = "Where is my order? It was due on Monday."


def test_torchao_int8_greedy_tokens_match_fp32_at_the_start():
    from serving.engines import load_engine

    fp32 = load_engine("torch", TINY, threads=1)
    int8 = torch_decode.load_torchao_engine(TINY, None, threads=1)
    try:
        from torchao.quantization import Int8Tensor

        assert isinstance(int8.model.lm_head.weight, Int8Tensor)
        want = fp32.tokenizer(fp32.generate(ASK, max_tokens=4), add_special_tokens=False)["input_ids"]
        got = int8.tokenizer(int8.generate(ASK, max_tokens=4), add_special_tokens=False)["input_ids"]
        assert got[:3] == want[:3]
    finally:
        fp32.close()
        int8.close()


def test_compiled_int8_linear_equals_eager_for_one_token():
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

    torch_decode.install_torchao_int_mm_workaround()
    torch_decode.install_torchao_int_mm_workaround()  # idempotent
    torch.manual_seed(0)
    layer = torch.nn.Sequential(torch.nn.Linear(64, 96, bias=False)).eval()
    quantize_(layer, Int8DynamicActivationInt8WeightConfig())
    x = torch.randn(1, 1, 64)
    with torch.inference_mode(), torch._functorch.config.patch(enable_autograd_cache=False):
        torch._dynamo.reset()
        got = torch.compile(layer, dynamic=True)(x)
        want = layer(x)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_torchao_flag_without_torchao_says_how_to_install(monkeypatch, capsys):
    monkeypatch.setattr(torch_decode, "torchao_available", lambda: False)
    with pytest.raises(SystemExit):
        torch_decode.main(["--adapter", "a", "--export-dir", "b", "--torchao"])
    assert "parley[torchao]" in capsys.readouterr().err
