"""One rule for settings: every setting has a recipe key, and every flag is sugar for a ``--set``.

Each command registers ``--config``/``--set`` with :func:`add_recipe_args` and its setting flags with
:func:`add_setting`, which records the flag's recipe key on the parser (``flag_keys``). :func:`flag_overrides`
turns the flags a user gave into ``section.key=value`` assignments placed after the user's own ``--set``s, so a
flag wins; :func:`recipe_from_args` loads the recipe with both. Defaults live in the section dataclasses only: a
flag's default is None (not given) and its help names the key and reads the key's default from the dataclass.
"""

from __future__ import annotations

import argparse
import functools
import json
from typing import Any

from groundwork.recipe import Recipe, load_recipe

FLAG_KEYS = "flag_keys"  # the parser default holding {flag dest: "section.key"}


def add_recipe_args(parser: argparse.ArgumentParser) -> None:
    """``--config`` and ``--set`` (every command takes both); starts the parser's flag -> key map."""
    parser.add_argument("--config", "-c", help="YAML recipe (configs/*.yaml); defaults apply when omitted")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one recipe key, e.g. --set sft.learning_rate=1e-4 (repeatable)")
    parser.set_defaults(**{FLAG_KEYS: {}})


@functools.cache
def _defaults() -> Recipe:
    return Recipe()


def key_default(key: str) -> Any:
    """The default of a recipe key (``"serve.port"`` -> 7860), read from the section dataclasses."""
    node: Any = _defaults()
    for part in key.split("."):
        if not hasattr(node, part):
            raise KeyError(f"no recipe key {key!r}")
        node = getattr(node, part)
    return node


def add_setting(parser: argparse.ArgumentParser, *names: str, key: str, help: str, **kwargs: Any) -> argparse.Action:
    """A flag that sets recipe key ``key`` (``--port`` -> ``serve.port``); its help ends with the key and default."""
    keys = parser.get_default(FLAG_KEYS)
    if keys is None:
        raise ValueError("call add_recipe_args(parser) before add_setting")
    default = key_default(key)
    shown = ("none" if default is None or default == [] else ",".join(map(str, default)) if isinstance(default, list)
             else default)
    text = f"{help} (recipe key {key}; default: {shown})".replace("%", "%%")
    action = parser.add_argument(*names, default=None, help=text, **kwargs)
    keys[action.dest] = key
    return action


def flag_overrides(args: argparse.Namespace, flag_keys: dict[str, str] | None = None) -> list[str]:
    """``section.key=value`` assignments for the setting flags that were given (None = not given)."""
    out = []
    for dest, key in (flag_keys if flag_keys is not None else getattr(args, FLAG_KEYS, {})).items():
        value = getattr(args, dest, None)
        if value is not None:
            # JSON is YAML: strings stay strings ("7860" too), lists and tuples become lists.
            out.append(f"{key}={json.dumps(list(value) if isinstance(value, tuple) else value, ensure_ascii=False)}")
    return out


def recipe_from_args(args: argparse.Namespace) -> Recipe:
    """The recipe: ``--config``, then the user's ``--set``s, then the flags (each one a ``--set`` of its key)."""
    return load_recipe(args.config, [*args.overrides, *flag_overrides(args)])
