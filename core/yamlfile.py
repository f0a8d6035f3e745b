"""YAML from a user's file that remembers where everything is, for file:line:column errors.

Connector specs and pipeline files both read YAML a person wrote; both point their errors at
the line and column at fault and say how to fix it. `load_documents` parses the text into
plain dicts and lists that carry positions (`YamlMap`, `YamlList`); a syntax error or a
duplicate key becomes one `ConfigError` with the position and a `fix:` hint. `Problems`
collects several errors of one file and reports them together, in file order.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from seam.errors import ConfigError
from seam.keys import closest, unknown_keys

MAX_SHOWN: Final = 20  # problems listed in one error; the rest are counted


@dataclass(frozen=True, order=True)
class Mark:
    """A position in a file, 1-based as editors show it."""

    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.line}:{self.column}"


def _mark(node: Any) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


class YamlMap(dict[str, Any]):
    """A mapping that remembers where it starts, and where each key and value is."""

    mark: Mark | None = None
    key_marks: dict[str, Mark]
    value_marks: dict[str, Mark]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.key_marks = {}
        self.value_marks = {}

    @property
    def line(self) -> int | None:
        return self.mark.line if self.mark else None

    @property
    def lines(self) -> dict[str, int]:
        """The line of each key."""
        return {key: mark.line for key, mark in self.key_marks.items()}


class YamlList(list[Any]):
    """A sequence that remembers where it starts, and where each item is."""

    mark: Mark | None = None
    item_marks: list[Mark]

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.item_marks = []


def mark_of(node: Any) -> Mark | None:
    """Where a mapping or list read by `load_documents` starts (None for plain data)."""
    mark = getattr(node, "mark", None)
    return mark if isinstance(mark, Mark) else None


def key_mark(mapping: Any, key: str) -> Mark | None:
    """Where `key` of `mapping` is written, else where the mapping starts (None: unknown)."""
    marks = getattr(mapping, "key_marks", None)
    return (marks or {}).get(key) or mark_of(mapping)


def value_mark(container: Any, key: str | int) -> Mark | None:
    """Where the value under `key` (a mapping key or a list index) is written."""
    if isinstance(key, int):
        marks = getattr(container, "item_marks", None)
        if marks is not None and 0 <= key < len(marks):
            return marks[key]  # type: ignore[no-any-return]
        return mark_of(container)
    marks = getattr(container, "value_marks", None)
    return (marks or {}).get(key) or key_mark(container, key)


def plain(value: Any) -> Any:
    """`value` with plain dicts and lists in place of YamlMap and YamlList (for user code)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def _construct_mapping(loader: Any, node: Any) -> YamlMap:
    result = YamlMap()
    result.mark = _mark(node)
    for key_node, value_node in node.value:
        # A key is the text written: YAML 1.1 would read `on:`, `yes:` or `true:` as True,
        # `null:` as None.
        key = (
            str(key_node.value)
            if key_node.tag in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:null")
            else str(loader.construct_object(key_node, deep=True))
        )
        if key in result:
            where = _mark(key_node)
            raise ConfigError(
                f"{loader.name}:{where}: duplicate key '{key}' "
                f"(first at line {result.key_marks[key].line})",
                hint=f"keep one '{key}' in this mapping",
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_marks[key] = _mark(key_node)
        result.value_marks[key] = _mark(value_node)
    return result


def _construct_sequence(loader: Any, node: Any) -> YamlList:
    result = YamlList(loader.construct_object(child, deep=True) for child in node.value)
    result.mark = _mark(node)
    result.item_marks = [_mark(child) for child in node.value]
    return result


@functools.cache
def _loader_class() -> Any:
    # yaml is imported on first use: commands that read no YAML stay fast.
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)
    return Loader


def read_file(path: Path, what: str, example: str) -> str:
    """The text of a user's YAML file; one ConfigError when it cannot be read or is not
    UTF-8. `what` names the kind of file ('pipeline'), `example` a path of one."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read {what} file {path}: {exc.strerror or exc}",
            hint=f"pass the path of a {what} YAML file, e.g. {example}",
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(
            f"{path}: not a text file (not UTF-8)", hint=f"pass a {what} YAML file"
        ) from None


def load_one_document(path: Path, what: str, example: str, write_hint: str) -> Any:
    """The one YAML document of a user's `what` file (a routes, service, writes... file); one
    ConfigError when it is empty (`write_hint` says what to write) or holds several."""
    source = str(path)
    docs = [d for d in load_documents(read_file(path, what, example), source) if d is not None]
    if len(docs) != 1:
        raise ConfigError(
            f"{source}: " + (f"the {what} file is empty" if not docs else "more than one document"),
            hint=write_hint if not docs else f"keep one {what} per file (remove the '---' line)",
        )
    return docs[0]


def load_documents(text: str, source: str) -> list[Any]:
    """Every YAML document in `text` (an empty document is None). `source` names the file
    in errors: malformed YAML and duplicate keys are a ConfigError at source:line:column."""
    import yaml

    loader = _loader_class()(text)
    loader.name = source
    try:
        docs = []
        while loader.check_data():
            docs.append(loader.get_data())
        return docs
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        context = ""
        if exc.context and exc.context_mark and exc.problem_mark:
            context = f" ({exc.context} started at line {exc.context_mark.line + 1})"
        raise ConfigError(
            f"{source}{where}: malformed YAML: {exc.problem or exc.context}{context}",
            hint="fix the YAML syntax at that line (indentation, quotes, ':' after keys)",
        ) from None
    except yaml.YAMLError as exc:  # e.g. a character YAML does not allow
        raise ConfigError(
            f"{source}: malformed YAML: {exc}", hint="fix the YAML syntax of the file"
        ) from None
    finally:
        loader.dispose()


@dataclass(frozen=True)
class Problem:
    mark: Mark | None
    message: str
    hint: str | None = None


class Problems:
    """The errors found in one file, reported together in file order by `check()`."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.found: list[Problem] = []

    def add(self, mark: Mark | None, message: str, hint: str | None = None) -> None:
        self.found.append(Problem(mark, message, hint))

    def extend(self, problems: Iterable[Problem]) -> None:
        self.found.extend(problems)

    def __bool__(self) -> bool:
        return bool(self.found)

    def where(self, mark: Mark | None) -> str:
        return f"{self.source}:{mark}" if mark else self.source

    def check(self) -> None:
        """Raise one ConfigError listing every problem (none: return).

        One problem reads `file:line:column: what` with its fix as the hint; several are
        listed one after the other, each followed by its own `fix:` line, the last one's
        fix being the hint (the CLI prints it as the closing `fix:` line).
        """
        if not self.found:
            return
        ordered = sorted(self.found, key=lambda p: p.mark or Mark(0, 0))
        shown = ordered[:MAX_SHOWN]
        lines: list[str] = []
        for problem in shown:
            lines.append(f"{self.where(problem.mark)}: {problem.message}")
            if problem.hint:
                lines.append(f"  fix: {problem.hint}")
        hint = None
        if len(ordered) > len(shown):
            lines.append(f"... and {len(ordered) - len(shown)} more problems")
        elif shown[-1].hint:
            lines.pop()  # the CLI prints the hint as the closing `fix:` line
            hint = shown[-1].hint
        raise ConfigError("\n".join(lines), hint=hint)


def kind_of(value: Any) -> str:
    """How an error names a value of the wrong kind."""
    if value is None:
        return "nothing"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)  # quoted when a string: `'500'` is not 500


class Reader:
    """Reads one file's parsed YAML, noting every problem rather than stopping at the first
    (placeholders stand in for what is wrong; `problems.check()` then raises them all)."""

    def __init__(self, source: str) -> None:
        self.problems = Problems(source)

    def add(self, mark: Mark | None, what: str, message: str, hint: str | None = None) -> None:
        self.problems.add(mark, f"{what}: {message}" if what else message, hint)

    def mapping(
        self, value: Any, mark: Mark | None, what: str, hint: str | None = None
    ) -> Mapping[str, Any] | None:
        if isinstance(value, Mapping):
            return value
        self.add(
            mark,
            what,
            f"expected a mapping (key: value lines), got {kind_of(value)}",
            hint=hint or f"write {what} as indented 'key: value' lines, or {{key: value, ...}}",
        )
        return None

    def keys(self, mapping: Mapping[str, Any], valid: tuple[str, ...], what: str) -> set[str]:
        """Note each unknown key; returns the valid keys they were probably meant as."""
        meant = set()
        for key, text in unknown_keys(mapping, valid):
            self.add(
                key_mark(mapping, key),
                what,
                f"unknown key {text}",
                hint=f"valid keys{' of ' + what if what else ''}: {', '.join(valid)}",
            )
            meant.add(closest(key, valid) or "")
        return meant

    def missing(
        self, mapping: Mapping[str, Any], key: str, what: str, hint: str, meant: set[str]
    ) -> bool:
        """Whether `key` is missing; noted unless a misspelt key was meant as it."""
        if mapping.get(key) is not None:
            return False
        if key not in meant:
            self.add(mark_of(mapping), what, f"missing '{key}'", hint=hint)
        return True

    def string(self, parent: Any, key: str | int, what: str) -> str:
        value = parent[key] if isinstance(key, int) else parent.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
        if value is not None or isinstance(key, int):  # a missing key is reported apart
            self.add(
                value_mark(parent, key), what, f"expected a non-empty string, got {kind_of(value)}"
            )
        return ""

    def integer(
        self,
        parent: Mapping[str, Any],
        key: str,
        what: str,
        minimum: int,
        default: int | None,
        hint: str | None = None,
    ) -> int | None:
        if key not in parent:
            return default
        value = parent[key]
        if type(value) is int and value >= minimum:
            return value
        self.add(
            value_mark(parent, key),
            what,
            f"expected a whole number >= {minimum}, got {kind_of(value)}",
            hint=hint or f"write a whole number, without quotes, e.g. {key}: {max(minimum, 1)}",
        )
        return default
