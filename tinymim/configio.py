"""The one config loader of every command: YAML plus command-line overrides, validated before any work.

A config is a frozen dataclass (the batch commands: train, distill, ablate, eval, export, quickstart) or a
pydantic-settings model (the service, whose deployments also set ``TINYMIM_*`` environment variables).
Both get the same ``--config FILE`` and one ``--flag`` per field, the same unknown-key check with close
matches, and a :class:`tinymim.errors.ConfigError` naming the key. Precedence: flags > the ``--config`` file
> (settings only) environment variables > defaults.

Usage in a command module::

    @dataclass(frozen=True)
    class TrainConfig:
        data: str = "builtin:fashion-mnist"   # help text comes from field metadata, see ``field_help``
        lr: float = 5e-4
        def validate(self) -> None: ...      # impossible values -> raise ConfigError

    add_config_arguments(parser, TrainConfig)            # --config FILE and one --flag per field
    cfg = config_from_args(TrainConfig, args)            # YAML < CLI; unknown keys, types, values checked

Nested configs are not supported on purpose: one flat, explicit config per command. Lists are given
on the command line as comma-separated values (``--formats onnx,onnx-int8``). pydantic is imported only
when a settings model is built (it is not a dependency of the training install).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tinymim.errors import ConfigError

C = TypeVar("C")


def field_help(text: str, **extra: Any) -> dict[str, Any]:
    """Metadata for ``dataclasses.field(metadata=...)`` carrying the --help text.

    ``flag="--name"`` gives the option another name than ``--field-name`` (the YAML key stays the field name).
    """
    return {"help": text, **extra}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _base_type(tp: Any) -> tuple[Any, bool]:
    """(inner type, optional?) for ``X | None`` / ``Optional[X]``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(args) < len(typing.get_args(tp))
        if len(args) == 1:
            return args[0], optional
        return typing.Union[tuple(args)], optional  # noqa: UP007 - built from a runtime tuple
    return tp, False


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """Convert ``value`` (from YAML or a CLI string) to ``tp`` or raise a ConfigError naming ``key``."""
    inner, optional = _base_type(tp)
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null") and optional):
        if optional:
            return None
        raise ConfigError(f"config key '{key}' must not be empty (expected {_type_name(inner)})")
    origin = typing.get_origin(inner)
    if _is_union(inner):  # e.g. ``float | Literal["auto"]``: the first member that accepts the value
        members = sorted(typing.get_args(inner), key=lambda m: typing.get_origin(m) is not typing.Literal)
        for member in members:
            try:
                return _coerce(key, value, member)
            except ConfigError:
                continue
        words = {float: "a number", int: "an integer", str: "a string", bool: "true or false"}
        names = " or ".join(
            ", ".join(map(repr, typing.get_args(m)))
            if typing.get_origin(m) is typing.Literal
            else words.get(m, _type_name(m))
            for m in members
        )
        raise ConfigError(f"config key '{key}' must be {names}, got {value!r}")
    if origin is typing.Literal:
        allowed = typing.get_args(inner)
        if value not in allowed:
            raise ConfigError(f"config key '{key}' is {value!r}; allowed values: {', '.join(map(str, allowed))}")
        return value
    if origin in (tuple, list):
        (item_tp, *rest) = typing.get_args(inner) or (str,)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{key}' must be a list, got {value!r}")
        return tuple(_coerce(key, v, item_tp) for v in value)
    if inner is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on", "false", "no", "0", "off"):
            return value.lower() in ("true", "yes", "1", "on")
        raise ConfigError(f"config key '{key}' must be true or false, got {value!r}")
    if inner is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ConfigError(f"config key '{key}' must be an integer, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"config key '{key}' must be an integer, got {value!r}") from None
    if inner is float:
        if isinstance(value, bool):
            raise ConfigError(f"config key '{key}' must be a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"config key '{key}' must be a number, got {value!r}") from None
    if inner is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"config key '{key}' must be a string, got {value!r}")
        return str(value)
    if inner is dict or typing.get_origin(inner) is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}' must be a mapping, got {value!r}")
        return value
    return value


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_settings(cls: type) -> bool:
    """A pydantic(-settings) model rather than a dataclass."""
    return hasattr(cls, "model_fields") and not dataclasses.is_dataclass(cls)


@dataclasses.dataclass(frozen=True)
class _Field:
    name: str
    type: Any
    default: Any  # None also when the field is required
    help: str
    flag: str | None = None


def _fields(cls: type) -> list[_Field]:
    if _is_settings(cls):
        prefix = (getattr(cls, "model_config", {}) or {}).get("env_prefix", "")
        out = []
        for name, info in cls.model_fields.items():  # type: ignore[attr-defined]
            default = None if info.is_required() else info.get_default(call_default_factory=True)
            env = f" (env {prefix}{name.upper()})" if prefix else ""
            out.append(_Field(name, info.annotation, default, (info.description or "") + env))
        return out
    hints = _hints(cls)
    return [
        _Field(
            f.name,
            hints[f.name],
            f.default if f.default is not dataclasses.MISSING else None,
            f.metadata.get("help", ""),
            f.metadata.get("flag"),
        )
        for f in dataclasses.fields(cls)
    ]


def build_config(cls: type[C], values: dict[str, Any]) -> C:
    """Make ``cls`` from a plain mapping: unknown keys, wrong types and impossible values raise."""
    names = {f.name for f in _fields(cls)}
    for key in values:
        if key not in names:
            close = difflib.get_close_matches(key, sorted(names), n=3)
            hint = f" Did you mean: {', '.join(close)}?" if close else f" Valid keys: {', '.join(sorted(names))}."
            raise ConfigError(f"unknown config key '{key}' for {cls.__name__}.{hint}")
    if _is_settings(cls):
        return _build_settings(cls, values)
    hints = _hints(cls)
    coerced = {k: _coerce(k, v, hints[k]) for k, v in values.items()}
    cfg = cls(**coerced)
    validate = getattr(cfg, "validate", None)
    if validate is not None:
        validate()
    return cfg


def _build_settings(cls: type[C], values: dict[str, Any]) -> C:
    """A pydantic-settings model: values that are None are left to the environment and the defaults."""
    from pydantic import ValidationError

    prefix = (getattr(cls, "model_config", {}) or {}).get("env_prefix", "")
    try:
        return cls(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as err:
        lines = []
        for e in err.errors():
            key = ".".join(str(p) for p in e["loc"]) or "settings"
            env = f" (env {prefix}{key.upper()})" if prefix else ""
            lines.append(f"  {key}{env}: {e['msg']}")
        raise ConfigError(f"invalid {cls.__name__} settings:\n" + "\n".join(lines)) from None


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping (safe loader: config files never execute code)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {p} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping of keys to values, not {type(data).__name__}")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def add_config_arguments(parser: argparse.ArgumentParser, cls: type, *, positional: tuple[str, ...] = ()) -> None:
    """``--config FILE`` plus one option per field (positional for the names in ``positional``)."""
    parser.add_argument("--config", metavar="YAML", help="YAML file of config keys; command-line flags win")
    for f in _fields(cls):
        help_text = f.help
        default = f.default
        if isinstance(default, tuple):
            default = ",".join(map(str, default))
        inner, _ = _base_type(f.type)
        if typing.get_origin(inner) is typing.Literal:
            help_text += f" (one of: {', '.join(map(str, typing.get_args(inner)))})"
        help_text += f" [default: {default}]"
        if f.name in positional:  # a list field takes any number of words (none = the default)
            many = typing.get_origin(inner) in (tuple, list)
            parser.add_argument(f.name, nargs="*" if many else "?", default=None, help=help_text)
        elif inner is bool:
            if f.name.startswith("no_"):  # argparse would read --no-x as "x is False": name it positively
                raise TypeError(f"{cls.__name__}.{f.name}: boolean config fields must not start with 'no_'")
            parser.add_argument(
                f.flag or _flag(f.name),
                dest=f.name,
                default=None,
                action=argparse.BooleanOptionalAction,
                help=help_text,
            )
        else:
            flag = f.flag or _flag(f.name)
            parser.add_argument(flag, dest=f.name, default=None, metavar=flag[2:].upper(), help=help_text)


def config_from_args(cls: type[C], args: argparse.Namespace) -> C:
    """Merge ``--config`` YAML (if any) with the flags the user actually gave, then validate."""
    values: dict[str, Any] = load_yaml(args.config) if getattr(args, "config", None) else {}
    for f in _fields(cls):
        v = getattr(args, f.name, None)
        if v is not None and v != []:  # [] = a list positional given no words
            values[f.name] = v
    return build_config(cls, values)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """JSON-ready dict of a config (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def save_config(cfg: Any, path: str | Path) -> None:
    """Write the resolved config as YAML (what ``--config`` reads back)."""
    Path(path).write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))


def require(cond: bool, message: str) -> None:
    """Raise ConfigError(message) unless ``cond``: for ``validate()`` methods."""
    if not cond:
        raise ConfigError(message)
