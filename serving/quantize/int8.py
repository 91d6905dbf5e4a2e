"""PyTorch int8 artifact for CPU: dynamic int8 Linear layers plus an int8 embedding table.

Weights are quantized symmetrically per output row (scale = max|row| / 127). The artifact stores the
int8 matrices and their scales in safetensors; reloading only rebuilds the module structure (on the
meta device, no fp32 copy) and packs the stored integers for fbgemm's dynamic int8 GEMM (activations
quantized per call), so no calibration runs at load. Activation outliers are smoothed into the
weights once, at export (:mod:`.smooth`). The embedding matrix is kept as int8 rows too, and a tied
``lm_head`` reuses those rows, so the big vocabulary matrix costs a quarter of its fp32 size once. The
head alone runs against unquantized activations (:class:`Int8RowsHead`), and sibling projections are
fused at load (:mod:`.int8_fusion`). Under ``torch.compile`` the GEMMs run through :mod:`.int8_ops`.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from groundwork.architectures import embedding_multiplier
from serving.quantize import int8_ops
from serving.quantize.errors import QuantizeError

WEIGHTS_FILE = "model.int8.safetensors"
Rows = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]  # (int8 matrix, per-row scales, bias)
META_FILE = "parley_int8.json"
FORMAT = "parley-int8-v1"


def quantize_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row int8: returns ``(int8 matrix, fp32 scale per row)``."""
    weight = weight.detach().to(torch.float32)
    scales = weight.abs().amax(dim=1).clamp(min=1e-8) / 127.0
    q = torch.round(weight / scales[:, None]).clamp_(-127, 127).to(torch.int8)
    return q.contiguous(), scales.contiguous()


class Int8Embedding(nn.Module):
    """Embedding lookup from int8 rows with a per-row scale (dequantizes only the looked-up rows).

    ``channel_scale`` undoes a per-column smoothing when the stored matrix is a smoothed tied ``lm_head``;
    ``multiplier`` is the factor some architectures apply on lookup (Gemma: sqrt(hidden_size)).
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 multiplier: float = 1.0) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        self.multiplier = float(multiplier)
        self.register_buffer("weight_int8", torch.zeros(num_embeddings, embedding_dim, dtype=torch.int8))
        self.register_buffer("scales", torch.ones(num_embeddings, dtype=torch.float32))
        self.register_buffer("channel_scale", None)

    @classmethod
    def from_float(cls, embedding: nn.Embedding, head_smoothing: torch.Tensor | None = None,
                   multiplier: float = 1.0) -> Int8Embedding:
        module = cls(embedding.num_embeddings, embedding.embedding_dim, embedding.padding_idx, multiplier)
        weight = embedding.weight if head_smoothing is None else embedding.weight * head_smoothing
        module.weight_int8, module.scales = quantize_rows(weight)
        if head_smoothing is not None:
            module.channel_scale = (1.0 / head_smoothing).float().contiguous()
        return module

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        scales = self.scales[input_ids].unsqueeze(-1)
        if self.multiplier != 1.0:
            scales = scales * self.multiplier
        rows = F.embedding(input_ids, self.weight_int8).to(torch.float32) * scales
        return rows if self.channel_scale is None else rows * self.channel_scale


def _has_vnni() -> bool:
    """VNNI accumulates u8 x s8 products in int32; without it fbgemm's int16 pair sums can saturate."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="ignore")
    except OSError:
        return False
    return "avx512_vnni" in flags or "avx_vnni" in flags


FULL_RANGE_ACTIVATIONS = _has_vnni()


class DynamicInt8Linear(nn.Module):
    """int8 x int8 GEMM with the input quantized per call (fbgemm/x86 ``linear_dynamic``).

    Unlike ``torch.ao``'s module it uses all 8 bits for activations where the CPU has VNNI (twice
    the resolution of the default 7-bit ``reduce_range``), and it quantizes a multi-token input per
    token rather than with one scale for all of it; both matter for small LLMs.
    """

    def __init__(self, q: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None,
                 reduce_range: bool | None = None) -> None:
        super().__init__()
        self.out_features, self.in_features = q.shape
        self.reduce_range = (not FULL_RANGE_ACTIVATIONS) if reduce_range is None else reduce_range
        with warnings.catch_warnings():  # quantized-tensor creation is flagged deprecated; the kernels remain
            warnings.simplefilter("ignore")
            qweight = torch._make_per_channel_quantized_tensor(
                q, scales.to(torch.float64), torch.zeros(self.out_features, dtype=torch.int64), 0
            )
            self._packed = torch.ops.quantized.linear_prepack(qweight, None)
        self._handle = int8_ops.register_packed(self, self._packed)
        self.bias = None if bias is None else bias.detach().to(torch.float32)

    def _gemm(self, x: torch.Tensor) -> torch.Tensor:
        # The op is traceable, and with the C++ kernels loaded also the cheaper call in eager mode (:mod:`.int8_ops`).
        if torch.compiler.is_compiling() or int8_ops.native_kernels_loaded():
            return int8_ops.int8_linear(x, self._handle, self.out_features, self.reduce_range)
        return torch.ops.quantized.linear_dynamic(x, self._packed, reduce_range=self.reduce_range)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.numel() == x.shape[-1]:  # one token (decoding): the per-call scale is already per token
            y = self._gemm(x)
        else:
            # fbgemm picks one scale for the whole input; in a prompt a few tokens (the first above all) are
            # hundreds of times larger than the rest and would flatten every other token to a few levels.
            # Dividing each token by its own absmax and multiplying it back gives per-token quantization.
            scale = x.abs().amax(dim=-1, keepdim=True).clamp(min=1e-8)
            y = self._gemm(x / scale) * scale
        return (y if self.bias is None else y + self.bias).to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, reduce_range={self.reduce_range}"


def int8_linear(q: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None) -> nn.Module:
    """A dynamic int8 Linear packed from stored integers (no observer, no calibration)."""
    return DynamicInt8Linear(q, scales, bias)


class Int8RowsHead(nn.Module):
    """The output head: the stored int8 rows times their scales, run against fp32 activations.

    Dynamic int8 would quantize the final hidden state to 7-8 bits per token, and that alone flips
    greedy tokens: simulating int8 on a tuned SmolLM2 (30 held-out prompts, per-token activations), an
    unquantized head input agreed with fp32 on every token, a quantized one on 0.92 of them.
    The rows are held as fp16 for fbgemm's fp16-weight GEMM (int8 x scale is exact in fp16's 11-bit
    mantissa up to the scale's rounding), built at load from the same stored integers: the
    artifact does not grow, and the head costs a little more per token than an int8 GEMM.
    """

    def __init__(self, q: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.out_features, self.in_features = q.shape
        weight = q.to(torch.float32) * scales.to(torch.float32)[:, None]
        self._packed = torch.ops.quantized.linear_prepack_fp16(
            weight, None if bias is None else bias.detach().to(torch.float32))
        self._handle = int8_ops.register_packed(self, self._packed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.to(torch.float32)
        if torch.compiler.is_compiling() or int8_ops.native_kernels_loaded():
            return int8_ops.fp16_linear(x32, self._handle, self.out_features).to(x.dtype)
        return torch.ops.quantized.linear_dynamic_fp16(x32, self._packed).to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 rows as fp16 weights"


def _pack_linears(model: nn.Module, names: list[str], rows_of: Callable[[str], Rows], head_name: str | None,
                  fuse: bool) -> None:
    """Replace the Linears ``names`` by int8 modules built from ``rows_of(name)`` (asked once per name).

    With ``fuse``, sibling projections that read the same input (q/k/v, gate/up) are packed as one GEMM
    (:mod:`.int8_fusion`; same outputs, fewer kernel calls per token), straight from their rows, so the
    separate modules are never built. The output head becomes :class:`Int8RowsHead`.
    """
    from serving.quantize.int8_fusion import install_fused_group, sibling_groups

    packed: set[str] = set()
    for group in sibling_groups(names) if fuse else []:
        parts = [rows_of(n) for n in group]
        if not install_fused_group(model, group, parts, int8_linear):
            for name, part in zip(group, parts, strict=True):
                _set_module(model, name, int8_linear(*part))
        packed.update(group)
    for name in names:
        if name not in packed:
            _set_module(model, name, (Int8RowsHead if name == head_name else int8_linear)(*rows_of(name)))


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


def _tied_lm_head(model: nn.Module) -> bool:
    head, embedding = model.get_output_embeddings(), model.get_input_embeddings()
    return head is not None and embedding is not None and head.weight is embedding.weight


def quantize_int8(model: nn.Module, head_smoothing: torch.Tensor | None = None, fuse: bool = True
                  ) -> tuple[nn.Module, dict[str, torch.Tensor], dict[str, Any]]:
    """Quantize ``model`` in place; return it with the tensors to store and a description of the layout.

    The stored tensors are always per original ``Linear``; ``fuse`` only changes the returned module tree
    (as in :func:`load_int8`).
    """
    tied = _tied_lm_head(model)
    head = model.get_output_embeddings()
    head_name = next(n for n, m in model.named_modules() if m is head) if head is not None else None
    embedding = model.get_input_embeddings()
    embedding_name = next(n for n, m in model.named_modules() if m is embedding)
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and not (tied and n == head_name)]
    tensors: dict[str, torch.Tensor] = {}

    def quantized_rows(name: str) -> Rows:
        linear = model.get_submodule(name)
        q, scales = quantize_rows(linear.weight)
        tensors[f"{name}.weight_int8"], tensors[f"{name}.scales"] = q, scales
        bias = None if linear.bias is None else linear.bias.detach().to(torch.float32).contiguous()
        if bias is not None:
            tensors[f"{name}.bias"] = bias
        return q, scales, bias

    _pack_linears(model, linears, quantized_rows, head_name, fuse)
    new_embedding = Int8Embedding.from_float(embedding, head_smoothing if tied else None,
                                             embedding_multiplier(model.config))
    _set_module(model, embedding_name, new_embedding)
    tensors[f"{embedding_name}.weight_int8"] = new_embedding.weight_int8
    tensors[f"{embedding_name}.scales"] = new_embedding.scales
    if new_embedding.channel_scale is not None:
        tensors[f"{embedding_name}.channel_scale"] = new_embedding.channel_scale
    if tied:
        _set_module(model, head_name, Int8RowsHead(new_embedding.weight_int8, new_embedding.scales, None))
    # Everything else (norms, biases of other modules, rotary tables, even non-persistent buffers) stays float.
    quantized = set(linears) | {embedding_name} | ({head_name} if tied else set())
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        owner = name.rpartition(".")[0]
        if owner not in quantized:
            tensors[name] = tensor.detach().contiguous()
    layout = {"linears": linears, "embedding": embedding_name, "tied_lm_head": head_name if tied else None}
    return model, tensors, layout


def save_int8(model: nn.Module, tokenizer, out_dir: str | Path, settings: dict[str, Any] | None = None,
              smooth_alpha: float | None = 0.7, smooth_head: bool = False) -> Path:
    """Quantize a merged fp32 model and write ``config.json``, tokenizer, int8 weights and a layout file.

    With ``smooth_alpha`` (architectures the table says how to smooth), activation outliers are first migrated
    into the weights using the built-in calibration prompts (:mod:`.smooth`); the fp32 function is unchanged.
    ``smooth_head`` also smooths the tied lm_head (on SmolLM2 it lowered the mean logit error but not top-1
    agreement: off).
    """
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = model.config
    smoothing: dict[str, Any] | None = None
    from serving.quantize.smooth import smoothable

    if smooth_alpha and smoothable(model) and tokenizer is not None:
        from serving.quantize.smooth import CALIBRATION_PROMPTS, calibration_inputs, smooth_decoder, smooth_tied_head

        inputs = calibration_inputs(tokenizer)
        largest = smooth_decoder(model, inputs, smooth_alpha)
        head_smoothing = (smooth_tied_head(model, inputs, smooth_alpha)
                          if smooth_head and _tied_lm_head(model) else None)
        smoothing = {"alpha": smooth_alpha, "calibration_prompts": len(CALIBRATION_PROMPTS),
                     "largest_scale": largest, "tied_lm_head": head_smoothing is not None}
    else:
        head_smoothing = None
    model, tensors, layout = quantize_int8(model, head_smoothing)
    save_file(tensors, str(out / WEIGHTS_FILE), metadata={"format": FORMAT})
    config.save_pretrained(out)
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    meta = {"format": FORMAT,
            "scheme": "symmetric per-row int8 weights; fbgemm dynamic int8 Linear (activations quantized per call); "
                      "output head: the int8 rows as fp16 weights against fp32 activations (built at load)",
            "activation_bits_on_export_cpu": 8 if FULL_RANGE_ACTIVATIONS else 7, "smoothing": smoothing,
            "torch": torch.__version__, **layout, "settings": settings or {}}
    (out / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return out


def is_int8_artifact(path: str | Path) -> bool:
    return (Path(path) / META_FILE).is_file()


def load_int8(path: str | Path, fuse: bool = True) -> nn.Module:
    """Rebuild an int8 artifact: skeleton on the meta device, then stored integers packed into int8 modules.

    ``fuse`` packs sibling projections as one GEMM (same outputs, fewer kernel calls per token).
    """
    from safetensors import safe_open
    from transformers import AutoConfig, AutoModelForCausalLM

    folder = Path(path)
    if not is_int8_artifact(folder):
        raise QuantizeError(f"{path} is not a Parley int8 artifact (no {META_FILE})")
    meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT:
        raise QuantizeError(f"{path}: unknown int8 artifact format {meta.get('format')!r}")
    # One tensor at a time: each int8 matrix is freed once packed, keeping peak RSS near the artifact size.
    handle = safe_open(str(folder / WEIGHTS_FILE), "pt")
    remaining = set(handle.keys())

    def take(key: str, optional: bool = False) -> torch.Tensor | None:
        if key not in remaining:
            if optional:
                return None
            raise QuantizeError(f"{path}: artifact lacks tensor {key}")
        remaining.remove(key)
        return handle.get_tensor(key)

    config = AutoConfig.from_pretrained(folder)
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    head = model.get_output_embeddings()
    head_name = next((n for n, m in model.named_modules() if m is head), None) if head is not None else None

    def stored_rows(name: str) -> Rows:
        return take(f"{name}.weight_int8"), take(f"{name}.scales"), take(f"{name}.bias", optional=True)

    _pack_linears(model, meta["linears"], stored_rows, head_name, fuse)
    name = meta["embedding"]
    old = model.get_submodule(name)
    embedding = Int8Embedding(old.num_embeddings, old.embedding_dim, old.padding_idx, embedding_multiplier(config))
    embedding.weight_int8, embedding.scales = take(f"{name}.weight_int8"), take(f"{name}.scales")
    channel_scale = take(f"{name}.channel_scale", optional=True)
    if channel_scale is not None:
        embedding.channel_scale = channel_scale
    _set_module(model, name, embedding)
    if meta.get("tied_lm_head"):
        _set_module(model, meta["tied_lm_head"], Int8RowsHead(embedding.weight_int8, embedding.scales, None))
    for key in sorted(remaining):
        tensor = handle.get_tensor(key)
        owner_name, _, attr = key.rpartition(".")
        owner = model.get_submodule(owner_name)
        if attr in owner._parameters:
            owner._parameters[attr] = nn.Parameter(tensor, requires_grad=False)
        elif attr in owner._buffers:
            owner._buffers[attr] = tensor
        else:
            raise QuantizeError(f"{path}: stored tensor {key} has no place in the model")
    leftover = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if leftover:
        raise QuantizeError(f"{path}: artifact lacks tensors for {', '.join(leftover[:5])}")
    model.eval()
    return model
