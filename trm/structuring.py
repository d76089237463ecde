"""Strict cattrs structuring for recipes and plugin options, and its errors as one clean line each.

cattrs' own int/float/str hooks coerce (``int("2")``, ``int(2.7)``); the hooks here refuse instead. attrs stops at
the first failing validator and cattrs passes its raw tuple on; here every field's validator runs and each failure
becomes ``$.path.key: message``. trm/config.py builds recipes on top of this; docs/recipes.md shows the messages.
"""

from __future__ import annotations

import functools
import re
import typing
from typing import Any, Callable, Iterator, Literal, Mapping, Sequence

import attrs
import cattrs
from cattrs.errors import (
    AttributeValidationNote,
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)

from trm.errors import RecipeError, did_you_mean


def describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, (dict, list)):
        return "a mapping" if isinstance(value, dict) else "a list"
    return f"{type(value).__name__} {value!r}"


GENERIC_QUOTE_HINT = "; YAML reads unquoted digits as a number: quote the value, e.g. '\"00576224\"'"


def _strict(kind: type) -> Any:
    def hook(value: Any, _type: Any) -> Any:
        ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not ok:
            hint = ""
            if kind is str and isinstance(value, (int, float)) and not isinstance(value, bool):
                # e.g. an ARC task id 00576224, which YAML 1.1 reads as the octal number 195732
                hint = GENERIC_QUOTE_HINT
            raise TypeError(f"expected {kind.__name__}, got {describe(value)}{hint}")
        return value

    return hook


def _literal_hook(value: Any, literal: Any) -> Any:
    allowed = typing.get_args(literal)
    if isinstance(value, bool) and {"on", "off"} <= set(allowed):  # YAML 1.1 reads `compile: off` as False
        return "on" if value else "off"
    if value not in allowed:
        names = [str(a) for a in allowed]
        hint = did_you_mean(str(value), names) if isinstance(value, str) else ""
        raise ValueError(f"expected one of {', '.join(repr(a) for a in allowed)}, got {describe(value)}{hint}")
    return value


def _with_validators(cl: type, structure: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """``structure`` for attrs class ``cl``, with every field's validator run and all failures reported at once.

    A value that is not a mapping is refused in words.

    attrs runs validators inside ``__init__`` and stops at the first failure, which cattrs passes on bare (no key,
    the raw attrs tuple as message). Here the instance is built with validators off, then each field's validator
    runs and its failure carries the field's name, as a wrong type does.
    """
    checked = [field for field in attrs.fields(cl) if field.validator is not None]
    names = {field.name for field in attrs.fields(cl)}

    def hook(value: Any, type_: Any) -> Any:
        if not isinstance(value, Mapping):  # else cattrs' own "argument of type 'int' is not iterable"
            raise TypeError(f"expected a mapping, got {describe(value)}")
        extra = {key for key in value if key not in names}
        if extra:  # cattrs stops at unknown keys; report them together with every problem of the known ones
            unknown = ForbiddenExtraKeysError("", cl, extra)
            try:
                hook({k: v for k, v in value.items() if k in names}, type_)
            except ClassValidationError as exc:
                raise ClassValidationError(exc.message, [unknown, *exc.exceptions], cl) from None
            except (TypeError, ValueError) as exc:
                raise ClassValidationError(f"While structuring {cl.__name__}", [unknown, exc], cl) from None
            raise ClassValidationError(f"While structuring {cl.__name__}", [unknown], cl)
        if not checked:
            return structure(value, type_)
        try:
            instance = _unvalidated(structure, value, type_)
        except ClassValidationError as exc:
            # Some keys have wrong types: still check the ranges of the others (the bad ones left at their defaults).
            notes = [note for _, note in exc.group_exceptions()[0]]
            failed = {note.name for note in notes if isinstance(note, AttributeValidationNote)}
            try:
                rest = _unvalidated(structure, {k: v for k, v in value.items() if k not in failed}, type_)
            except Exception:  # a bad key without a default: its type error is enough for now
                raise exc from None
            problems = _failed_validators(cl, rest, [field for field in checked if field.name not in failed])
            raise ClassValidationError(exc.message, [*exc.exceptions, *problems], cl) from None
        problems = _failed_validators(cl, instance, checked)
        if problems:
            raise ClassValidationError(f"While structuring {cl.__name__}", problems, cl)
        return instance

    return hook


def _unvalidated(structure: Callable[[Any, Any], Any], value: Any, type_: Any) -> Any:
    previously = attrs.validators.get_disabled()  # nested classes come through here too: restore, do not enable
    attrs.validators.set_disabled(True)
    try:
        return structure(value, type_)
    finally:
        attrs.validators.set_disabled(previously)


def _failed_validators(cl: type, instance: Any, fields: Sequence[attrs.Attribute]) -> list[Exception]:
    problems: list[Exception] = []
    for field in fields:
        try:
            field.validator(instance, field, getattr(instance, field.name))
        except (TypeError, ValueError) as exc:
            where = f"Validating {cl.__qualname__} @ attribute {field.name}"
            note = AttributeValidationNote(where, field.name, field.type)
            exc.__notes__ = [*getattr(exc, "__notes__", []), note]
            problems.append(exc)
    return problems


def make_converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    for kind in (int, float, str, bool):
        converter.register_structure_hook(kind, _strict(kind))
    converter.register_structure_hook_func(lambda t: typing.get_origin(t) is Literal, _literal_hook)
    converter.register_structure_hook(Any, lambda value, _type: value)
    converter.register_structure_hook_factory(
        attrs.has, lambda cl: _with_validators(cl, converter.gen_structure_attrs_fromdict(cl))
    )
    return converter


def messages(exc: BaseException, path: str) -> Iterator[str]:
    """Flatten a cattrs error tree into ``$.path: message`` lines."""
    if isinstance(exc, (ClassValidationError, IterableValidationError)):
        with_notes, without = exc.group_exceptions()
        for sub, note in with_notes:
            if isinstance(note, AttributeValidationNote):
                yield from messages(sub, f"{path}.{note.name}")
            elif isinstance(note, IterableValidationNote):
                yield from messages(sub, f"{path}[{note.index!r}]")
            else:
                yield from messages(sub, path)
        for sub in without:
            yield from messages(sub, path)
    elif isinstance(exc, ForbiddenExtraKeysError):
        fields = [f.name for f in attrs.fields(exc.cl)] if attrs.has(exc.cl) else []
        for key in sorted(exc.extra_fields):
            yield f"{path}.{key}: unknown key{did_you_mean(key, fields)}"
    elif isinstance(exc, KeyError):
        yield f"{path}: required key missing"
    else:
        yield problem(path, exc)


_NAMED = re.compile(r"^'(?P<name>\w+)' (?P<rest>must .*)$", re.DOTALL)  # attrs: "'size' must be ..."
_COMPARED = re.compile(r"^must be (?P<op>[<>]=?) (?P<bound>\S+): (?P<value>.*)$", re.DOTALL)  # attrs gt, ge...


def explain(exc: BaseException) -> tuple[str | None, str]:
    """(attribute name or None, clean one-line message) of an error, attrs validators' included.

    attrs raises ``ValueError("'size' must be in [4, 6, 9] (got 5)", Attribute(...), [4, 6, 9], 5)``, whose text is
    that whole tuple, and ``ValueError("'hidden_size' must be > 0: -64")``; these become ``('size', 'must be one of
    4, 6, 9 (got 5)')`` and ``('hidden_size', 'must be > 0 (got -64)')``.
    """
    args = exc.args
    text = args[0] if args and isinstance(args[0], str) else str(exc)
    attribute = args[1] if len(args) == 4 and isinstance(args[1], attrs.Attribute) else None
    name = attribute.name if attribute is not None else None
    named = _NAMED.match(text)
    if named and name in (None, named["name"]):
        name, text = named["name"], named["rest"]
    if attribute is not None and isinstance(exc, ValueError) and text.startswith("must be in "):  # attrs in_()
        text = f"must be one of {', '.join(str(option) for option in args[2])} (got {args[3]!r})"
    elif attribute is not None and isinstance(exc, TypeError):  # attrs instance_of()
        text = f"expected {getattr(args[2], '__name__', args[2])}, got {describe(args[3])}"
    elif compared := _COMPARED.match(text):
        text = f"must be {compared['op']} {compared['bound']} (got {compared['value']})"
    lines = text.strip().splitlines()
    return name, lines[0] if lines else type(exc).__name__


def problem(path: str, exc: BaseException) -> str:
    """``path: message``, the attribute a validator names appended to the path unless it is there already."""
    name, text = explain(exc)
    if name is not None and not path.endswith(f".{name}"):
        path = f"{path}.{name}"
    return f"{path}: {text}"


@functools.cache
def _plain_converter() -> cattrs.Converter:
    return make_converter()


def recipe_to_dict(value: Any) -> Any:
    """Plain YAML-friendly data (tuples become lists) from a recipe or any attrs object."""
    plain = _plain_converter().unstructure(value)

    def fix(item: Any) -> Any:
        if isinstance(item, dict):
            return {key: fix(val) for key, val in item.items()}
        if isinstance(item, (list, tuple)):
            return [fix(val) for val in item]
        return item

    return fix(plain)


def structure(data: Any, cls: type, path: str, converter: cattrs.Converter | None = None) -> tuple[Any, list[str]]:
    """``data`` structured into ``cls`` (with ``converter``, default a strict one) and every problem, each a line."""
    if not isinstance(data, dict):
        return None, [f"{path}: expected a mapping, got {describe(data)}"]
    try:
        return (converter or _plain_converter()).structure(data, cls), []
    except (ClassValidationError, IterableValidationError) as exc:
        return None, list(messages(exc, path))
    except (TypeError, ValueError) as exc:
        return None, [problem(path, exc)]


def structure_options(options_class: type, mapping: Any, path: str = "$.options") -> Any:
    """``mapping`` structured strictly into ``options_class``; :class:`RecipeError` listing every problem."""
    value, problems = structure(mapping if mapping is not None else {}, options_class, path)
    if problems:
        raise RecipeError(problems)
    return value
