"""The service file: what a memory-image service serves, beyond what its pipeline declares.

    pipeline: ../pipelines/orders.yaml  # the declared pipeline (relative to this file): the
                                        # entity, its key and state fields, its latest topic,
                                        # and the transform group read-your-writes follows
    indexes: [order_no]                 # GET /<entity>/by/<field>/<value>: exact, from a dict
    filters: [status, customer.id]      # GET /<entity>?status=open: equality (dotted: nested)
    search: [title, notes]              # GET /<entity>/search?q=: every word, in any of them
    page_size: 50                       # default page; max_page_size caps `limit`
    max_page_size: 1000
    host: 127.0.0.1
    port: 8780
    snapshot:
      path: ~/.local/state/seam/services/orders.snapshot   # default: under the user's state dir
      interval_s: 60                    # also written on a clean stop; 0: only then
    read_your_writes:
      wait_ms: 2000                     # how long `after=` waits by default
      max_wait_ms: 30000                # the most a request's `wait_ms` may ask
    writes: ../migration/orders-writes.yaml  # commands: writes moved to this service
                                        # (seam.migration.writes; same pipeline)
    history:                            # /<entity>/history/...: timeline, as-of, why, from an
                                        # (or `history: true`)
      index: ~/orders-history.sqlite    # index of the pipeline's history topic (default: the
                                        # one `seam history` keeps for that cluster and topic)

Fields named anywhere must be state fields of the entity (a dotted path starts with one).
Every problem is reported at once at file:line:column; an unknown key or field names the
closest valid one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from seam.errors import ConfigError
from seam.keys import closest
from seam.migration.writes import WritesSpec, load_writes
from seam.transforms.pipeline_file import PipelineSpec, load_pipeline
from seam.yamlfile import Reader, key_mark, kind_of, load_one_document, mark_of, value_mark

_TOP: Final = (
    "pipeline",
    "indexes",
    "filters",
    "search",
    "page_size",
    "max_page_size",
    "host",
    "port",
    "snapshot",
    "read_your_writes",
    "history",
    "writes",
)
_SNAPSHOT: Final = ("path", "interval_s")
_RYW: Final = ("wait_ms", "max_wait_ms")
_HISTORY: Final = ("index",)
_RESERVED: Final = ("ready", "health", "metrics", "docs", "openapi.json", "redoc")
_WRITE: Final = (
    "write at least 'pipeline: <declared pipeline file>'; see seam.services.service_file "
    "or legacy_db/services/ for a whole service file"
)


@dataclass(frozen=True)
class ServiceSpec:
    pipeline: PipelineSpec
    entity: str
    key: tuple[str, ...]
    fields: tuple[str, ...]
    topic: str  # the latest (compacted) topic
    indexes: tuple[str, ...] = ()
    filters: tuple[str, ...] = ()
    search: tuple[str, ...] = ()
    page_size: int = 50
    max_page_size: int = 1000
    host: str = "127.0.0.1"
    port: int = 8780
    snapshot_path: Path = Path("image.snapshot")
    snapshot_interval_s: int = 60
    wait_ms: int = 2000
    max_wait_ms: int = 30000
    history: bool = False  # serve the history queries of the pipeline's history topic
    history_index: Path | None = None  # None: `seam.services.history_index.default_index`
    writes: WritesSpec | None = None  # the commands it takes (`writes:`)
    source: str = "<service>"


def default_snapshot_path(entity: str, topic: str) -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "seam" / "services" / f"{entity}-{topic}.snapshot"


def load_service(path: Path | str) -> ServiceSpec:
    """Read and check a service file and the pipeline it names (one ConfigError listing
    every problem of the service file, in file order)."""
    path = Path(path)
    data = load_one_document(path, "service", "services/orders.yaml", _WRITE)
    return parse_service(data, str(path), folder=path.resolve().parent)


def parse_service(data: Any, source: str, *, folder: Path) -> ServiceSpec:
    reader = Reader(source)
    top = reader.mapping(data, mark_of(data), "the service file", _WRITE)
    if top is None:
        reader.problems.check()
        raise AssertionError("unreachable")  # pragma: no cover
    meant = reader.keys(top, _TOP, "")
    if reader.missing(top, "pipeline", "", _WRITE, meant):
        reader.problems.check()
    name = reader.string(top, "pipeline", "pipeline")
    reader.problems.check()  # the rest is checked against the pipeline's entity
    pipeline_path = Path(name).expanduser()
    if not pipeline_path.is_absolute():
        pipeline_path = folder / pipeline_path
    pipeline = _pipeline(pipeline_path, source, top)
    declaration = pipeline.declaration
    assert declaration is not None
    entity = declaration.entity
    if entity.name in _RESERVED:
        reader.add(
            value_mark(top, "pipeline"),
            "pipeline",
            f"the entity '{entity.name}' would hide the service's /{entity.name} endpoint",
            hint="rename the entity in the pipeline's declaration",
        )
    fields = {
        name: _fields(reader, top, name, entity.state) for name in ("indexes", "filters", "search")
    }
    ints = {
        key: reader.integer(top, key, key, minimum, default)
        for key, minimum, default in (
            ("page_size", 1, 50),
            ("max_page_size", 1, 1000),
            ("port", 0, 8780),
        )
    }
    host = reader.string(top, "host", "host") if "host" in top else "127.0.0.1"
    snapshot = _section(reader, top, "snapshot", _SNAPSHOT)
    path_text = reader.string(snapshot, "path", "snapshot.path") if "path" in snapshot else ""
    snapshot_path = (
        _path(path_text, folder)
        if path_text
        else default_snapshot_path(entity.name, pipeline.latest.topic)
    )
    interval = reader.integer(snapshot, "interval_s", "snapshot.interval_s", 0, 60)
    ryw = _section(reader, top, "read_your_writes", _RYW)
    wait_ms = reader.integer(ryw, "wait_ms", "read_your_writes.wait_ms", 0, 2000)
    max_wait = reader.integer(ryw, "max_wait_ms", "read_your_writes.max_wait_ms", 0, 30000)
    # `history: true` (or an empty section) serves it with the default index
    wants_history = "history" in top and top["history"] is not False
    history = (
        {}
        if top.get("history") in (None, True, False)
        else _section(reader, top, "history", _HISTORY)
    )
    index_text = reader.string(history, "index", "history.index") if "index" in history else ""
    writes_text = reader.string(top, "writes", "writes") if "writes" in top else ""
    reader.problems.check()
    writes = _writes(_path(writes_text, folder), source, top, pipeline) if writes_text else None
    return ServiceSpec(
        pipeline=pipeline,
        entity=entity.name,
        key=entity.key,
        fields=entity.state,
        topic=pipeline.latest.topic,
        indexes=fields["indexes"],
        filters=fields["filters"],
        search=fields["search"],
        page_size=ints["page_size"] or 50,
        max_page_size=max(ints["max_page_size"] or 1000, ints["page_size"] or 50),
        host=host or "127.0.0.1",
        port=8780 if ints["port"] is None else ints["port"],
        snapshot_path=snapshot_path,
        snapshot_interval_s=60 if interval is None else interval,
        wait_ms=2000 if wait_ms is None else wait_ms,
        max_wait_ms=max(30000 if max_wait is None else max_wait, wait_ms or 0),
        history=wants_history,
        history_index=_path(index_text, folder) if index_text else None,
        writes=writes,
        source=source,
    )


def _path(text: str, folder: Path) -> Path:
    """A path of the service file: relative ones are relative to the file's folder."""
    path = Path(text).expanduser()
    return path if path.is_absolute() else folder / path


def _pipeline(path: Path, source: str, top: Mapping[str, Any]) -> PipelineSpec:
    where = f"{source}:{value_mark(top, 'pipeline') or mark_of(top) or ''}".rstrip(":")
    try:
        pipeline = load_pipeline(path)
    except ConfigError as exc:
        raise ConfigError(f"{where}: pipeline {path}: {exc.message}", hint=exc.hint) from None
    if pipeline.declaration is None:
        raise ConfigError(
            f"{where}: pipeline {path} declares no entity",
            hint="name a declared pipeline (with tables, entity and events): the service takes "
            "the entity's key and state fields from it",
        )
    return pipeline


def _writes(path: Path, source: str, top: Mapping[str, Any], pipeline: PipelineSpec) -> WritesSpec:
    where = f"{source}:{value_mark(top, 'writes') or mark_of(top) or ''}".rstrip(":")
    try:
        writes = load_writes(path)
    except ConfigError as exc:
        raise ConfigError(f"{where}: writes {path}: {exc.message}", hint=exc.hint) from None
    theirs = writes.pipeline
    if (theirs.history.topic, theirs.latest.topic) != (
        pipeline.history.topic,
        pipeline.latest.topic,
    ):
        raise ConfigError(
            f"{where}: writes {path} names another pipeline ({theirs.source}, history "
            f"{theirs.history.topic}) than the service ({pipeline.source}, history "
            f"{pipeline.history.topic})",
            hint="a service takes the commands of its own entity: name the same pipeline file "
            "in both",
        )
    return writes


def _section(
    reader: Reader, top: Mapping[str, Any], name: str, valid: tuple[str, ...]
) -> Mapping[str, Any]:
    if name not in top:
        return {}
    found = reader.mapping(top[name], value_mark(top, name), name)
    if found is None:
        return {}
    reader.keys(found, valid, name)
    return found


def _fields(
    reader: Reader, top: Mapping[str, Any], name: str, state: tuple[str, ...]
) -> tuple[str, ...]:
    raw = top.get(name)
    if raw is None:
        return ()
    if isinstance(raw, str):
        raw_list: list[Any] = [raw]
        marks = [value_mark(top, name)]
    elif isinstance(raw, list):
        raw_list = list(raw)
        marks = [value_mark(raw, i) or value_mark(top, name) for i in range(len(raw))]
    else:
        reader.add(
            value_mark(top, name),
            name,
            f"expected a list of state fields, got {kind_of(raw)}",
            hint=f"write '{name}: [<field>, ...]'",
        )
        return ()
    out: list[str] = []
    for item, mark in zip(raw_list, marks, strict=True):
        if not isinstance(item, str) or not item.strip():
            reader.add(mark, name, f"expected a field name, got {kind_of(item)}")
            continue
        head = item.split(".", 1)[0]
        if head not in state:
            guess = closest(head, state)
            reader.add(
                mark,
                name,
                f"'{item}' is not a state field of the entity"
                + (f" (did you mean '{guess}'?)" if guess else ""),
                hint=f"state fields: {', '.join(state)} (a dotted path reaches inside one)",
            )
            continue
        out.append(item.strip())
    return tuple(out)


__all__ = ["ServiceSpec", "default_snapshot_path", "key_mark", "load_service", "parse_service"]
