"""What the dashboard shows: a small dashboard file and/or the command's flags.

    # dashboard.yaml (paths are relative to this file)
    pipelines:                      # transform pipelines: their group, topics, dead letters
      - file: pipelines/orders.yaml
        metrics: http://127.0.0.1:9464/metrics   # a worker's --metrics-port: exact counts
    services:                       # `seam serve` memory images: their /health
      - http://127.0.0.1:8080
    slots: [postgres]               # databases (settings names or URLs) whose slots are shown
    connectors: [orders-postgres]   # default: every connector on the cluster
    facade: http://127.0.0.1:8700   # a running facade (default: the status it recorded)
    parity:                         # what "run parity" compares (with --allow-actions)
      database: postgres
      service: http://127.0.0.1:8080

The migration directory is `--state` as for `seam migrate`. A flag adds to the file
(`--pipeline`, `--service`, `--slots`) or replaces it (`--facade`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from seam.yamlfile import Reader, kind_of, load_documents, read_file, value_mark

_TOP: Final = ("pipelines", "services", "slots", "connectors", "facade", "parity")
_PIPELINE: Final = ("file", "metrics")
_PARITY: Final = ("database", "service")
_EXAMPLE: Final = "legacy_db/dashboard.yaml"


@dataclass(frozen=True)
class PipelineEntry:
    file: Path
    metrics: str | None = None


@dataclass(frozen=True)
class DashboardConfig:
    pipelines: tuple[PipelineEntry, ...] = ()
    services: tuple[str, ...] = ()
    slots: tuple[str, ...] = ()
    connectors: tuple[str, ...] = ()  # empty: all
    facade: str | None = None
    parity: Mapping[str, str] = field(default_factory=dict)

    def extended(
        self,
        *,
        pipelines: list[Path],
        services: list[str],
        slots: list[str],
        facade: str | None,
    ) -> DashboardConfig:
        """This configuration with the command's flags added."""
        return DashboardConfig(
            pipelines=self.pipelines + tuple(PipelineEntry(p) for p in pipelines),
            services=self.services + tuple(services),
            slots=self.slots + tuple(s for s in slots if s not in self.slots),
            connectors=self.connectors,
            facade=facade or self.facade,
            parity=self.parity,
        )


def _strings(reader: Reader, parent: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = parent.get(key)
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        reader.add(
            value_mark(parent, key),
            key,
            f"expected a list, got {kind_of(value)}",
            hint=f"write {key}: [a, b]",
        )
        return ()
    return tuple(reader.string(value, i, f"{key}[{i}]") for i in range(len(value)))


def load_dashboard(path: Path) -> DashboardConfig:
    """Read a dashboard file; every problem is reported at once at file:line:column."""
    source = str(path)
    docs = load_documents(read_file(path, "dashboard", _EXAMPLE), source)
    reader = Reader(source)
    top = reader.mapping(docs[0] if docs else None, None, "", hint="see " + _EXAMPLE)
    if top is None:
        reader.problems.check()
        return DashboardConfig()
    reader.keys(top, _TOP, "")
    base = path.parent
    pipelines = []
    raw = top.get("pipelines") or []
    if not isinstance(raw, list):
        reader.add(
            value_mark(top, "pipelines"),
            "pipelines",
            f"expected a list, got {kind_of(raw)}",
            hint="write pipelines: [{file: PIPELINE.yaml}]",
        )
        raw = []
    for i, item in enumerate(raw):
        what = f"pipelines[{i}]"
        if isinstance(item, str):
            item = {"file": item}
        entry = reader.mapping(item, value_mark(raw, i), what)
        if entry is None:
            continue
        meant = reader.keys(entry, _PIPELINE, what)
        if reader.missing(entry, "file", what, "add file: PIPELINE.yaml", meant):
            continue
        file = reader.string(entry, "file", f"{what}.file")
        metrics = reader.string(entry, "metrics", f"{what}.metrics") if "metrics" in entry else ""
        pipelines.append(PipelineEntry((base / file).resolve(), metrics or None))
    parity: dict[str, str] = {}
    if top.get("parity") is not None:
        given = reader.mapping(top["parity"], value_mark(top, "parity"), "parity")
        if given is not None:
            reader.keys(given, _PARITY, "parity")
            parity = {k: reader.string(given, k, f"parity.{k}") for k in _PARITY if k in given}
    facade = reader.string(top, "facade", "facade") if "facade" in top else ""
    config = DashboardConfig(
        pipelines=tuple(pipelines),
        services=_strings(reader, top, "services"),
        slots=_strings(reader, top, "slots"),
        connectors=_strings(reader, top, "connectors"),
        facade=facade or None,
        parity=parity,
    )
    reader.problems.check()
    return config
