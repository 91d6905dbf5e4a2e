"""Fewer, larger int8 GEMMs for decoding: sibling projections that read the same input run as one.

At batch 1 a dynamic int8 ``Linear`` has a fixed cost per call even for a small matrix (quantizing the
activation, packing it, the thread fork/join), and SmolLM2's 210 projection calls per token spend a large
share of a decode step in it. Attention's ``q/k/v`` and the MLP's ``gate/up`` projections
all read the same hidden state, so their stored rows are concatenated into one int8 matrix at load time
and computed once; each original module returns its slice. The model's own ``forward`` is left untouched
(no copy of transformers' attention code), and because the activation is quantized once with the same
parameters either way, the fused output equals the separate ones. (Swapping the RMSNorms for
``F.rms_norm`` was tried too: at one token it was slower than transformers' own.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

# Children of one parent module that are always called on the same tensor, in any order.
SIBLING_GROUPS: tuple[tuple[str, ...], ...] = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))


class SharedInputGroup:
    """Runs one fused projection per input tensor and hands each member its slice.

    The first member called with a new tensor computes all slices; the others, called with that same
    tensor object, take theirs. Once every member has taken its slice the references are dropped, so
    nothing outlives the layer call. A member called with a different tensor recomputes, so an
    unexpected call order is only slower, never wrong.
    """

    def __init__(self, projection: nn.Module, sizes: Sequence[int]) -> None:
        self.projection, self.sizes = projection, list(sizes)
        self._input: torch.Tensor | None = None
        self._parts: Sequence[torch.Tensor] = ()
        self._waiting: set[int] = set()

    def part(self, index: int, x: torch.Tensor) -> torch.Tensor:
        if self._input is not x or index not in self._waiting:
            self._parts = self.projection(x).split(self.sizes, dim=-1)
            self._input, self._waiting = x, set(range(len(self.sizes)))
        self._waiting.discard(index)
        out = self._parts[index]
        if not self._waiting:
            self._input, self._parts = None, ()
        return out


class SharedInputMember(nn.Module):
    """Stands in for one projection of a :class:`SharedInputGroup` (same call signature as ``Linear``)."""

    def __init__(self, group: SharedInputGroup, index: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.group, self.index = group, index
        self.in_features, self.out_features = in_features, out_features
        if index == 0:
            self.fused = group.projection  # registered once, so the fused weights show up in the module tree

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.group.part(self.index, x)

    def extra_repr(self) -> str:
        return f"slice {self.index} of {self.group.sizes}"


Build = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], nn.Module]


def sibling_groups(linear_names: list[str]) -> list[list[str]]:
    """Complete sibling groups among ``linear_names`` (full module names), e.g. one layer's q/k/v."""
    present, groups = set(linear_names), []
    for name in linear_names:
        parent, _, child = name.rpartition(".")
        for names in SIBLING_GROUPS:
            full = [f"{parent}.{n}" if parent else n for n in names]
            if child == names[0] and all(f in present for f in full):
                groups.append(full)
    return groups


def install_fused_group(model: nn.Module, names: list[str],
                        parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]], build: Build) -> bool:
    """Put one fused projection behind the sibling modules ``names``; False (nothing changed) if they cannot
    share one GEMM (different input sizes, or only some with a bias)."""
    if len({p[0].shape[1] for p in parts}) != 1 or len({p[2] is None for p in parts}) != 1:
        return False
    bias = None if parts[0][2] is None else torch.cat([p[2] for p in parts])
    group = SharedInputGroup(build(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]), bias),
                             [p[0].shape[0] for p in parts])
    for index, (name, part) in enumerate(zip(names, parts, strict=True)):
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, SharedInputMember(group, index, part[0].shape[1], part[0].shape[0]))
    return True
