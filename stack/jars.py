"""The Kafka and Debezium jars, resolved by Maven from the pinned pom into a cache directory.

Each bundle (a profile of `stack/pom.xml`) is copied into its own directory, so Connect's
runtime classpath holds only Kafka's jars and each connector gets its own plugin.path entry.
A bundle is complete once its stamp file records the pom's hash; an interrupted copy is
redone from scratch.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from seam.errors import StackError
from seam.stack import prereqs

KAFKA_BUNDLE = "kafka"
CONNECTOR_BUNDLES = ("debezium-postgres", "debezium-mysql", "debezium-mariadb", "debezium-jdbc")
_STAMP = ".complete"
# Groups a bundle must not carry, beyond Connect's own API and logging. The JDBC sink:
# - Jackson: its Hibernate registers every Jackson module the ServiceLoader finds, which also
#   sees the Kafka classpath's jackson-module-blackbird; with a Jackson of its own in the
#   plugin directory that module is "not a subtype" and the task fails. Without it, the
#   plugin uses Connect's (2.21 beside Debezium's 2.19: same major version).
# - the JDBC drivers of other databases than PostgreSQL (seam's sinks write PostgreSQL): they
#   doubled the Connect worker's plugin discovery (measured: 3.6-4.8 s without the sink,
#   7.2-9.0 s with every driver, 3.3-4.2 s with PostgreSQL's alone; connectors/README.md).
BUNDLE_EXCLUDES = {
    "debezium-jdbc": (
        "com.fasterxml.jackson.core",
        "com.oracle.database.jdbc",
        "com.microsoft.sqlserver",
        "com.mysql",
        "org.mariadb.jdbc",
    )
}


@dataclass(frozen=True)
class JarLayout:
    kafka_classpath: Path  # directory whose jars form the broker's and Connect's classpath
    plugin_path: Path  # directory with one sub-directory per connector


def _pom_text() -> str:
    return resources.files("seam.stack").joinpath("pom.xml").read_text(encoding="utf-8")


def _maven_args(bundle: str, out_dir: Path, pom: Path) -> list[str]:
    args = [
        str(prereqs.maven()),
        "-B",
        "-q",
        "-f",
        str(pom),
        "-P",
        bundle,
        "dependency:copy-dependencies",
        f"-DoutputDirectory={out_dir}",
        "-DincludeScope=runtime",
    ]
    if bundle != KAFKA_BUNDLE:
        # Connect supplies its own API and logging to plugins; copies of them would shadow it.
        excluded = ("org.apache.kafka", "org.slf4j", *BUNDLE_EXCLUDES.get(bundle, ()))
        args.append(f"-DexcludeGroupIds={','.join(excluded)}")
    return args


def ensure_jars(cache_dir: Path) -> JarLayout:
    """Resolve every bundle into `cache_dir` unless it is already there for this pom."""
    pom_text = _pom_text()
    # What each bundle holds: the pom and what is left out of it.
    digest = hashlib.sha256((pom_text + repr(BUNDLE_EXCLUDES)).encode()).hexdigest()[:16]
    root = cache_dir / "jars" / digest
    plugins = root / "plugins"
    try:
        plugins.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StackError(
            f"cannot create the jar cache {root}: {exc.strerror}",
            hint="set stack.cache_dir (SEAM_STACK_CACHE_DIR) to a writable directory",
        ) from None
    pom = root / "pom.xml"
    pom.write_text(pom_text, encoding="utf-8")
    targets = {KAFKA_BUNDLE: root / KAFKA_BUNDLE} | {b: plugins / b for b in CONNECTOR_BUNDLES}
    for bundle, out_dir in targets.items():
        if (out_dir / _STAMP).exists():
            continue
        shutil.rmtree(out_dir, ignore_errors=True)
        result = subprocess.run(
            _maven_args(bundle, out_dir, pom), capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            shutil.rmtree(out_dir, ignore_errors=True)
            tail = " ".join(
                line.strip() for line in (result.stdout + result.stderr).splitlines()[-5:]
            )
            raise StackError(
                f"Maven could not resolve the '{bundle}' jars: {tail}",
                hint="check that Maven Central is reachable (mvn uses ~/.m2/settings.xml for proxies)",
            )
        (out_dir / _STAMP).write_text(digest)
    return JarLayout(kafka_classpath=targets[KAFKA_BUNDLE], plugin_path=plugins)
