"""Output topics of a pipeline: create the missing ones, delete them for a replay."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final

from seam.errors import SeamError
from seam.streams.kafka import Kafka
from seam.text import plural
from seam.transforms.pipeline_file import OutputTopic, PipelineSpec


class TopicSetupError(SeamError):
    """An output topic could not be created or deleted."""


_LEDGER: Final = {"cleanup.policy": "delete", "retention.ms": str(7 * 24 * 3600 * 1000)}


@dataclass(frozen=True)
class TopicAction:
    topic: str
    action: str  # created | exists | deleted | absent
    detail: str = ""


def _config(out: OutputTopic, compact: bool) -> dict[str, str]:
    config = {"cleanup.policy": "compact" if compact else "delete"}
    if out.retention_ms is not None:
        config["retention.ms"] = str(out.retention_ms)
    config.update(out.config)
    if compact:
        config["cleanup.policy"] = "compact"  # the latest topic is compacted, whatever it says
    return config


def ensure_outputs(kafka: Kafka, spec: PipelineSpec, default_partitions: int) -> list[TopicAction]:
    """Create the history, latest (compacted) and dead-letter topics that do not exist, and
    the own-writes ledger the pipeline declares."""
    from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

    existing = kafka.topic_names()
    wanted = [
        (spec.history, False),
        (spec.latest, True),
        (spec.dead_letter, False),
    ]
    actions: list[TopicAction] = []
    new: list[NewTopic] = []
    ledger = spec.own_writes.ledger if spec.own_writes is not None else None
    if ledger is not None and ledger not in existing:
        # The own-writes ledger (seam.transforms.own_writes): one partition keeps the
        # writer's entries in order; a week's retention bounds what a worker reads at start.
        new.append(NewTopic(ledger, num_partitions=1, replication_factor=-1, config=_LEDGER))
        actions.append(TopicAction(ledger, "created", "1 partition"))
    for out, compact in wanted:
        if out.topic in existing:
            actions.append(TopicAction(out.topic, "exists"))
            continue
        partitions = out.partitions or default_partitions
        new.append(
            NewTopic(
                out.topic,
                num_partitions=partitions,
                replication_factor=out.replication_factor,
                config=_config(out, compact),
            )
        )
        actions.append(TopicAction(out.topic, "created", plural(partitions, "partition")))
    if new:
        futures = kafka.call(
            "creating topics", kafka.admin.create_topics, new, request_timeout=kafka.timeout
        )
        for name, future in futures.items():
            try:
                future.result(timeout=kafka.timeout + 5)
            except Exception as exc:
                error = exc.args[0] if exc.args else exc
                if getattr(error, "name", lambda: "")() == "TOPIC_ALREADY_EXISTS":
                    continue  # another worker of the group made it first
                detail = error.str() if hasattr(error, "str") else str(exc)
                raise TopicSetupError(
                    f"cannot create output topic '{name}': {detail}",
                    hint="create it yourself or grant this client CREATE on the cluster",
                ) from None
        _wait_visible(kafka, [t.topic for t in new])
    return actions


def _wait_visible(kafka: Kafka, names: list[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        existing = kafka.topic_names()
        if all(n in existing for n in names):
            return
        time.sleep(0.2)


def delete_outputs(kafka: Kafka, spec: PipelineSpec, timeout: float = 60.0) -> list[TopicAction]:
    """Delete the pipeline's output topics and wait until they are gone."""
    existing = kafka.topic_names()
    names = [o.topic for o in spec.outputs if o.topic in existing]
    actions = [TopicAction(o.topic, "absent") for o in spec.outputs if o.topic not in existing]
    if names:
        futures = kafka.call(
            "deleting topics", kafka.admin.delete_topics, names, request_timeout=kafka.timeout
        )
        for name, future in futures.items():
            try:
                future.result(timeout=kafka.timeout + 5)
            except Exception as exc:
                error = exc.args[0] if exc.args else exc
                detail = error.str() if hasattr(error, "str") else str(exc)
                raise TopicSetupError(f"cannot delete topic '{name}': {detail}") from None
            actions.append(TopicAction(name, "deleted"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(n in kafka.topic_names() for n in names):
            time.sleep(0.5)
    return actions


def delete_group(kafka: Kafka, group: str) -> bool:
    """Delete a consumer group (its committed offsets). False when it did not exist."""
    futures = kafka.call(
        "deleting group", kafka.admin.delete_consumer_groups, [group], request_timeout=kafka.timeout
    )
    for future in futures.values():
        try:
            future.result(timeout=kafka.timeout + 5)
        except Exception as exc:
            error = exc.args[0] if exc.args else exc
            name = getattr(error, "name", lambda: "")()
            if name in ("GROUP_ID_NOT_FOUND",):
                return False
            detail = error.str() if hasattr(error, "str") else str(exc)
            if name == "NON_EMPTY_GROUP":
                raise TopicSetupError(
                    f"cannot delete consumer group '{group}': it has members ({detail})",
                    hint="stop every worker of the pipeline first (a group with members cannot be deleted)",
                ) from None
            if isinstance(exc, TimeoutError) or name in ("_TIMED_OUT", "_TRANSPORT"):
                raise kafka.unreachable(
                    f"deleting consumer group '{group}' failed ({detail})"
                ) from None
            raise TopicSetupError(
                f"cannot delete consumer group '{group}': {detail}",
                hint="check the broker's log; the group's offsets were not deleted",
            ) from None
    return True
