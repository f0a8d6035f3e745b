"""Typed errors for everything that can go wrong talking to Kafka Connect.

`ConnectClient` turns every HTTP or transport failure into one of these in a single place
(`map_response` / `map_transport_error`), so callers catch by meaning, not by status code.
"""

from __future__ import annotations

import re

from seam.errors import SeamError

# Connect wraps Java exceptions into its messages: "org.apache...BadRequestException: text".
_JAVA_PREFIX = re.compile(r"^(?:[a-z][\w$]*\.)+[A-Z][\w$]*(?:Exception|Error):\s*")
# Unknown-class errors list every plugin as PluginDesc{...}: keep only the class names.
_PLUGIN_DESC = re.compile(r"PluginDesc\{klass=class ([\w.$]+)[^}]*\}")


def clean_message(message: str) -> str:
    """Connect's message without Java exception prefixes and with plugin lists shortened."""
    text = message.strip()
    while True:
        stripped = _JAVA_PREFIX.sub("", text, count=1)
        if stripped == text:
            break
        text = stripped
    return _PLUGIN_DESC.sub(lambda m: m.group(1), text)


class ConnectError(SeamError):
    """Kafka Connect refused or failed a request.

    `status` is the HTTP status (None when no response came back), `error_code` is the
    `error_code` field of Connect's error body, `method` and `url` name the request.
    """

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        status: int | None = None,
        error_code: int | None = None,
        method: str | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.error_code = error_code
        self.method = method
        self.url = url


class ConnectUnreachableError(ConnectError):
    """No HTTP response: connection refused, DNS failure, TLS failure or timeout."""


class ConnectTimeoutError(ConnectUnreachableError):
    """The worker accepted the connection but did not answer in time."""


class ConnectUnauthorizedError(ConnectError):
    """401/403: the credentials are missing or wrong."""


class ConnectNotFoundError(ConnectError):
    """404: no such connector, task, plugin or path."""


class ConnectConflictError(ConnectError):
    """409: the cluster is rebalancing, or the request conflicts with the connector's state."""


class ConnectBadRequestError(ConnectError):
    """400/422 and other client errors: the request or config is invalid."""


class ConnectServerError(ConnectError):
    """5xx: the worker failed to handle the request."""


class ConnectorFailedError(ConnectError):
    """A connector or one of its tasks is FAILED (raised when waiting for RUNNING)."""


class ConnectorTimeoutError(ConnectError):
    """A connector did not reach the wanted state in time."""
