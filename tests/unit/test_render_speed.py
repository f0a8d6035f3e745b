"""The latency and initial-load settings every rendered connector gets, and how a spec
changes them (no I/O)."""

from __future__ import annotations

from typing import Any

import pytest

from seam.connectors.plan import ValidationFailedError, validate_configs
from seam.connectors.render import PRODUCER_DEFAULTS, SPEED_DEFAULTS, render
from seam.connectors.spec import load_specs, parse_specs
from seam.errors import ConfigError
from seam.legacy_db.files import folder
from seam.settings import load_settings

pytestmark = pytest.mark.unit

SETTINGS = load_settings(env={})
EXAMPLES = folder("connectors")

SPECS = {
    "postgres": "name: pg\nflavour: postgres\ndatabase: postgres\ntables: [products]\n",
    "mysql": "name: my\nflavour: mysql\ndatabase: mariadb\ntables: [products]\n",
    "mariadb": "name: ma\nflavour: mariadb\ndatabase: mariadb\ntables: [products]\n",
}


def rendered(text: str) -> dict[str, str]:
    (spec,) = parse_specs(text, "spec.yaml")
    return render(spec, SETTINGS).config


@pytest.mark.parametrize("flavour", sorted(SPECS))
def test_every_flavour_renders_for_low_latency_and_a_fast_snapshot(flavour: str) -> None:
    config = rendered(SPECS[flavour])
    # Debezium's own default poll interval (500 ms) delays every change by about that much.
    assert int(config["poll.interval.ms"]) <= 50
    assert int(config["max.batch.size"]) > 2048  # Debezium's default
    assert int(config["max.queue.size"]) > int(config["max.batch.size"])
    assert config["extended.headers.enabled"] == "false"  # Debezium's per-record context headers
    # Connect's source producer: one request in flight, so the batch size sets the pace.
    assert int(config["producer.override.batch.size"]) >= 512 * 1024
    assert config["producer.override.compression.type"] == "lz4"
    for key, value in {**SPEED_DEFAULTS, **PRODUCER_DEFAULTS}.items():
        assert config[key] == value


def test_overrides_replace_the_speed_defaults() -> None:
    config = rendered(
        SPECS["postgres"]
        + "overrides:\n"
        + "  poll.interval.ms: 500\n"
        + "  producer.override.compression.type: zstd\n"
        + "  producer.override.linger.ms: 50\n"
    )
    assert config["poll.interval.ms"] == "500"
    assert config["producer.override.compression.type"] == "zstd"
    assert config["producer.override.linger.ms"] == "50"
    assert (
        config["producer.override.batch.size"] == PRODUCER_DEFAULTS["producer.override.batch.size"]
    )


def test_a_bigger_batch_keeps_the_queue_larger_than_a_batch() -> None:
    config = rendered(SPECS["postgres"] + "overrides:\n  max.batch.size: 20000\n")
    assert config["max.batch.size"] == "20000"
    assert config["max.queue.size"] == "80000"
    # ... unless the spec sets the queue itself (Connect's validation then judges it)
    config = rendered(
        SPECS["postgres"] + "overrides:\n  max.batch.size: 20000\n  max.queue.size: 30000\n"
    )
    assert config["max.queue.size"] == "30000"
    # a smaller batch leaves the default queue alone
    config = rendered(SPECS["postgres"] + "overrides:\n  max.batch.size: 512\n")
    assert config["max.queue.size"] == SPEED_DEFAULTS["max.queue.size"]


@pytest.mark.parametrize("flavour", sorted(SPECS))
def test_producer_overrides_false_leaves_the_producer_alone(flavour: str) -> None:
    config = rendered(SPECS[flavour] + "producer_overrides: false\n")
    assert not [key for key in config if key.startswith("producer.override.")]
    assert config["poll.interval.ms"] == SPEED_DEFAULTS["poll.interval.ms"]
    # an explicit override still goes through: the user asked for that key
    config = rendered(
        SPECS[flavour]
        + "producer_overrides: false\noverrides:\n  producer.override.linger.ms: 20\n"
    )
    assert [key for key in config if key.startswith("producer.override.")] == [
        "producer.override.linger.ms"
    ]


def test_producer_overrides_must_be_a_boolean() -> None:
    with pytest.raises(ConfigError) as err:
        parse_specs(SPECS["postgres"] + "producer_overrides: maybe\n", "spec.yaml")
    assert err.value.message.startswith("spec.yaml:5: connector 'pg': 'producer_overrides'")
    assert "true or false" in err.value.message


def test_the_examples_render_the_speed_defaults() -> None:
    for spec in load_specs([EXAMPLES]):
        config = render(spec, SETTINGS).config
        for key, value in {**SPEED_DEFAULTS, **PRODUCER_DEFAULTS}.items():
            assert config[key] == value, (spec.name, key)


class PolicyNoneConnect:
    """Connect's validate answer from workers with connector.client.config.override.policy=None
    (the message is Kafka's AbstractConnectorClientConfigOverridePolicy's)."""

    def validate(self, connector_class: str, config: dict[str, str]) -> dict[str, Any]:
        configs = [
            {
                "value": {
                    "name": key,
                    "errors": [
                        f"The 'None' policy does not allow '{key.removeprefix('producer.override.')}' "
                        "to be overridden in the connector configuration."
                    ],
                }
            }
            for key in config
            if key.startswith("producer.override.")
        ]
        return {"error_count": len(configs), "configs": configs}


def test_a_cluster_forbidding_producer_overrides_gets_the_spec_key_that_fixes_it() -> None:
    (spec,) = parse_specs(SPECS["postgres"], "spec.yaml")
    with pytest.raises(ValidationFailedError) as err:
        validate_configs(PolicyNoneConnect(), [render(spec, SETTINGS)])  # type: ignore[arg-type]
    assert "producer.override.batch.size: The 'None' policy does not allow" in err.value.message
    assert err.value.hint is not None
    assert "producer_overrides: false" in err.value.hint
    assert "connector.client.config.override.policy=All" in err.value.hint
    # the spec key that the hint names is what makes the config pass on such a cluster
    (spec,) = parse_specs(SPECS["postgres"] + "producer_overrides: false\n", "spec.yaml")
    validate_configs(PolicyNoneConnect(), [render(spec, SETTINGS)])  # type: ignore[arg-type]


def test_other_validation_errors_keep_the_general_hint() -> None:
    class Rejects:
        def validate(self, connector_class: str, config: dict[str, str]) -> dict[str, Any]:
            value = {"name": "snapshot.mode", "errors": ["Value must be one of initial, never"]}
            return {"error_count": 1, "configs": [{"value": value}]}

    (spec,) = parse_specs(SPECS["postgres"], "spec.yaml")
    with pytest.raises(ValidationFailedError) as err:
        validate_configs(Rejects(), [render(spec, SETTINGS)])  # type: ignore[arg-type]
    assert err.value.hint is not None
    assert "producer_overrides" not in err.value.hint
