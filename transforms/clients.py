"""The Kafka clients a worker uses, made by one injectable factory.

The worker asks `Clients` for its consumer and producer and for the two admin questions it
has (are the topics there, who is in my group). `KafkaClients` answers them with
confluent-kafka against a cluster; unit tests hand the worker a fake, so that its
transaction, rebalance and failure paths run without a broker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from seam.kafka_config import KafkaSettings, kafka_settings
from seam.streams.kafka import Kafka
from seam.transforms.pipeline_file import PipelineSpec
from seam.transforms.topics import ensure_outputs


@dataclass(frozen=True)
class Member:
    """One member of a consumer group."""

    member_id: str
    client_id: str
    host: str


class Clients(Protocol):
    bootstrap_servers: str

    def prepare(self, spec: PipelineSpec, reference_topics: list[str], timeout: float) -> None:
        """Check that the input and reference topics exist (TopicNotFoundError) and create
        the missing output topics."""

    def consumer(self, config: dict[str, Any]) -> Any:
        """A consumer with `config` (the cluster's connection settings added)."""

    def producer(self, config: dict[str, Any]) -> Any:
        """A producer with `config` (the cluster's connection settings added)."""

    def members(self, group: str, timeout: float) -> list[Member]:
        """The members of `group` as the group coordinator sees them."""


class KafkaClients:
    """`Clients` for a real cluster."""

    def __init__(self, kafka: KafkaSettings | str) -> None:
        self.settings = kafka_settings(kafka)
        self.bootstrap_servers = self.settings.bootstrap_servers

    def prepare(self, spec: PipelineSpec, reference_topics: list[str], timeout: float) -> None:
        with Kafka(self.settings, timeout=timeout) as kafka:
            partitions = {t: kafka.partitions(t) for t in spec.inputs}
            for topic in reference_topics:
                kafka.partitions(topic)
            ensure_outputs(kafka, spec, default_partitions=len(partitions[spec.inputs[0]]))

    def consumer(self, config: dict[str, Any]) -> Any:
        from confluent_kafka import Consumer

        return Consumer(self.settings.client_config(config))

    def producer(self, config: dict[str, Any]) -> Any:
        from confluent_kafka import Producer

        return Producer(self.settings.client_config(config))

    def members(self, group: str, timeout: float) -> list[Member]:
        with Kafka(self.settings, timeout=timeout) as kafka:
            futures = kafka.call(
                "describing the consumer group",
                kafka.admin.describe_consumer_groups,
                [group],
                request_timeout=timeout,
            )
            description = kafka.call(
                "describing the consumer group", futures[group].result, timeout=timeout + 1
            )
        return [
            Member(str(m.member_id), str(m.client_id), str(m.host)) for m in description.members
        ]
