"""Finding the programs the local stack runs, with the package that provides each one."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from seam.errors import PrerequisiteError

MIN_JAVA = 17


@dataclass(frozen=True)
class Programs:
    java: Path
    postgres_bin: Path  # the directory holding initdb and postgres
    mariadbd: Path
    mariadb_install_db: Path


def _which(name: str, package: str, why: str) -> Path:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/local/sbin")
    if not found:
        raise PrerequisiteError(
            f"'{name}' is not installed; the local stack needs it {why}",
            hint=f"install it, for example: apt-get install {package}",
        )
    return Path(found)


def java() -> Path:
    path = _which("java", "openjdk-17-jre-headless", "to run Kafka and Kafka Connect")
    out = subprocess.run([str(path), "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    major = int(match.group(1)) if match else 0
    if major == 1 and match and match.group(2):  # "1.8.0" style
        major = int(match.group(2))
    if major < MIN_JAVA:
        raise PrerequisiteError(
            f"Java {MIN_JAVA} or newer is needed to run Kafka 4 and Connect, found Java {major or 'unknown'} at {path}",
            hint="apt-get install openjdk-17-jre-headless, or put a newer java first on PATH",
        )
    return path


def maven() -> Path:
    return _which("mvn", "maven", "to fetch the Kafka and Debezium jars")


def postgres_bin() -> Path:
    """The newest PostgreSQL server binary directory (Debian keeps them out of PATH)."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1].parent
    on_path = shutil.which("postgres")
    if on_path and (Path(on_path).parent / "initdb").exists():
        return Path(on_path).parent
    raise PrerequisiteError(
        "the PostgreSQL server (postgres, initdb) is not installed; the local stack runs a private cluster",
        hint="apt-get install postgresql",
    )


def find_programs(
    parts: Collection[str] = ("postgres", "mariadb", "kafka", "connect"),
) -> Programs:
    """The programs the named parts of the local stack run (an empty path for the others),
    or the first one missing as a clear error."""
    none = Path()
    mariadb = "mariadb" in parts
    return Programs(
        java=java() if {"kafka", "connect"} & set(parts) else none,
        postgres_bin=postgres_bin() if "postgres" in parts else none,
        mariadbd=_which("mariadbd", "mariadb-server", "to run the legacy MariaDB")
        if mariadb
        else none,
        mariadb_install_db=_which(
            "mariadb-install-db", "mariadb-server", "to create the MariaDB data directory"
        )
        if mariadb
        else none,
    )
