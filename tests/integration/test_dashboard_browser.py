"""`seam dashboard` in headless Chromium (Debian's /usr/bin/chromium driven by Playwright)
against the real stack: a seeded PostgreSQL catalog captured by its own connector, a
transform worker serving its metrics, a facade shadowing real HTTP upstreams with one planted
mismatch. The page loads with no console error, shows each panel's real values, follows the
stack when it changes (a workload runs, a route moves), and acts only when allowed: a pause
asks for confirmation and takes effect; a read-only dashboard has no buttons and answers 403.
A screenshot is kept under $SEAM_TEST_ARTIFACTS (else the test's tmp dir) and its path printed.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from seam.settings import Settings
from tests.browser import CHROMIUM, CHROMIUM_ARGS
from tests.conftest import free_port, start_transform_worker
from tests.facade_procs import SHADOW_ROUTES as ROUTES
from tests.facade_procs import Facade, Proc, Upstream, seam, wait_until
from tests.integration.test_transform_e2e import Catalog, catalog  # noqa: F401 - fixture

pytestmark = pytest.mark.integration


def artifacts_dir(tmp_path: Path) -> Path:
    given = os.environ.get("SEAM_TEST_ARTIFACTS")
    folder = Path(given) if given else tmp_path / "artifacts"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Dashboard(Proc):
    def __init__(self, folder: Path, *args: str) -> None:
        super().__init__(
            [sys.executable, "-m", "seam.cli.main", "dashboard", "--port", "{port}", *args],
            folder / f"dashboard-{len(list(folder.glob('dashboard-*.log')))}.log",
            "/api/state",
        )


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail("no /usr/bin/chromium: run scripts/setup.sh (it installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # a fresh user data dir
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
        )
        try:
            yield context
        finally:
            context.close()


@pytest.mark.parametrize("catalog", ["postgres"], indirect=True)
def test_dashboard_shows_the_stack_follows_it_and_acts_only_when_allowed(
    stack: Settings,
    catalog: Catalog,  # noqa: F811
    browser: Any,
    tmp_path: Path,
) -> None:
    from seam.connectors.client import ConnectClient
    from seam.legacy_db.workload import run_workload

    client = ConnectClient.from_settings(stack)
    metrics_port = free_port()
    worker = start_transform_worker(
        catalog.pipeline, "w1", "--metrics-port", str(metrics_port), "--progress-interval", "1"
    )
    legacy, new = Upstream("legacy", tmp_path), Upstream("new", tmp_path)
    procs: list[Proc] = [legacy, new]
    try:
        # The facade: one capability in shadow, one planted mismatch among 5 comparisons.
        for key in ("1", "2", "3", "4"):
            legacy.put(key, {"title": f"thing {key}"})
            new.put(key, {"title": f"thing {key}"})
        legacy.put("5", {"title": "Red"})
        new.put("5", {"title": "Green"})
        legacy.control(position="lsn:0/10")
        routes = tmp_path / "routes.yaml"
        routes.write_text(ROUTES.format(legacy=legacy.url, new=new.url))
        state = tmp_path / "state"
        facade = Facade(routes, state)
        procs.append(facade)
        for key in ("1", "2", "3", "4", "5"):
            facade.client.get(f"/items/{key}")
        shadow = lambda: facade.status()["capabilities"]["details"]["shadow"]  # noqa: E731
        wait_until(lambda: shadow()["match"] + shadow()["mismatch"] == 5, 20, "5 comparisons")

        metrics = f"http://127.0.0.1:{metrics_port}/metrics"
        wait_until(
            lambda: _worker_count(metrics, "records_in") > 0, 90, "the worker's first records"
        )
        board = tmp_path / "dashboard.yaml"
        board.write_text(
            json.dumps(
                {
                    "pipelines": [{"file": str(catalog.pipeline), "metrics": metrics}],
                    "services": [f"http://127.0.0.1:{free_port()}"],  # nothing listens there
                    "slots": [catalog.url],
                    "connectors": [catalog.connector],
                }
            )
        )
        dashboard = Dashboard(
            tmp_path, "--file", str(board), "--state", str(state), "--interval", "1",
            "--allow-actions",
        )  # fmt: skip
        procs.append(dashboard)

        page = browser.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        began = time.monotonic()
        page.goto(dashboard.url, wait_until="load")
        connector = page.locator(f'tr[data-connector="{catalog.connector}"]')
        connector.locator("[data-testid=connector-state]").wait_for()
        print(f"page load to the first panel: {(time.monotonic() - began) * 1000:.0f} ms")

        # Each panel shows the stack's real values.
        assert connector.locator("[data-testid=connector-state]").inner_text() == "RUNNING"
        assert client.status(catalog.connector)["connector"]["state"] == "RUNNING"
        slot_row = page.locator("#slots tr[data-slot]").first
        slot_row.wait_for()
        pipeline = page.locator('[data-pipeline="catalog"]')
        shown_in = lambda: _number(pipeline.locator("[data-testid=records-in]").inner_text())  # noqa: E731
        wait_until(lambda: shown_in() > 0, 20, "the pipeline's records in on the page")
        # The page shows the worker's own count (between two readings of it).
        assert shown_in() <= _worker_count(metrics, "records_in")
        assert "in " in pipeline.locator("[data-testid=balance]").inner_text()
        assert "no answer from" in page.locator("#services").inner_text()
        cap = page.locator('tr[data-capability="details"]')
        assert cap.locator("[data-testid=capability-mode]").inner_text() == "shadow"
        wait_until(lambda: "20.00%" in cap.inner_text(), 15, "1 mismatch of 5 compared")
        assert "never run" in cap.inner_text()  # parity of thing

        # The page follows the stack: a workload runs, a route moves.
        before = shown_in()
        run_workload(catalog.url, rate=0, count=40, seed=3)
        wait_until(lambda: shown_in() > before, 60, "the workload's changes on the page")
        moved = seam("migrate", "route", "details", "--mode", "new", "--state", str(state))
        assert moved.returncode == 0, moved.stderr
        wait_until(
            lambda: cap.locator("[data-testid=capability-mode]").inner_text() == "new",
            15,
            "the new mode on the page",
        )

        # An action asks first, then takes effect (and is logged with who and when).
        asked: list[str] = []

        def answer(dialog: Any) -> None:
            asked.append(dialog.message)
            dialog.accept()

        page.on("dialog", answer)
        connector.locator("button[data-action=pause]").click()
        wait_until(
            lambda: client.status(catalog.connector)["connector"]["state"] == "PAUSED",
            30,
            "the connector paused",
        )
        assert asked == [f"Pause the connector {catalog.connector}?"]
        wait_until(
            lambda: connector.locator("[data-testid=connector-state]").inner_text() == "PAUSED",
            15,
            "PAUSED on the page",
        )
        actions_log = (state / "dashboard/actions.jsonl").read_text().splitlines()
        logged = json.loads(actions_log[-1])
        assert (logged["action"], logged["target"]) == ("pause", catalog.connector)
        assert logged["by"]
        assert logged["at"]
        connector.locator("button[data-action=resume]").click()
        wait_until(
            lambda: client.status(catalog.connector)["connector"]["state"] == "RUNNING",
            30,
            "the connector running again",
        )
        wait_until(
            lambda: connector.locator("[data-testid=connector-state]").inner_text() == "RUNNING",
            15,
            "RUNNING on the page",
        )

        # A route moved from the page: the same record `seam migrate route` writes.
        cap.locator('select[data-mode-for="details"]').select_option("split 10%")
        cap.locator("button[data-action=route]").click()
        wait_until(
            lambda: cap.locator("[data-testid=capability-mode]").inner_text() == "split 10%",
            15,
            "split 10% on the page",
        )
        assert asked[-1] == 'Set the mode of details to "split 10%"?'
        status = seam("migrate", "status", "--json", "--state", str(state))
        wait_until(
            lambda: (
                json.loads(seam("migrate", "status", "--json", "--state", str(state)).stdout)[
                    "capabilities"
                ][0]["mode"]
                == "split 10%"
            ),
            15,
            "the running facade serving split 10%",
        )
        assert status.returncode == 0, status.stderr

        # Secrets never reach the page: Connect's password (the private stack has basic
        # auth), the databases' passwords of the settings, the slots database's URL.
        served = httpx.get(f"{dashboard.url}/api/state").text + page.content()
        secrets = [catalog.url, *(urlsplit(u.reveal()).password for u in stack.databases.values())]
        auth = stack.connect_auth()
        secrets += [auth[1]] if auth else []
        for secret in filter(None, secrets):
            assert secret not in served

        shot = artifacts_dir(tmp_path) / "dashboard.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot: {shot}")
        assert not errors, errors

        # Read-only (the default): no action buttons, and the endpoint refuses.
        readonly = Dashboard(tmp_path, "--file", str(board), "--state", str(tmp_path / "none"))
        procs.append(readonly)
        page.goto(readonly.url)
        page.locator(f'tr[data-connector="{catalog.connector}"]').wait_for()
        assert page.locator("button[data-action]").count() == 0
        assert "no facade state in" in page.locator("#facade").inner_text()
        refused = httpx.post(
            f"{readonly.url}/api/action",
            json={"action": "pause", "target": catalog.connector, "confirmed": True},
            headers={"X-Seam-Dashboard": "1"},
        )
        assert refused.status_code == 403
        assert client.status(catalog.connector)["connector"]["state"] == "RUNNING"
        assert not errors, errors
    finally:
        for proc in reversed(procs):
            proc.close()
        worker.terminate()
        worker.communicate(timeout=30)  # and closes its pipes


def _worker_count(url: str, name: str) -> int:
    from seam.transforms.status import parse_metrics

    try:
        return int(parse_metrics(httpx.get(url, timeout=5).text).get(name) or 0)
    except httpx.HTTPError:
        return 0


def _number(text: str) -> int:
    digits = text.replace(",", "").strip()
    return int(digits) if digits.isdigit() else -1
