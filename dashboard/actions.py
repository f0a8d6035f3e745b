"""What `seam dashboard --allow-actions` lets a person do from the page, through the same
functions as the CLI: pause or resume a connector and restart its failed tasks (`seam
connectors pause|resume|restart --failed`), change a capability's mode (`seam migrate
route`) and run parity (`seam migrate parity`). Each action is logged, with who (the actor
of `seam.migration.modes.actor`), what and when, on the log and as one JSON line in
`dashboard/actions.jsonl` of the migration directory.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from seam.errors import ConfigError, SeamError

if TYPE_CHECKING:
    from seam.dashboard.config import DashboardConfig
    from seam.settings import Settings

log = logging.getLogger("seam.dashboard.actions")

ACTIONS_LOG: Final = "dashboard/actions.jsonl"
KINDS: Final = ("pause", "resume", "restart", "route", "parity")


class Actions:
    def __init__(self, settings: Settings, config: DashboardConfig, state: Path) -> None:
        self.settings = settings
        self.config = config
        self.state = state
        self._parity_running: set[str] = set()
        self._lock = threading.Lock()

    def run(self, kind: str, target: str, params: dict[str, Any]) -> dict[str, Any]:
        """Do one action and log it; a SeamError (bad input, a refused call) is logged too
        and raised for the page to show."""
        from seam.migration.modes import actor

        entry: dict[str, Any] = {
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "by": actor(),
            "action": kind,
            "target": target,
            **({"mode": params["mode"]} if kind == "route" and "mode" in params else {}),
        }
        try:
            result = self._do(kind, target, params)
        except SeamError as exc:
            entry["error"] = exc.message
            self._log(entry)
            raise
        entry["result"] = result
        self._log(entry)
        return result

    def _log(self, entry: dict[str, Any]) -> None:
        log.info("action %s", json.dumps(entry, sort_keys=True))
        path = self.state / ACTIONS_LOG
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as file:
                file.write(json.dumps(entry, sort_keys=True) + "\n")
        except OSError as exc:
            log.warning("cannot append to %s: %s", path, exc.strerror)

    def _do(self, kind: str, target: str, params: dict[str, Any]) -> dict[str, Any]:
        if kind in ("pause", "resume", "restart"):
            return self._connector(kind, target)
        if kind == "route":
            return self._route(target, str(params.get("mode") or ""))
        if kind == "parity":
            return self._parity(target)
        raise ConfigError(f"no action '{kind}'", hint=f"the actions: {', '.join(KINDS)}")

    def _connector(self, kind: str, name: str) -> dict[str, Any]:
        from seam.connectors.client import ConnectClient
        from seam.connectors.operate import require_connectors

        client = ConnectClient.from_settings(self.settings, timeout=10.0)
        require_connectors(client.list_connectors(), [name], client.base_url)
        if kind == "restart":  # `seam connectors restart --failed NAME`
            client.restart(name, include_tasks=True, only_failed=True)
            return {"done": f"restart of the failed tasks of {name} requested"}
        getattr(client, kind)(name)
        return {"done": f"{kind} requested: {name}"}

    def _route(self, capability: str, text: str) -> dict[str, Any]:
        """`seam migrate route CAP --mode ...`: the same checks and the same record."""
        from seam.cli.facade import capabilities, check_capability
        from seam.migration.modes import read_override, write_override
        from seam.migration.routes import parse_mode
        from seam.migration.state import MigrationStore

        check_capability(capability, capabilities(self.state, None))
        mode = parse_mode(text)
        if mode is None:
            raise ConfigError(f"'{text}' is not a mode", hint="legacy, new, shadow or split N%")
        store = MigrationStore(self.state)
        record = write_override(store, capability, mode, read_override(store, capability))
        return {"done": f"{capability}: {record['previous'] or 'routes file mode'} -> {mode}"}

    def _parity(self, pipeline_name: str) -> dict[str, Any]:
        """Start `seam migrate parity` of a pipeline shown; its record appears on the page
        when it finishes (a check of a large table takes minutes)."""
        from seam.cli.parity import check_and_record
        from seam.migration.state import MigrationStore
        from seam.transforms.pipeline_file import load_pipeline

        database = self.config.parity.get("database")
        if not database:
            raise ConfigError(
                "parity needs the legacy database",
                hint="add parity: {database: NAME} to the dashboard file",
            )
        entries = {load_pipeline(e.file).name: e for e in self.config.pipelines}
        if pipeline_name not in entries:
            raise ConfigError(
                f"no pipeline '{pipeline_name}' on the dashboard",
                hint=f"the pipelines: {', '.join(sorted(entries)) or 'none'}",
            )
        entry = entries[pipeline_name]
        with self._lock:
            if pipeline_name in self._parity_running:
                return {"done": f"parity of {pipeline_name} is already running"}
            self._parity_running.add(pipeline_name)
        spec = load_pipeline(entry.file)

        def check() -> None:
            try:
                record = check_and_record(
                    self.settings,
                    MigrationStore(self.state),
                    spec,
                    entry.file,
                    database,
                    service=self.config.parity.get("service"),
                )
                self._log(
                    {
                        "action": "parity finished",
                        "target": pipeline_name,
                        "clean": record.get("clean"),
                        "differing": record.get("differing"),
                    }
                )
            except SeamError as exc:
                self._log(
                    {"action": "parity failed", "target": pipeline_name, "error": exc.message}
                )
            except Exception:
                log.exception("parity of %s failed", pipeline_name)
            finally:
                with self._lock:
                    self._parity_running.discard(pipeline_name)

        threading.Thread(target=check, name="seam-dashboard-parity", daemon=True).start()
        return {"done": f"parity of {pipeline_name} started; its result shows when it ends"}
