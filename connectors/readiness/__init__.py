"""CDC readiness: one model of what a connector needs of its database, and its fixes.

- `model`:     `Check` (a requirement as found: pass/warn/fail, why, how to fix, and the
               `Statement`s seam would run), `Report`, `Target` (what a rendered spec needs).
- `postgres`, `mysql`: the checks of each database flavour, with their fixes.
- `sql`:       quoting and seam's helper tables (heartbeat, signals).
- `preflight`: `run_preflight(rendered, settings)`: the checks, as the CDC user.
- `prepare`:   `plan(...)` / `apply(...)`: the same checks as the administrator, and the fixes.

`seam connectors preflight` reports the checks; `seam connectors prepare` applies the fixes.
Both are driven by the tables the connector specs capture, for any database.
"""
