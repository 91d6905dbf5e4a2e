"""The C++ kernels behind ``parley::int8_linear`` / ``parley::fp16_linear`` (serving/quantize/int8_native.cpp).

They must compute exactly what the Python kernels compute (the same fbgemm call, minus two Python
crossings), serve weights registered before and after they load, forget a weight when its module dies,
and be what an int8 engine uses once loaded.
"""

from __future__ import annotations

import gc

import pytest
import torch

from serving.quantize import int8_ops
from serving.quantize.int8 import DynamicInt8Linear, Int8RowsHead, quantize_int8, quantize_rows

TINY = "tiny-random-llama"


@pytest.fixture(scope="module")
def native():
    if not int8_ops.load_native_kernels():
        pytest.fail(f"the C++ kernels did not build: {int8_ops._native_state['error']}")
    return True


def _int8(out_features: int = 48, seed: int = 0, kind: type = DynamicInt8Linear):
    torch.manual_seed(seed)
    q, scales = quantize_rows(torch.randn(out_features, 32))
    return kind(q, scales, torch.randn(out_features))


def test_native_kernels_match_the_python_kernels(native):
    registered_before = _int8(seed=1)  # put in the C++ registry by the loader
    head = _int8(out_features=64, seed=2, kind=Int8RowsHead)
    x = torch.randn(3, 5, 32)
    with torch.inference_mode():
        for module in (registered_before, _int8(seed=3)):
            args = (x, module._handle, module.out_features, module.reduce_range)
            assert torch.equal(int8_ops.int8_linear(*args), int8_ops._int8_linear(*args))
            one = x[:1, :1]
            assert torch.equal(int8_ops.int8_linear(one, *args[1:]), int8_ops._int8_linear(one, *args[1:]))
        args = (x, head._handle, head.out_features)
        assert torch.equal(int8_ops.fp16_linear(*args), int8_ops._fp16_linear(*args))


def test_a_dead_module_leaves_no_weight_behind(native):
    module = _int8(seed=4)
    handle = module._handle
    del module
    gc.collect()
    assert handle not in int8_ops._PACKED
    with pytest.raises(RuntimeError, match=f"no packed int8 weight under handle {handle}"):
        int8_ops.int8_linear(torch.randn(1, 32), handle, 48, False)


def test_an_int8_model_answers_the_same_with_either_kernel(native):
    from groundwork.models import load_causal_lm, load_tokenizer

    tokenizer = load_tokenizer(TINY)
    model = quantize_int8(load_causal_lm(TINY))[0].eval()
    ids = tokenizer("Where is my order?", return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        native_logits = model(input_ids=ids).logits
        int8_ops._native_state["loaded"] = False  # route the modules to fbgemm's own ops for one forward
        try:
            python_logits = model(input_ids=ids).logits
        finally:
            int8_ops._native_state["loaded"] = True
    assert torch.equal(native_logits, python_logits)


def test_an_int8_engine_loads_the_native_kernels_unless_told_not_to(native, tmp_path):
    # A fresh interpreter each time: in this one the fixture has loaded the kernels already.
    import json
    import os
    import subprocess
    import sys

    from serving.engines import load_engine
    from serving.quantize import save_int8

    base = load_engine("torch", TINY)
    save_int8(base.model, base.tokenizer, tmp_path / "int8")
    script = (
        "import json, sys\n"
        "from serving.engines import load_engine\n"
        "from serving.quantize import int8_ops\n"
        f"engine = load_engine('torch', artifact={str(tmp_path / 'int8')!r})\n"
        "answer = engine.generate('Where is my order?', max_tokens=8)\n"
        "print(json.dumps({'native': int8_ops.native_kernels_loaded(), 'answer': answer}))\n"
    )
    seen = {}
    for setting in ("", "python"):
        env = {**os.environ, "PARLEY_INT8_KERNELS": setting}
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
        assert done.returncode == 0, done.stderr[-2000:]
        seen[setting] = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen[""]["native"] is True and seen["python"]["native"] is False
    assert seen[""]["answer"] == seen["python"]["answer"]  # the same GEMMs either way
