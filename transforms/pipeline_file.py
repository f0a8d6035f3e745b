"""The pipeline declaration: a YAML file (see pipelines/catalog.yaml).

    name: catalog
    group: seam-transform-catalog       # consumer group
    inputs: [catalog.public.products]   # consumed by the group (split between workers)
    stages:                             # in order; `use` is a built-in name or module:callable
      - use: decode
      - use: enrich
        with: {categories: catalog.public.categories}
      - use: mypackage.stages:make_stage
        with: {...}                     # passed to the factory as a mapping
    outputs:
      history:     {topic: ..., partitions: 3, retention_ms: -1}
      latest:      {topic: ..., partitions: 3}          # always cleanup.policy=compact
      dead_letter: {topic: ..., partitions: 1, retention_ms: 1209600000}
    processing:
      guarantee: exactly_once           # or at_least_once
      batch_size: 500
      batch_timeout_ms: 200

Unknown keys anywhere are an error naming the key and the closest valid one.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, Literal

from seam.errors import ConfigError
from seam.keys import check_known_keys
from seam.transforms.model import Stage
from seam.transforms.pipeline import Pipeline
from seam.transforms.stages import BUILTIN

Guarantee = Literal["exactly_once", "at_least_once"]
_TOP: Final = ("name", "group", "inputs", "stages", "outputs", "processing")
_STAGE: Final = ("use", "with", "name")
_OUTPUTS: Final = ("history", "latest", "dead_letter")
_OUTPUT: Final = ("topic", "partitions", "replication_factor", "retention_ms", "config")
_PROCESSING: Final = ("guarantee", "batch_size", "batch_timeout_ms")


@dataclass(frozen=True)
class OutputTopic:
    topic: str
    partitions: int | None = None  # None: as many as the first input topic
    replication_factor: int = -1  # the broker's default
    retention_ms: int | None = None
    config: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StageSpec:
    use: str
    options: dict[str, Any]
    name: str | None = None


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    group: str
    inputs: tuple[str, ...]
    stages: tuple[StageSpec, ...]
    history: OutputTopic
    latest: OutputTopic
    dead_letter: OutputTopic
    guarantee: Guarantee = "exactly_once"
    batch_size: int = 500
    batch_timeout_ms: int = 200
    source: str = "<pipeline>"

    @property
    def outputs(self) -> tuple[OutputTopic, OutputTopic, OutputTopic]:
        return self.history, self.latest, self.dead_letter

    def with_suffix(self, suffix: str) -> PipelineSpec:
        """The same pipeline writing to `<topic><suffix>` topics with group `<group><suffix>`
        (a replay into new topics)."""
        return replace(
            self,
            group=self.group + suffix,
            history=replace(self.history, topic=self.history.topic + suffix),
            latest=replace(self.latest, topic=self.latest.topic + suffix),
            dead_letter=replace(self.dead_letter, topic=self.dead_letter.topic + suffix),
        )

    def with_guarantee(self, guarantee: Guarantee) -> PipelineSpec:
        return replace(self, guarantee=guarantee)

    def build(self) -> Pipeline:
        return Pipeline([build_stage(s, self.source) for s in self.stages])


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: expected a non-empty string, got {value!r}")
    return value.strip()


def _int(value: Any, where: str, minimum: int) -> int:
    if type(value) is not int or value < minimum:
        raise ConfigError(f"{where}: expected an integer >= {minimum}, got {value!r}")
    return value


def _output(value: Any, where: str) -> OutputTopic:
    data = _mapping(value, where)
    check_known_keys(data, _OUTPUT, where)
    if "topic" not in data:
        raise ConfigError(f"{where}: missing 'topic'")
    config = _mapping(data.get("config", {}), f"{where}.config")
    return OutputTopic(
        topic=_str(data["topic"], f"{where}.topic"),
        partitions=_int(data["partitions"], f"{where}.partitions", 1)
        if "partitions" in data
        else None,
        replication_factor=_int(
            data.get("replication_factor", -1), f"{where}.replication_factor", -1
        ),
        retention_ms=_int(data["retention_ms"], f"{where}.retention_ms", -1)
        if "retention_ms" in data
        else None,
        config={str(k): str(v) for k, v in config.items()},
    )


def parse_pipeline(data: Any, source: str = "<pipeline>") -> PipelineSpec:
    top = _mapping(data, source)
    check_known_keys(top, _TOP, source)
    for required in ("name", "group", "inputs", "stages", "outputs"):
        if required not in top:
            raise ConfigError(
                f"{source}: missing '{required}'", hint=f"valid keys: {', '.join(_TOP)}"
            )
    inputs = top["inputs"]
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs:
        raise ConfigError(f"{source}: inputs: expected a non-empty list of topics")
    stages_raw = top["stages"]
    if not isinstance(stages_raw, list) or not stages_raw:
        raise ConfigError(f"{source}: stages: expected a non-empty list")
    stages = []
    for i, entry in enumerate(stages_raw):
        where = f"{source}: stages[{i}]"
        if isinstance(entry, str):
            entry = {"use": entry}
        stage = _mapping(entry, where)
        check_known_keys(stage, _STAGE, where)
        if "use" not in stage:
            raise ConfigError(
                f"{where}: missing 'use' (a built-in stage or package.module:callable)"
            )
        options = stage.get("with") or {}
        stages.append(
            StageSpec(
                use=_str(stage["use"], f"{where}.use"),
                options=dict(_mapping(options, f"{where}.with")),
                name=_str(stage["name"], f"{where}.name") if "name" in stage else None,
            )
        )
    outputs = _mapping(top["outputs"], f"{source}: outputs")
    check_known_keys(outputs, _OUTPUTS, f"{source}: outputs")
    for name in _OUTPUTS:
        if name not in outputs:
            raise ConfigError(f"{source}: outputs: missing '{name}'")
    processing = _mapping(top.get("processing", {}), f"{source}: processing")
    check_known_keys(processing, _PROCESSING, f"{source}: processing")
    guarantee = processing.get("guarantee", "exactly_once")
    if guarantee not in ("exactly_once", "at_least_once"):
        raise ConfigError(
            f"{source}: processing.guarantee: expected exactly_once or at_least_once, got {guarantee!r}"
        )
    return PipelineSpec(
        name=_str(top["name"], f"{source}: name"),
        group=_str(top["group"], f"{source}: group"),
        inputs=tuple(_str(t, f"{source}: inputs") for t in inputs),
        stages=tuple(stages),
        history=_output(outputs["history"], f"{source}: outputs.history"),
        latest=_output(outputs["latest"], f"{source}: outputs.latest"),
        dead_letter=_output(outputs["dead_letter"], f"{source}: outputs.dead_letter"),
        guarantee=guarantee,
        batch_size=_int(processing.get("batch_size", 500), f"{source}: processing.batch_size", 1),
        batch_timeout_ms=_int(
            processing.get("batch_timeout_ms", 200), f"{source}: processing.batch_timeout_ms", 1
        ),
        source=source,
    )


def load_pipeline(path: Path | str) -> PipelineSpec:
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read pipeline file {path}: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    return parse_pipeline(data, str(path))


def build_stage(spec: StageSpec, source: str = "<pipeline>") -> Stage:
    """Import and call the stage factory `spec.use` names."""
    target = BUILTIN.get(spec.use, spec.use)
    where = f"{source}: stage {spec.use!r}"
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(
            f"{where}: expected a built-in stage ({', '.join(BUILTIN)}) or package.module:callable"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{where}: cannot import {module_name} ({exc})") from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ConfigError(f"{where}: {module_name} has no callable {attr!r}")
    stage = factory(spec.options)
    if not callable(getattr(stage, "process", None)) or not isinstance(
        getattr(stage, "name", None), str
    ):
        raise ConfigError(
            f"{where}: the factory must return a Stage (a `name` and a `process(item)`)"
        )
    if spec.name:
        stage.name = spec.name
    return stage  # type: ignore[no-any-return]
