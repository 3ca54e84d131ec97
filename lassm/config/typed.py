"""Values of typed config dataclasses: what ``--set key=value``, ``Config.from_dict`` (config.json,
checkpoints) and ablation variants may put into a field.

Each value is checked against the field's declared type, read with ``typing.get_type_hints`` (the
schema uses postponed annotations): ``int`` (not bool, not float), ``float`` (an int is converted),
``bool`` (True/False only), ``str``, ``X | None``, ``tuple[X, ...]`` and fixed tuples, nested as in
``tuple[tuple[int, int], ...]``; lists become tuples, as JSON stores them. A value that does not fit
raises ValueError naming the dotted key, the expected type and the value. Ranges are the dataclasses'
own ``__post_init__`` checks, run before a value is set.
"""

from __future__ import annotations

import ast
import functools
import types
import typing
from dataclasses import fields, is_dataclass, replace


class TypeMismatch(ValueError):
    """A value that does not fit a field's declared type; ``expected`` says what would, in words."""

    def __init__(self, expected: str):
        super().__init__(f"expected {expected}")
        self.expected = expected


@functools.cache
def _hints(cls) -> dict:
    # the module uses postponed annotations, so the declared types are strings until resolved here
    return typing.get_type_hints(cls)


def describe(hint) -> str:
    """A declared type in words: ``int`` -> "an integer", ``float | None`` -> "a number or None"."""
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        return " or ".join("None" if a is type(None) else describe(a) for a in typing.get_args(hint))
    words = {bool: "True or False", int: "an integer", float: "a number", str: "a string"}
    if hint in words:
        return words[hint]
    return f"a {getattr(hint, '__name__', hint)}" if is_dataclass(hint) else f"a {hint}"  # tuple[int, ...]


def convert(value, hint):
    """``value`` as the declared type ``hint``: an int for a float field becomes a float, a list for a
    tuple field a tuple (nested too, as JSON stores them); anything else that does not fit raises
    :class:`TypeMismatch`. ``bool`` is not an int here, and a float is not an int (no silent rounding)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return convert(value, option)
            except TypeMismatch:
                pass
        raise TypeMismatch("a value (not None)" if value is None else describe(hint))
    if value is None:
        raise TypeMismatch("a value (not None)")
    if hint is bool and isinstance(value, bool) or hint is str and isinstance(value, str):
        return value
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int and number and isinstance(value, int):
        return value
    if hint is float and number:
        return float(value)
    if origin is tuple and isinstance(value, tuple | list):
        items = args[:1] * len(value) if args[-1:] == (...,) else args
        if len(items) == len(value):
            try:
                return tuple(convert(v, h) for v, h in zip(value, items, strict=True))
            except TypeMismatch:
                pass
    if is_dataclass(hint) and isinstance(value, hint):
        return value
    raise TypeMismatch(describe(hint))


def check_positive(section, prefix: str, names: tuple[str, ...]) -> None:
    """A section's ``__post_init__`` range check: each of ``names`` is a positive integer (ValueError naming
    ``prefix.name`` otherwise)."""
    for name in names:
        if getattr(section, name) < 1:
            raise ValueError(f"{prefix}.{name}: expected a positive integer, got {getattr(section, name)}")


def find_field(cfg, key: str):
    """(the dataclass holding dotted ``key``, the field's name, its declared type); KeyError(part) when a
    part of the key is not a field."""
    *path, name = key.split(".")
    target = cfg
    for part in path:
        if not is_dataclass(target) or part not in {f.name for f in fields(target)}:
            raise KeyError(part)
        target = getattr(target, part)
    if not is_dataclass(target) or name not in {f.name for f in fields(target)}:
        raise KeyError(name)
    return target, name, _hints(type(target))[name]


def typed_value(value, hint, where: str):
    try:
        return convert(value, hint)
    except TypeMismatch as err:
        example = f" (e.g. {EXAMPLES[hint]})" if hint in EXAMPLES else ""
        raise ValueError(f"{where}: expected {err.expected}{example}, got {value!r}") from None


# how a nested tuple is written on the command line, shown when a value does not fit
EXAMPLES = {tuple[tuple[int, int], ...]: "((1, 8), (496, 1))",
             tuple[tuple[float, float], ...]: "((10.0, 60.0), (30.0, 180.0))",
             tuple[str, ...]: "('a', 'b')", tuple[int, ...]: "(0, 1)"}


def build(cls, d: dict, where: str):
    """A dataclass from a nested dict (as :meth:`Config.to_dict` writes it), every value type-checked."""
    if not isinstance(d, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(d).__name__}")
    hints = {f.name: _hints(cls)[f.name] for f in fields(cls)}
    unknown = sorted(set(d) - set(hints), key=str)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; expected some of {sorted(hints)}")
    kwargs = {}
    for name, value in d.items():
        hint = hints[name]
        if is_dataclass(hint) and not isinstance(value, hint):
            kwargs[name] = build(hint, value, f"{where}.{name}")
        else:
            kwargs[name] = typed_value(value, hint, f"{where}.{name}")
    return cls(**kwargs)


def apply_overrides(cfg, overrides: list[str] | dict):
    """Set dotted fields from ``["train.epochs=10", "model.decoder.t_layer=0"]`` or a dict.

    Text values are Python literals (numbers, strings, tuples, True/False, None); a bare word is a
    string. Every value must fit the field's declared type (an int is fine for a float, ``"3"`` on the
    command line is 3 for an int field) and pass the section's own checks before it is set; otherwise
    ValueError names the dotted key, what was expected and the value.
    """
    from_text = not isinstance(overrides, dict)
    items = (_split(o) for o in overrides) if from_text else overrides.items()
    for key, value in items:
        try:
            target, name, hint = find_field(cfg, key)
        except KeyError as err:
            raise ValueError(f"override {key!r}: unknown field {err.args[0]!r}") from None
        if from_text:
            value = _parse(value, hint)
        if is_dataclass(hint) and isinstance(value, dict):
            value = build(hint, value, f"override {key}")
        value = typed_value(value, hint, f"override {key}")
        replace(target, **{name: value})  # runs the section's __post_init__ on the new value, cfg untouched
        setattr(target, name, value)
    return cfg


def _parse(text: str, hint):
    """A command-line value: a Python literal, else the bare word; a string field keeps its text as
    written (``train.experiment=2024`` is the folder "2024", not the number)."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text  # a bare word: keep the string
    return text if hint is str and not isinstance(value, str) else value


def _split(override: str) -> tuple[str, str]:
    if not isinstance(override, str) or "=" not in override:
        raise ValueError(f"override {override!r}: expected key=value, e.g. train.epochs=10")
    key, value = override.split("=", 1)
    return key.strip(), value.strip()
