"""What a migration must remember across restarts, kept in one directory.

The facade, `seam migrate ...` and the parity check run as separate processes, often on
different days; they share what they learned through small JSON files in a migration
directory (route modes set at run time, parity results, cutover records). Every write is
atomic, so a process killed mid-write leaves the previous file whole, and a damaged file is
one clear error naming it, never a silent default.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from seam.errors import ConfigError

ENV_VAR: Final = "SEAM_MIGRATION_DIR"
DEFAULT_DIR: Final = Path(".seam") / "migration"


def migration_dir(explicit: Path | None = None, env: Mapping[str, str] | None = None) -> Path:
    """The directory given, else $SEAM_MIGRATION_DIR, else ./.seam/migration (like a
    project's .git: the migration's records live with the files that declare it)."""
    if explicit is not None:
        return explicit
    value = (os.environ if env is None else env).get(ENV_VAR)
    return Path(value) if value else DEFAULT_DIR


class MigrationStore:
    """JSON documents under one directory, each named by a relative path."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, name: str) -> Path:
        return self.root / name

    def read(self, name: str) -> Any | None:
        """The document, or None when it was never written."""
        path = self.path(name)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConfigError(
                f"cannot read the migration record {path}: {exc.strerror}",
                hint="check the file's permissions, or point --state / $SEAM_MIGRATION_DIR "
                "at the migration directory",
            ) from exc
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"the migration record {path} is damaged (not JSON: {exc.msg} at line {exc.lineno})",
                hint="restore it from version control or a backup, or delete it to forget "
                "what it recorded",
            ) from exc

    def write(self, name: str, value: Any) -> Path:
        """Write atomically: a reader sees the old document or the new one, never a part."""
        path = self.path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with tmp.open("w", encoding="utf-8") as file:
            json.dump(value, file, indent=2, sort_keys=True, default=str)
            file.write("\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
        return path
