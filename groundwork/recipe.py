"""The recipe: one dataclass per section (``groundwork.sections``), loaded from ``configs/*.yaml``.

Each stage takes only the sections it reads; any key can be overridden on the command line with
``--set section.key=value``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from groundwork.config_io import apply_override, from_dict, load_recipe_yaml
from groundwork.errors import ConfigError
from groundwork.sections import (
    DataSection,
    EvaluateSection,
    GenerateSection,
    PipelineSection,
    PolicySection,
    PPOSection,
    QuantizeSection,
    RewardSection,
    RiskSection,
    RunSection,
    ServeSection,
    SFTSection,
    SoupSection,
)

T = TypeVar("T")


@dataclass
class Recipe:
    """All sections of a recipe."""

    run: RunSection = field(default_factory=RunSection)
    policy: PolicySection = field(default_factory=PolicySection)
    data: DataSection = field(default_factory=DataSection)
    sft: SFTSection = field(default_factory=SFTSection)
    generate: GenerateSection = field(default_factory=GenerateSection)
    ppo: PPOSection = field(default_factory=PPOSection)
    soup: SoupSection = field(default_factory=SoupSection)
    quantize: QuantizeSection = field(default_factory=QuantizeSection)
    evaluate: EvaluateSection = field(default_factory=EvaluateSection)
    reward: RewardSection = field(default_factory=RewardSection)
    risk: RiskSection = field(default_factory=RiskSection)
    serve: ServeSection = field(default_factory=ServeSection)
    pipeline: PipelineSection = field(default_factory=PipelineSection)


def load_recipe(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Load a YAML recipe (or the defaults) and apply ``section.key=value`` overrides."""
    data = load_recipe_yaml(path) if path is not None else {}
    for assignment in overrides:
        apply_override(data, assignment)
    return from_dict(Recipe, data)



class UntakenSection:
    """Stands in for a section a stage did not declare in ``@takes``.

    Reading it raises: the pipeline fingerprints only the declared sections, so a stage that quietly read another
    one would be skipped as current after that section changed.
    """

    untaken = True

    def __init__(self, section: str, stage: str) -> None:
        self._where = (section, stage)

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        section, stage = self._where
        raise ConfigError(f"{stage} reads recipe.{section}.{key} but does not take the '{section}' section: "
                          f"add it to its @takes(...)")


SECTION_NAMES = tuple(f.name for f in fields(Recipe))


def narrow(recipe: Recipe, sections: Iterable[str], stage: str) -> Recipe:
    """The recipe with only ``sections`` readable (the others replaced by :class:`UntakenSection`)."""
    keep = set(sections)
    return replace(recipe, **{name: UntakenSection(name, stage) for name in SECTION_NAMES if name not in keep})


def takes(*sections: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Declare the recipe sections a stage reads; the stage then sees only those, and the pipeline hashes them.

    Decorates a function whose first argument is the recipe: ``@takes("run", "policy", "data", "sft")``.
    """
    unknown = [s for s in sections if s not in SECTION_NAMES]
    if unknown:
        raise ValueError(f"@takes: unknown recipe section(s) {unknown}; known: {list(SECTION_NAMES)}")

    def decorate(fn: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(fn)
        def stage(recipe: Recipe, *args: Any, **kwargs: Any) -> T:
            return fn(narrow(recipe, sections, fn.__qualname__), *args, **kwargs)

        stage.sections = tuple(sections)  # type: ignore[attr-defined]
        return stage

    return decorate


def taken_sections(stage_fn: Callable[..., Any]) -> tuple[str, ...]:
    """The sections a ``@takes`` stage declared."""
    try:
        return stage_fn.sections  # type: ignore[attr-defined]
    except AttributeError as exc:
        name = getattr(stage_fn, "__qualname__", stage_fn)
        raise TypeError(f"{name} does not declare its sections with @takes") from exc
