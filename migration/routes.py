"""The routes file: which requests the facade sends to the legacy app, which to a new side.

    legacy:
      url: http://127.0.0.1:8000          # the legacy application
      database: legacy                     # optional: a [databases] name or URL, read for
                                           # the log position a shadowed answer reflects
    new:                                   # the new sides, by name
      orders: http://127.0.0.1:8780        # e.g. a `seam serve` memory image
    capabilities:
      order-details:
        entity: order                      # what `seam migrate status` shows parity for
        requests: ["GET /orders/{id}"]     # METHOD /path, {name} matches one path segment
        mode: shadow                       # legacy | new | split 10% | shadow
        side: orders                       # default: the only new side
        rewrite: /order/{id}               # the path on the new side (default: unchanged)
        fallback: legacy                   # `new` mode, new side down: answer from legacy
        cohort: header:X-User-Id           # split: header:, cookie:, query: or path: NAME
        forward_only: true                 # split: a cohort once moved stays moved
        shadow:
          wait_ms: 2000                    # how long the new side may take to catch up
          compare: {...}                   # see seam.migration.compare

Requests no capability matches go to legacy. Every problem is reported at once at
file:line:column with its fix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from seam.migration.compare import CompareRules, parse_rules
from seam.yamlfile import Reader, load_one_document, mark_of, value_mark

MODES: Final = ("legacy", "new", "split", "shadow")
COHORT_KINDS: Final = ("header", "cookie", "query", "path")
METHODS: Final = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_TOP: Final = ("legacy", "new", "capabilities")
_LEGACY: Final = ("url", "database", "timeout_s")
_CAPABILITY: Final = (
    "entity",
    "requests",
    "mode",
    "side",
    "rewrite",
    "fallback",
    "cohort",
    "forward_only",
    "shadow",
)
_SHADOW: Final = ("wait_ms", "compare")
_MODE_HINT: Final = "write mode: legacy, mode: new, mode: shadow or mode: split 10%"
_WRITE: Final = (
    "write 'legacy: {url: http://...}', 'new: {NAME: http://...}' and "
    "'capabilities: {NAME: {requests: [\"GET /path/{id}\"], mode: legacy}}'; "
    "see seam.migration.routes"
)
_SPLIT: Final = re.compile(r"\Asplit\s+([0-9]+(?:\.[0-9]+)?)\s*%\Z")
_PARAM: Final = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Mode:
    """How a capability is served: `percent` counts only for `split` (0..100)."""

    kind: str  # legacy | new | split | shadow
    percent: float = 0.0

    def __str__(self) -> str:
        return f"split {self.percent:g}%" if self.kind == "split" else self.kind


def parse_mode(text: str) -> Mode | None:
    """`legacy`, `new`, `shadow`, `split N%` (None: not a mode)."""
    text = text.strip().lower()
    if text in ("legacy", "new", "shadow"):
        return Mode(text)
    found = _SPLIT.match(text)
    if found and float(found.group(1)) <= 100:
        return Mode("split", float(found.group(1)))
    return None


@dataclass(frozen=True)
class Pattern:
    """`METHOD /path/{name}`: a method and a path whose {name} parts match one segment."""

    method: str
    path: str
    regex: re.Pattern[str]
    params: tuple[str, ...]

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if method != self.method and not (self.method == "GET" and method == "HEAD"):
            return None
        found = self.regex.match(path)
        return None if found is None else found.groupdict()


def compile_pattern(method: str, path: str) -> Pattern:
    parts = _PARAM.split(path)
    regex = "".join(
        re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/]+)" for i, part in enumerate(parts)
    )
    return Pattern(method, path, re.compile(f"\\A{regex}/?\\Z"), tuple(parts[1::2]))


@dataclass(frozen=True)
class Cohort:
    """Where a request's cohort key is read: a header, cookie, query or path parameter."""

    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"


@dataclass(frozen=True)
class Capability:
    name: str
    patterns: tuple[Pattern, ...]
    mode: Mode
    side: str | None = None  # the new side's name
    entity: str | None = None
    rewrite: str | None = None
    fallback_legacy: bool = False
    cohort: Cohort | None = None
    forward_only: bool = False
    shadow_wait_ms: int = 2000
    compare: CompareRules = field(default_factory=CompareRules)

    def new_path(self, path: str, params: Mapping[str, str]) -> str:
        """The path the new side is asked for (`path` as received, when not rewritten)."""
        if self.rewrite is None:
            return path
        # the parameters were matched in the decoded path: quoted again for the new one
        return _PARAM.sub(
            lambda m: quote(params[m.group(1)], safe="") if m.group(1) in params else m.group(0),
            self.rewrite,
        )


@dataclass(frozen=True)
class Routes:
    legacy_url: str
    new: Mapping[str, str]
    capabilities: tuple[Capability, ...]
    legacy_database: str | None = None
    legacy_timeout_s: float = 30.0
    source: str = "<routes>"

    def capability(self, name: str) -> Capability | None:
        return next((c for c in self.capabilities if c.name == name), None)


def load_routes(path: Path | str) -> Routes:
    """Read and check a routes file (one ConfigError listing every problem, in file order)."""
    path = Path(path)
    data = load_one_document(path, "routes", "migration/routes.yaml", _WRITE)
    return parse_routes(data, str(path))


def _url(reader: Reader, parent: Any, key: str, what: str) -> str:
    url = reader.string(parent, key, what)
    if url and not re.match(r"\Ahttps?://[^/\s]+", url):
        reader.add(
            value_mark(parent, key),
            what,
            f"expected an http:// or https:// URL, got {url!r}",
            hint="write the upstream's base URL, e.g. http://127.0.0.1:8000",
        )
    return url.rstrip("/")


def parse_routes(data: Any, source: str) -> Routes:
    reader = Reader(source)
    top = reader.mapping(data, mark_of(data), "the routes file", _WRITE)
    if top is None:
        reader.problems.check()
        raise AssertionError("unreachable")  # pragma: no cover
    meant = reader.keys(top, _TOP, "")
    legacy_url, database, timeout_s = "", None, 30.0
    if not reader.missing(top, "legacy", "", "write 'legacy: {url: http://...}'", meant):
        legacy = reader.mapping(top["legacy"], value_mark(top, "legacy"), "legacy")
        if legacy is not None:
            legacy_meant = reader.keys(legacy, _LEGACY, "legacy")
            if not reader.missing(
                legacy, "url", "legacy", "write the legacy app's URL: url: http://...", legacy_meant
            ):
                legacy_url = _url(reader, legacy, "url", "legacy.url")
            if "database" in legacy:
                database = reader.string(legacy, "database", "legacy.database") or None
            timeout_s = float(reader.integer(legacy, "timeout_s", "legacy.timeout_s", 1, 30) or 30)
    new: dict[str, str] = {}
    if "new" in top:
        sides = reader.mapping(top["new"], value_mark(top, "new"), "new")
        for name in sides or {}:
            new[name] = _url(reader, sides, name, f"new.{name}")
    capabilities: list[Capability] = []
    if not reader.missing(top, "capabilities", "", _WRITE, meant):
        caps = reader.mapping(top["capabilities"], value_mark(top, "capabilities"), "capabilities")
        for name, body in (caps or {}).items():
            capability = _capability(reader, caps, name, body, new)
            if capability is not None:
                capabilities.append(capability)
    reader.problems.check()
    return Routes(
        legacy_url=legacy_url,
        new=new,
        capabilities=tuple(capabilities),
        legacy_database=database,
        legacy_timeout_s=timeout_s,
        source=source,
    )


def _capability(
    reader: Reader, caps: Any, name: str, body: Any, new: Mapping[str, str]
) -> Capability | None:
    what = f"capabilities.{name}"
    cap = reader.mapping(body, value_mark(caps, name), what)
    if cap is None:
        return None
    meant = reader.keys(cap, _CAPABILITY, what)
    patterns = _patterns(reader, cap, what, meant)
    mode = Mode("legacy")
    if "mode" in cap:
        text = cap["mode"]
        parsed = parse_mode(text) if isinstance(text, str) else None
        if parsed is None:
            reader.add(
                value_mark(cap, "mode"),
                f"{what}.mode",
                f"expected legacy, new, shadow or split N% (N from 0 to 100), got {text!r}",
                hint=_MODE_HINT,
            )
        else:
            mode = parsed
    side: str | None = reader.string(cap, "side", f"{what}.side") if "side" in cap else None
    if side and side not in new:
        reader.add(
            value_mark(cap, "side"),
            f"{what}.side",
            f"no new side named '{side}' (declared: {', '.join(sorted(new)) or 'none'})",
            hint="name one of the sides under 'new:', or declare it there",
        )
    if not side and len(new) == 1:
        side = next(iter(new))
    if not side and mode.kind != "legacy":
        reader.add(
            value_mark(cap, "mode"),
            what,
            f"mode {mode} needs a new side, and "
            + ("none is declared" if not new else "there are several: say which"),
            hint="declare it under 'new: {NAME: http://...}' and name it with 'side: NAME'",
        )
    rewrite = reader.string(cap, "rewrite", f"{what}.rewrite") if "rewrite" in cap else None
    if rewrite and patterns:
        known = set(patterns[0].params)
        for param in _PARAM.findall(rewrite):
            if not all(param in p.params for p in patterns):
                reader.add(
                    value_mark(cap, "rewrite"),
                    f"{what}.rewrite",
                    f"{{{param}}} is not a parameter of every request pattern "
                    f"(the first has {', '.join(sorted(known)) or 'none'})",
                    hint="use only {name} parts that every pattern of 'requests' has",
                )
    if rewrite and not rewrite.startswith("/"):
        reader.add(
            value_mark(cap, "rewrite"),
            f"{what}.rewrite",
            f"expected a path starting with '/', got {rewrite!r}",
            hint="e.g. rewrite: /order/{id}",
        )
    fallback = False
    if "fallback" in cap:
        if cap["fallback"] == "legacy":
            fallback = True
        elif cap["fallback"] not in (None, "none"):
            reader.add(
                value_mark(cap, "fallback"),
                f"{what}.fallback",
                f"expected 'legacy' or 'none', got {cap['fallback']!r}",
                hint="write fallback: legacy (answer from legacy when the new side is down)",
            )
    cohort = _cohort(reader, cap, what, patterns) if "cohort" in cap else None
    if mode.kind == "split" and cohort is None:
        reader.add(
            value_mark(cap, "mode"),
            what,
            "split needs a cohort key, so the same caller always lands on the same side",
            hint="add e.g. cohort: header:X-User-Id (or cookie:, query:, path: NAME)",
        )
    forward_only = False
    if "forward_only" in cap:
        if isinstance(cap["forward_only"], bool):
            forward_only = cap["forward_only"]
        else:
            reader.add(
                value_mark(cap, "forward_only"),
                f"{what}.forward_only",
                f"expected true or false, got {cap['forward_only']!r}",
                hint="write forward_only: true",
            )
    wait_ms, rules = 2000, CompareRules()
    if "shadow" in cap:
        shadow = reader.mapping(cap["shadow"], value_mark(cap, "shadow"), f"{what}.shadow")
        if shadow is not None:
            reader.keys(shadow, _SHADOW, f"{what}.shadow")
            wait_ms = reader.integer(shadow, "wait_ms", f"{what}.shadow.wait_ms", 0, 2000) or 0
            if "compare" in shadow:
                rules = parse_rules(reader, shadow, "compare", f"{what}.shadow.compare")
    entity = reader.string(cap, "entity", f"{what}.entity") if "entity" in cap else None
    return Capability(
        name=name,
        patterns=tuple(patterns),
        mode=mode,
        side=side or None,
        entity=entity or None,
        rewrite=rewrite or None,
        fallback_legacy=fallback,
        cohort=cohort,
        forward_only=forward_only,
        shadow_wait_ms=wait_ms,
        compare=rules,
    )


def _patterns(reader: Reader, cap: Any, what: str, meant: set[str]) -> list[Pattern]:
    hint = 'write requests: ["GET /things/{id}", "GET /things"]'
    if reader.missing(cap, "requests", what, hint, meant):
        return []
    raw = cap["requests"]
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items:
        reader.add(
            value_mark(cap, "requests"),
            f"{what}.requests",
            "expected a list of 'METHOD /path' strings",
            hint=hint,
        )
        return []
    patterns = []
    for i, item in enumerate(items):
        mark = value_mark(items, i) if items is raw else value_mark(cap, "requests")
        method, _, path = item.strip().partition(" ") if isinstance(item, str) else ("", "", "")
        path = path.strip()
        if method.upper() not in METHODS or not path.startswith("/"):
            reader.add(
                mark,
                f"{what}.requests",
                f"expected 'METHOD /path' (METHOD one of {', '.join(METHODS)}), got {item!r}",
                hint=hint,
            )
            continue
        patterns.append(compile_pattern(method.upper(), path))
    return patterns


def _cohort(reader: Reader, cap: Any, what: str, patterns: list[Pattern]) -> Cohort | None:
    text = cap["cohort"]
    kind, _, name = text.partition(":") if isinstance(text, str) else ("", "", "")
    kind, name = kind.strip().lower(), name.strip()
    if kind not in COHORT_KINDS or not name:
        reader.add(
            value_mark(cap, "cohort"),
            f"{what}.cohort",
            f"expected KIND:NAME with KIND one of {', '.join(COHORT_KINDS)}, got {text!r}",
            hint="e.g. cohort: header:X-User-Id, cookie:session, query:user or path:id",
        )
        return None
    if kind == "path" and not all(name in p.params for p in patterns):
        reader.add(
            value_mark(cap, "cohort"),
            f"{what}.cohort",
            f"path parameter '{name}' is not in every request pattern",
            hint="name a {parameter} of the patterns under 'requests'",
        )
        return None
    return Cohort(kind, name.lower() if kind == "header" else name)


__all__ = [
    "Capability",
    "Cohort",
    "Mode",
    "Pattern",
    "Routes",
    "compile_pattern",
    "load_routes",
    "parse_mode",
    "parse_routes",
]
