"""ConnectClient: error mapping and retry policy, against a stub session (no I/O)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import requests

from seam.connectors.client import ConnectClient, RetryPolicy
from seam.connectors.errors import (
    ConnectBadRequestError,
    ConnectConflictError,
    ConnectError,
    ConnectNotFoundError,
    ConnectServerError,
    ConnectTimeoutError,
    ConnectUnauthorizedError,
    ConnectUnreachableError,
)
from seam.errors import SeamError
from seam.secrets import Secret
from seam.settings import load_settings

pytestmark = pytest.mark.unit

BASE = "http://connect.test:8083"


def response(status: int, body: Any = None, url: str = BASE + "/connectors/x") -> requests.Response:
    resp = requests.Response()
    resp.status_code = status
    resp.url = url
    resp.reason = "reason"
    resp._content = b"" if body is None else json.dumps(body).encode()
    return resp


Outcome = requests.Response | Exception


class StubSession(requests.Session):
    """Answers each request with the next scripted outcome and records the calls."""

    def __init__(self, *outcomes: Outcome) -> None:
        super().__init__()
        self.outcomes = list(outcomes)
        self.calls: list[dict[str, Any]] = []

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        self.calls.append({"method": method, "url": url, **kwargs})
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def client(*outcomes: Outcome, attempts: int = 4) -> tuple[ConnectClient, StubSession, list[float]]:
    session = StubSession(*outcomes)
    sleeps: list[float] = []
    return (
        ConnectClient(
            BASE,
            session=session,
            retries=RetryPolicy(attempts=attempts, backoff=0.1, max_backoff=0.3),
            sleep=sleeps.append,
        ),
        session,
        sleeps,
    )


def test_returns_decoded_json_and_passes_timeout() -> None:
    c, session, _ = client(response(200, {"version": "4.3.0"}, url=BASE + "/"))
    assert c.cluster_info() == {"version": "4.3.0"}
    assert session.calls[0]["timeout"] == 10.0
    assert session.calls[0]["url"] == BASE + "/"


def test_no_content_returns_none() -> None:
    c, session, _ = client(response(204))
    c.delete("x")
    assert session.calls[0]["method"] == "DELETE"


def test_list_connectors_expands_status_and_info() -> None:
    c, session, _ = client(response(200, {}))
    c.list_connectors()
    assert session.calls[0]["params"] == [("expand", "status"), ("expand", "info")]


def test_connector_names_are_url_quoted() -> None:
    c, session, _ = client(response(200, {}))
    c.status("a/b c")
    assert session.calls[0]["url"] == BASE + "/connectors/a%2Fb%20c/status"


def test_restart_passes_flags() -> None:
    c, session, _ = client(response(202, {"name": "x"}))
    c.restart("x", include_tasks=True, only_failed=True)
    assert session.calls[0]["method"] == "POST"
    assert session.calls[0]["params"] == {"includeTasks": "true", "onlyFailed": "true"}


def test_404_maps_to_not_found_with_code_and_message() -> None:
    c, session, sleeps = client(
        response(404, {"error_code": 404, "message": "Connector x not found"})
    )
    with pytest.raises(ConnectNotFoundError) as info:
        c.get_connector("x")
    err = info.value
    assert err.status == 404
    assert err.error_code == 404
    assert "Connector x not found" in err.message
    assert isinstance(err, ConnectError)
    assert isinstance(err, SeamError)
    assert len(session.calls) == 1
    assert sleeps == []


def test_400_is_not_retried_and_java_prefix_is_stripped() -> None:
    body = {
        "error_code": 400,
        "message": "org.apache.kafka.connect.errors.ConnectException: Failed to find any class "
        "that implements Connector, available connectors are: PluginDesc{klass=class "
        "io.debezium.connector.postgresql.PostgresConnector, name='x', version='3.5.0.Final'}",
    }
    c, session, sleeps = client(response(400, body), response(201, {}))
    with pytest.raises(ConnectBadRequestError) as info:
        c.create("x", {"connector.class": "nope"})
    assert len(session.calls) == 1
    assert sleeps == []
    assert "org.apache" not in info.value.message
    assert "PluginDesc" not in info.value.message
    assert "io.debezium.connector.postgresql.PostgresConnector" in info.value.message


def test_409_rebalance_is_retried_then_succeeds_with_backoff() -> None:
    rebalance = {
        "error_code": 409,
        "message": "Cannot complete request momentarily due to rebalance",
    }
    c, session, sleeps = client(
        response(409, rebalance), response(409, rebalance), response(201, {"name": "x"})
    )
    assert c.put_config("x", {"a": "1"}) == {"name": "x"}
    assert len(session.calls) == 3
    assert sleeps == [0.1, 0.2]


def test_409_gives_up_after_attempts() -> None:
    c, session, sleeps = client(
        *[response(409, {"error_code": 409, "message": "rebalance"})] * 3, attempts=3
    )
    with pytest.raises(ConnectConflictError):
        c.pause("x")
    assert len(session.calls) == 3
    assert sleeps == [0.1, 0.2]


@pytest.mark.parametrize("status", [408, 429, 500, 503])
def test_transient_statuses_are_retried(status: int) -> None:
    c, session, _ = client(
        response(status, {"error_code": status, "message": "busy"}), response(200, [])
    )
    assert c.tasks("x") == []
    assert len(session.calls) == 2


def test_5xx_maps_to_server_error_after_retries() -> None:
    c, session, sleeps = client(*[response(500, {"error_code": 500, "message": "boom"})] * 4)
    with pytest.raises(ConnectServerError) as info:
        c.status("x")
    assert info.value.status == 500
    assert len(session.calls) == 4
    assert sleeps == [0.1, 0.2, 0.3]  # capped at max_backoff


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failures_name_the_settings(status: int) -> None:
    c, session, _ = client(response(status, None))
    with pytest.raises(ConnectUnauthorizedError) as info:
        c.list_connectors()
    assert len(session.calls) == 1
    assert "connect.password" in (info.value.hint or "")
    assert "SEAM_CONNECT_PASSWORD" in (info.value.hint or "")


def test_connection_refused_is_retried_then_unreachable() -> None:
    refused = requests.ConnectionError(
        "HTTPConnectionPool: Max retries exceeded ([Errno 111] Connection refused)"
    )
    c, session, _ = client(refused, refused, attempts=2)
    with pytest.raises(ConnectUnreachableError) as info:
        c.cluster_info()
    assert len(session.calls) == 2
    assert info.value.status is None
    assert "connection refused" in info.value.message
    assert "connect.url" in (info.value.hint or "")


def test_connection_error_then_success() -> None:
    c, session, _ = client(
        requests.ConnectionError("Connection refused"), response(200, {"version": "4.3.0"})
    )
    assert c.cluster_info()["version"] == "4.3.0"
    assert len(session.calls) == 2


def test_timeout_maps_to_timeout_error() -> None:
    c, _, _ = client(requests.ReadTimeout("read timed out"), attempts=1)
    with pytest.raises(ConnectTimeoutError):
        c.cluster_info()


def test_tls_failure_is_not_retried_and_names_verify_setting() -> None:
    c, session, _ = client(
        requests.exceptions.SSLError("certificate verify failed"), response(200, {})
    )
    with pytest.raises(ConnectUnreachableError) as info:
        c.cluster_info()
    assert len(session.calls) == 1
    assert "verify_tls" in (info.value.hint or "")


def test_non_json_error_body_is_kept() -> None:
    resp = response(502)
    resp._content = b"<html>Bad Gateway</html>"
    c, _, _ = client(resp, attempts=1)
    with pytest.raises(ConnectServerError) as info:
        c.cluster_info()
    assert "Bad Gateway" in info.value.message


def test_from_settings_uses_auth_and_tls() -> None:
    settings = load_settings(
        env={
            "SEAM_CONNECT_USERNAME": "admin",
            "SEAM_CONNECT_PASSWORD": "pw",
            "SEAM_CONNECT_VERIFY_TLS": "/ca.pem",
        }
    )
    c = ConnectClient.from_settings(settings)
    assert c.session.auth == ("admin", "pw")
    assert c.session.verify == "/ca.pem"
    assert isinstance(settings.connect_password, Secret)


def test_offsets_api_paths() -> None:
    calls: list[Callable[[ConnectClient], Any]] = [
        lambda c: c.offsets("x"),
        lambda c: c.alter_offsets("x", [{"partition": {}, "offset": None}]),
        lambda c: c.reset_offsets("x"),
        lambda c: c.stop("x"),
        lambda c: c.set_logger("io.debezium", "debug"),
    ]
    expected = [
        ("GET", "/connectors/x/offsets"),
        ("PATCH", "/connectors/x/offsets"),
        ("DELETE", "/connectors/x/offsets"),
        ("PUT", "/connectors/x/stop"),
        ("PUT", "/admin/loggers/io.debezium"),
    ]
    for call, (method, path) in zip(calls, expected, strict=True):
        c, session, _ = client(response(200, {}))
        call(c)
        assert (session.calls[0]["method"], session.calls[0]["url"]) == (method, BASE + path)
    c, session, _ = client(response(200, {}))
    c.set_logger("io.debezium", "debug")
    assert session.calls[0]["json"] == {"level": "DEBUG"}
