"""Values that must never be printed, logged or diffed in clear."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

MASK: Final = "******"

# Matches the password part of a URL: scheme://user:PASSWORD@host
_URL_PASSWORD = re.compile(
    r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@\s]*)(?P<tail>@)"
)


class Secret:
    """A string that shows as a mask everywhere except through `reveal()`."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def mask_url(url: str) -> str:
    """The URL with its password, if any, replaced by the mask."""
    return _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}{m['tail']}", url)


def read_secret_file(path: str | Path, setting: str) -> Secret:
    """The secret kept in the file at `path` (one line; a trailing newline is dropped), for a
    `<name>_file` setting: files let a secret come from a mounted volume instead of the
    config file or the environment."""
    from seam.errors import ConfigError

    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{setting}: the file {file} does not exist",
            hint=f"write the secret into {file}, or point {setting} at the file that holds it",
        ) from None
    except OSError as exc:
        raise ConfigError(f"{setting}: cannot read {file}: {exc.strerror}") from None
    value = text.rstrip("\r\n")
    if not value:
        raise ConfigError(f"{setting}: the file {file} is empty")
    return Secret(value)
