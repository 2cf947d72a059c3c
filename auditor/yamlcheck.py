"""YAML with line numbers, and the field checks that validate it (catalogue and inventory).

`read_yaml` parses with `LineLoader`, a SafeLoader whose mappings and sequences remember the line
each key, value and item starts at, refuses duplicate keys and takes only true/false as booleans.
`check_fields` validates a mapping against a {field: (required, check)} table; every problem is a
`FieldError(line, message)` that the caller turns into its own `file:line` error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import yaml

from auditor.schema import ROLES

MAX_MESSAGE = 300  # characters of a FieldError message
MAX_FILE_BYTES = 8 << 20  # a catalogue or inventory: 8 MB is ~130,000 hosts, and takes ~30 s
MAX_ALIAS_NODES = 100_000  # nodes that aliases may add in all: more is an alias bomb
MAX_DIGITS = 100  # digits of an integer: more is no port, count or address anyone meant


class FieldError(Exception):
    """A value is wrong at a line of the file being read; callers add the file name."""

    def __init__(self, line: int, message: str):
        if len(message) > MAX_MESSAGE:  # a value quoted from a hostile file may be huge
            message = message[: MAX_MESSAGE - 5] + " ...)"
        super().__init__(message)
        self.line = line
        self.message = message


class LineMap(dict):
    """A YAML mapping that remembers where it, its keys and its values start (1-based)."""

    line = 0

    def __init__(self):
        super().__init__()
        self.key_lines: dict = {}
        self.value_lines: dict = {}


class LineList(list):
    """A YAML sequence that remembers where it and each item start (1-based)."""

    line = 0

    def __init__(self):
        super().__init__()
        self.item_lines: list[int] = []


# libyaml's parser when present: the pure-Python one takes ~0.4 s for the bundled catalogue.
_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class LineLoader(_BaseLoader):
    """SafeLoader keeping start lines, refusing duplicate keys, with YAML 1.2 booleans."""


# Only true/false are booleans: `expected: yes` is an error, not a silent True.
LineLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
}
LineLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _construct_map(loader: LineLoader, node: yaml.MappingNode):
    data = LineMap()
    data.line = node.start_mark.line + 1
    yield data
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        try:
            seen = key in data
        except TypeError:
            raise FieldError(line, "a mapping key must be a plain value") from None
        if seen:
            raise FieldError(line, f"duplicate key {key!r} (first at line {data.key_lines[key]})")
        data[key] = loader.construct_object(value_node, deep=True)
        data.key_lines[key] = line
        data.value_lines[key] = value_node.start_mark.line + 1


def _construct_seq(loader: LineLoader, node: yaml.SequenceNode):
    data = LineList()
    data.line = node.start_mark.line + 1
    yield data
    for item in node.value:
        data.append(loader.construct_object(item, deep=True))
        data.item_lines.append(item.start_mark.line + 1)


def _construct_int(loader: LineLoader, node: yaml.ScalarNode):
    if len(node.value) > MAX_DIGITS:  # int() of 5,000 digits raises; of 4,000 it takes time
        raise FieldError(node.start_mark.line + 1,
                         f"a number of {len(node.value)} characters is too long")
    return yaml.constructor.SafeConstructor.construct_yaml_int(loader, node)


LineLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
LineLoader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


def check_size(path: str | Path, error: type[Exception]) -> None:
    """Refuse a configuration file too large to be one (parsing it would take minutes and GBs)."""
    try:
        size = Path(path).stat().st_size
    except OSError:
        return  # reading it says why
    if size > MAX_FILE_BYTES:
        raise error(f"{path}:1: {size / (1 << 20):.0f} MB is more than a configuration file "
                    f"needs (at most {MAX_FILE_BYTES >> 20} MB); use networks (CIDRs) for "
                    "large groups of hosts")


def read_yaml(path: str | Path, error: type[Exception]):
    """Parse one YAML file with LineLoader; problems raise `error("file:line: what")`."""
    check_size(path, error)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise error(f"{path}:{line}: not UTF-8 text (byte offset {exc.start}: "
                    f"0x{exc.object[exc.start]:02x})") from None
    try:
        if "&" in text and "*" in text:  # anchors and aliases: bound what they expand to
            _check_alias_expansion(text)
        return yaml.load(text, Loader=LineLoader)  # noqa: S506 - LineLoader is a SafeLoader
    except FieldError as exc:
        raise error(f"{path}:{exc.line}: {exc.message}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise error(f"{path}:{mark.line + 1}: YAML error: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise error(f"{path}: YAML error: {exc}") from None


def _check_alias_expansion(text: str) -> None:
    """FieldError if the aliases of a document would add more than MAX_ALIAS_NODES nodes.

    PyYAML shares the object an alias names, so building the document is cheap; walking it
    (validation, error messages, building tables) is not: nine levels of nine aliases are 387
    million nodes. The sizes come from the parser's events, before anything is built.
    """
    sizes: dict[str, int] = {}  # anchor -> nodes under it, aliases expanded
    stack: list[list] = []  # [anchor, nodes] of the open collections
    added = 0
    for event in yaml.parse(text, Loader=_BaseLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            stack.append([event.anchor, 1])
            continue
        if isinstance(event, yaml.CollectionEndEvent):
            anchor, n = stack.pop()
        elif isinstance(event, yaml.ScalarEvent):
            anchor, n = event.anchor, 1
        elif isinstance(event, yaml.AliasEvent):
            anchor, n = None, sizes.get(event.anchor, 1)
            added += n
            if added > MAX_ALIAS_NODES:
                raise FieldError(event.start_mark.line + 1,
                                 f"YAML aliases expand to more than {MAX_ALIAS_NODES:,} nodes "
                                 "(an alias bomb?)")
        else:
            continue
        if anchor is not None:
            sizes[anchor] = n
        if stack:
            stack[-1][1] += n


Check = Callable[[str, object, int], object]


def check_fields(mapping: object, schema: Mapping[str, tuple[bool, Check]], what: str,
                 line: int) -> dict:
    """Validate a mapping against {field: (required, check)}; return the checked values."""
    if not isinstance(mapping, LineMap):
        raise FieldError(getattr(mapping, "line", line), f"{what} must be a mapping")
    for key in mapping:
        if key not in schema:
            raise FieldError(mapping.key_lines[key],
                             f"unknown field {key!r} (allowed: {', '.join(schema)})")
    out = {}
    for key, (required, check) in schema.items():
        if key in mapping:
            out[key] = check(key, mapping[key], mapping.value_lines[key])
        elif required:
            raise FieldError(mapping.line, f"missing field {key!r}")
    return out


def check_text(field: str, value: object, line: int) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value.strip():
        raise FieldError(line, f"{field} must be non-empty text, not {value!r}")
    return value.strip()


def check_roles(field: str, value: object, line: int) -> tuple[str, ...]:
    """A role name or a non-empty list of role names from schema.ROLES."""
    items, lines = (value, value.item_lines) if isinstance(value, LineList) else ([value], [line])
    if not items:
        raise FieldError(line, f"{field} must name at least one role")
    for item, item_line in zip(items, lines, strict=True):
        if item not in ROLES:
            raise FieldError(item_line, f"unknown role {item!r} in {field} "
                                        f"(roles: {', '.join(ROLES)})")
    return tuple(dict.fromkeys(items))


def choice(allowed: Sequence[str]) -> Check:
    """A check that the value is one of `allowed`."""

    def check(field: str, value: object, line: int) -> str:
        if value not in allowed:
            raise FieldError(line, f"{field} must be one of {', '.join(allowed)}, not {value!r}")
        return value

    return check


def pattern(rx: re.Pattern, hint: str) -> Check:
    """A check that the value is a string matching `rx` (`hint` says how, in errors)."""

    def check(field: str, value: object, line: int) -> str:
        if not isinstance(value, str) or not rx.fullmatch(value):
            raise FieldError(line, f"{field} must be {hint}, not {value!r}")
        return value

    return check


def check_bool(field: str, value: object, line: int) -> bool:
    """true or false (YAML 1.2 booleans only)."""
    if not isinstance(value, bool):
        raise FieldError(line, f"{field} must be true or false, not {value!r}")
    return value
