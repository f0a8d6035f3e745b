"""A small client for the Kafka Connect REST API (Kafka 4.x).

Every request goes through `ConnectClient._request`, which owns timeouts, retries and the
mapping of failures to typed errors (`seam.connectors.errors`). Retries use exponential
backoff and happen ONLY for failures where trying again can help: no response at all
(connection refused, DNS, timeout), 408, 429, 5xx and 409 (Connect answers 409 while the
group rebalances). A 400 or 404 is never retried: the answer will not change.

The HTTP session is injectable so unit tests can stub the transport.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import requests

from seam.connectors.errors import (
    ConnectBadRequestError,
    ConnectConflictError,
    ConnectError,
    ConnectNotFoundError,
    ConnectServerError,
    ConnectTimeoutError,
    ConnectUnauthorizedError,
    ConnectUnreachableError,
    clean_message,
)

if TYPE_CHECKING:
    from seam.settings import Settings

JSON = Any

_AUTH_HINT = (
    "set connect.username / connect.password in the config file "
    "(or SEAM_CONNECT_USERNAME / SEAM_CONNECT_PASSWORD)"
)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry a request that may succeed later."""

    attempts: int = 5  # total tries, including the first
    backoff: float = 0.25  # seconds before the 2nd try; doubles each time
    max_backoff: float = 4.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed try number `attempt` (1-based)."""
        return float(min(self.max_backoff, self.backoff * (2 ** (attempt - 1))))


NO_RETRY = RetryPolicy(attempts=1)

RETRY_STATUSES = frozenset({408, 409, 429})


def is_retryable_status(status: int) -> bool:
    return status in RETRY_STATUSES or status >= 500


def map_transport_error(exc: requests.RequestException, method: str, url: str) -> ConnectError:
    """A typed error for a request that got no HTTP response."""
    base = url.split("?", 1)[0]
    if isinstance(exc, requests.Timeout):
        return ConnectTimeoutError(
            f"Kafka Connect at {base} did not answer {method} in time",
            hint="check the worker is healthy (seam stack status) or raise the timeout",
            method=method,
            url=url,
        )
    if isinstance(exc, requests.exceptions.SSLError):
        return ConnectUnreachableError(
            f"TLS handshake with Kafka Connect at {base} failed: {_short(exc)}",
            hint="set connect.verify_tls to the CA bundle path (or false for a test cluster)",
            method=method,
            url=url,
        )
    return ConnectUnreachableError(
        f"cannot reach Kafka Connect at {base}: {_short(exc)}",
        hint="start the stack (seam stack up) or set connect.url / --connect-url / SEAM_CONNECT_URL",
        method=method,
        url=url,
    )


def _short(exc: Exception) -> str:
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "No route to host"):
        if marker in text:
            return marker.lower()
    if "Failed to resolve" in text or "nodename nor servname" in text:
        return "host name does not resolve"
    return text if len(text) < 200 else text[:200] + "..."


def map_response(response: requests.Response, method: str) -> ConnectError:
    """A typed error for a non-2xx response, with Connect's error_code and message."""
    status = response.status_code
    error_code: int | None = None
    message = ""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        raw_code = body.get("error_code")
        error_code = raw_code if isinstance(raw_code, int) else None
        message = clean_message(str(body.get("message") or ""))
    if not message:
        message = (response.text or response.reason or "").strip()[:300] or f"HTTP {status}"
    url = response.url or ""
    path = url.split("?", 1)[0]
    what = f"Kafka Connect {method} {path} -> {status}: {message}"
    kwargs: dict[str, Any] = {
        "status": status,
        "error_code": error_code,
        "method": method,
        "url": url,
    }
    if status in (401, 403):
        reason = "rejected the credentials" if status == 401 else "denied access"
        return ConnectUnauthorizedError(
            f"Kafka Connect {reason} ({status}) for {method} {path}", hint=_AUTH_HINT, **kwargs
        )
    if status == 404:
        return ConnectNotFoundError(what, **kwargs)
    if status == 409:
        return ConnectConflictError(
            what,
            hint="the Connect cluster is rebalancing or the connector is in a conflicting state; try again",
            **kwargs,
        )
    if status >= 500:
        return ConnectServerError(what, hint="see the Connect worker's log", **kwargs)
    return ConnectBadRequestError(what, **kwargs)


class ConnectClient:
    """Kafka Connect REST API. Each method returns the decoded JSON body (or None)."""

    def __init__(
        self,
        base_url: str,
        *,
        session: requests.Session | None = None,
        auth: tuple[str, str] | None = None,
        verify: bool | str = True,
        timeout: float = 10.0,
        retries: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session if session is not None else requests.Session()
        if auth is not None:
            self.session.auth = auth
        self.session.verify = verify
        self.timeout = timeout
        self.retries = retries if retries is not None else RetryPolicy()
        self._sleep = sleep

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> ConnectClient:
        """A client for the Connect cluster the settings name, with their auth and TLS options."""
        return cls(
            settings.connect_url,
            auth=settings.connect_auth(),
            verify=settings.connect_verify_tls,
            **kwargs,
        )

    # -- transport ---------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | list[tuple[str, str]] | None = None,
        body: JSON = None,
        retries: RetryPolicy | None = None,
        timeout: float | None = None,
    ) -> JSON:
        policy = retries or self.retries
        url = self.base_url + path
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self.session.request(
                    method,
                    url,
                    params=params,
                    json=body,
                    headers={"Accept": "application/json"},
                    timeout=timeout or self.timeout,
                )
            except requests.RequestException as exc:
                error: ConnectError = map_transport_error(exc, method, url)
                retryable = not isinstance(exc, requests.exceptions.SSLError)
            else:
                if response.status_code < 400:
                    if response.status_code == 204 or not response.content:
                        return None
                    try:
                        return response.json()
                    except ValueError:
                        return response.text
                error = map_response(response, method)
                retryable = is_retryable_status(response.status_code)
            if not retryable or attempt >= policy.attempts:
                raise error
            self._sleep(policy.delay(attempt))

    @staticmethod
    def _name(name: str) -> str:
        return quote(name, safe="")

    # -- cluster -----------------------------------------------------------------------------

    def cluster_info(self, *, timeout: float | None = None) -> JSON:
        """`GET /`: version, commit and Kafka cluster id."""
        return self._request("GET", "/", timeout=timeout)

    def plugins(self, *, connectors_only: bool = True) -> list[dict[str, Any]]:
        params = None if connectors_only else {"connectorsOnly": "false"}
        result: list[dict[str, Any]] = self._request("GET", "/connector-plugins", params=params)
        return result

    def validate(self, plugin_class: str, config: Mapping[str, str]) -> dict[str, Any]:
        """`PUT /connector-plugins/{class}/config/validate`: Connect's config check."""
        result: dict[str, Any] = self._request(
            "PUT",
            f"/connector-plugins/{self._name(plugin_class)}/config/validate",
            body=dict(config),
        )
        return result

    # -- connectors --------------------------------------------------------------------------

    def list_connectors(self, *, expand: bool = True) -> dict[str, Any]:
        """Connectors by name; with `expand`, each has `status` and `info` (config, tasks)."""
        if not expand:
            names: list[str] = self._request("GET", "/connectors")
            return {name: {} for name in names}
        result: dict[str, Any] = self._request(
            "GET", "/connectors", params=[("expand", "status"), ("expand", "info")]
        )
        return result

    def get_connector(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", f"/connectors/{self._name(name)}")
        return result

    def get_config(self, name: str) -> dict[str, str]:
        result: dict[str, str] = self._request("GET", f"/connectors/{self._name(name)}/config")
        return result

    def status(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", f"/connectors/{self._name(name)}/status")
        return result

    def create(
        self, name: str, config: Mapping[str, str], *, initial_state: str | None = None
    ) -> JSON:
        """`POST /connectors`; `initial_state` may be RUNNING, PAUSED or STOPPED."""
        body: dict[str, Any] = {"name": name, "config": dict(config)}
        if initial_state:
            body["initial_state"] = initial_state
        return self._request("POST", "/connectors", body=body)

    def put_config(self, name: str, config: Mapping[str, str]) -> JSON:
        """`PUT /connectors/{name}/config`: create or update."""
        return self._request("PUT", f"/connectors/{self._name(name)}/config", body=dict(config))

    def delete(self, name: str) -> None:
        self._request("DELETE", f"/connectors/{self._name(name)}")

    def pause(self, name: str) -> None:
        self._request("PUT", f"/connectors/{self._name(name)}/pause")

    def resume(self, name: str) -> None:
        self._request("PUT", f"/connectors/{self._name(name)}/resume")

    def stop(self, name: str) -> None:
        self._request("PUT", f"/connectors/{self._name(name)}/stop")

    def restart(self, name: str, *, include_tasks: bool = False, only_failed: bool = False) -> JSON:
        params = {
            "includeTasks": str(include_tasks).lower(),
            "onlyFailed": str(only_failed).lower(),
        }
        return self._request("POST", f"/connectors/{self._name(name)}/restart", params=params)

    # -- tasks -------------------------------------------------------------------------------

    def tasks(self, name: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._request("GET", f"/connectors/{self._name(name)}/tasks")
        return result

    def task_status(self, name: str, task: int) -> dict[str, Any]:
        result: dict[str, Any] = self._request(
            "GET", f"/connectors/{self._name(name)}/tasks/{int(task)}/status"
        )
        return result

    def restart_task(self, name: str, task: int) -> None:
        self._request("POST", f"/connectors/{self._name(name)}/tasks/{int(task)}/restart")

    # -- topics ------------------------------------------------------------------------------

    def topics(self, name: str) -> list[str]:
        result = self._request("GET", f"/connectors/{self._name(name)}/topics")
        topics: list[str] = (result or {}).get(name, {}).get("topics", [])
        return topics

    def reset_topics(self, name: str) -> None:
        self._request("PUT", f"/connectors/{self._name(name)}/topics/reset")

    # -- offsets (the connector must be STOPPED to alter or reset) ---------------------------

    def offsets(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", f"/connectors/{self._name(name)}/offsets")
        return result

    def alter_offsets(self, name: str, offsets: list[dict[str, Any]]) -> JSON:
        return self._request(
            "PATCH", f"/connectors/{self._name(name)}/offsets", body={"offsets": offsets}
        )

    def reset_offsets(self, name: str) -> JSON:
        return self._request("DELETE", f"/connectors/{self._name(name)}/offsets")

    # -- loggers -----------------------------------------------------------------------------

    def loggers(self) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", "/admin/loggers")
        return result

    def logger(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", f"/admin/loggers/{self._name(name)}")
        return result

    def set_logger(self, name: str, level: str, *, scope: str | None = None) -> JSON:
        params = {"scope": scope} if scope else None
        return self._request(
            "PUT",
            f"/admin/loggers/{self._name(name)}",
            params=params,
            body={"level": level.upper()},
        )
