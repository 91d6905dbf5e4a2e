"""The packed fbgemm GEMMs as opaque ops that ``torch.compile`` can keep in one graph.

fbgemm's packed weights are TorchScript objects that dynamo cannot trace, so every int8 ``Linear``
split a compiled forward into pieces (one graph break per projection). Here each packed weight gets
an integer handle in a registry, and ``parley::int8_linear`` / ``parley::fp16_linear`` take that
handle: dynamo sees a plain int, inductor calls the op as an opaque kernel and compiles everything
around it (norms, rotary, residuals, the cache update) into a few fused C++ loops.

The ops' kernels are Python functions until :func:`load_native_kernels` builds ``int8_native.cpp``
(``torch.utils.cpp_extension``, once per machine) and registers C++ kernels for them, which skip
two Python crossings per GEMM; the torch engine loads them for int8 artifacts. From then on eager int8
modules call the ops too (cheaper than fbgemm's own op from Python); before, or without a compiler, eager
code calls fbgemm directly and only compiled graphs use the (Python) ops.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import weakref
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)

_PACKED: dict[int, Any] = {}
_NEXT_HANDLE = itertools.count()
_NATIVE_SOURCE = Path(__file__).with_name("int8_native.cpp")
_native_state: dict[str, Any] = {"loaded": False, "error": None}
# Reentrant: a module freed (and finalized by ``_forget``) while this thread holds the lock must not deadlock.
_native_lock = threading.RLock()


def register_packed(owner: object, packed: Any) -> int:
    """Keep ``packed`` reachable by an int handle for as long as ``owner`` lives."""
    with _native_lock:  # not between the loader's hand-over and its "loaded" flag
        handle = next(_NEXT_HANDLE)
        _PACKED[handle] = packed
        if _native_state["loaded"]:
            torch.ops.parley_native.put_packed(handle, packed)
    weakref.finalize(owner, _forget, handle)
    return handle


def _forget(handle: int) -> None:
    with _native_lock:  # else a weight freed during the loader's hand-over would stay in the C++ registry
        _PACKED.pop(handle, None)
        if _native_state["loaded"]:
            torch.ops.parley_native.drop_packed(handle)


def load_native_kernels() -> bool:
    """Build (once, cached by torch) and load the C++ kernels; False, with a logged reason, when that fails.

    Every weight registered so far is handed to the C++ registry under the same handle, so graphs compiled
    before or after this call run the same GEMMs. ``PARLEY_INT8_KERNELS=python`` keeps the Python kernels.
    """
    with _native_lock:
        if _native_state["loaded"] or _native_state["error"] is not None:
            return _native_state["loaded"]
        if os.environ.get("PARLEY_INT8_KERNELS", "").lower() == "python":
            _native_state["error"] = "PARLEY_INT8_KERNELS=python"
            return False
        try:
            from torch.utils.cpp_extension import load

            load(name="parley_int8_native", sources=[str(_NATIVE_SOURCE)], is_python_module=False,
                 extra_cflags=["-O2"], verbose=False)
        except Exception as exc:  # no compiler or ninja: the Python kernels keep working
            _native_state["error"] = f"{type(exc).__name__}: {exc}"
            logger.warning("int8 C++ kernels unavailable (%s); using the Python kernels", _native_state["error"])
            return False
        for handle, packed in list(_PACKED.items()):
            torch.ops.parley_native.put_packed(handle, packed)
        _native_state["loaded"] = True
        return True


def native_kernels_loaded() -> bool:
    """Whether the C++ kernels serve the ops now."""
    return bool(_native_state["loaded"])


# Registered through ``torch.library.Library`` rather than ``custom_op``: less overhead per call, which counts
# at a hundred-odd GEMMs per token.
_LIBRARY = torch.library.Library("parley", "DEF")
_LIBRARY.define("int8_linear(Tensor x, int handle, int out_features, bool reduce_range) -> Tensor")
_LIBRARY.define("fp16_linear(Tensor x, int handle, int out_features) -> Tensor")


def _int8_linear(x: torch.Tensor, handle: int, out_features: int, reduce_range: bool) -> torch.Tensor:
    return torch.ops.quantized.linear_dynamic(x, _PACKED[handle], reduce_range=reduce_range)


def _fp16_linear(x: torch.Tensor, handle: int, out_features: int) -> torch.Tensor:
    return torch.ops.quantized.linear_dynamic_fp16(x, _PACKED[handle])


# The Python kernels sit under CompositeExplicitAutograd so the C++ ones, registered for the CPU key, take
# precedence once loaded.
_LIBRARY.impl("int8_linear", _int8_linear, "CompositeExplicitAutograd")
_LIBRARY.impl("fp16_linear", _fp16_linear, "CompositeExplicitAutograd")


@torch.library.register_fake("parley::int8_linear", lib=_LIBRARY)
def _int8_linear_shape(x: torch.Tensor, handle: int, out_features: int, reduce_range: bool) -> torch.Tensor:
    return x.new_empty((*x.shape[:-1], out_features))


@torch.library.register_fake("parley::fp16_linear", lib=_LIBRARY)
def _fp16_linear_shape(x: torch.Tensor, handle: int, out_features: int) -> torch.Tensor:
    return x.new_empty((*x.shape[:-1], out_features))


int8_linear = torch.ops.parley.int8_linear.default  # fbgemm dynamic int8 GEMM with a registered packed weight
fp16_linear = torch.ops.parley.fp16_linear.default  # fbgemm fp16-weight GEMM against fp32 activations
