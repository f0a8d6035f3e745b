#!/usr/bin/env bash
# seam's main job on the embedded local stack, from nothing: install what is missing, bring
# the stack up, seed the legacy catalog in PostgreSQL and MariaDB, make both ready for CDC,
# provision the Debezium connectors from legacy_db/connectors/, turn the captured changes into
# validated domain events (one transform pass per database, exactly once, until caught up),
# keep the products as a table of another database (legacy_db/views/, a JDBC sink), serve
# them from memory for one request (`seam serve`), ask the legacy app (`seam legacy app`) for
# one product, and show what runs and what the topics hold.
# Safe to run again: every step is idempotent (an existing catalog is kept).
# Pass --products N to choose the catalog size (default 10000).
set -euo pipefail
cd "$(dirname "$0")/.."
products=10000
if [ "${1:-}" = "--products" ]; then products="$2"; fi

bash scripts/setup.sh
seam=.venv/bin/seam
$seam stack up
for db in postgres mariadb; do
  $seam legacy seed --database "$db" --products "$products" --keep-existing
done
$seam connectors prepare --yes legacy_db/connectors
$seam connectors apply --wait legacy_db/connectors
$seam transform check-schemas legacy_db/schemas
for pipeline in legacy_db/pipelines/catalog.yaml legacy_db/pipelines/catalog-mariadb.yaml; do
  $seam transform run "$pipeline" --until-caught-up --instance-id quickstart
done
# The products as a table of a new service's own database (catalog_view), kept by the JDBC sink.
$seam connectors prepare --yes legacy_db/views
$seam connectors apply --wait legacy_db/views
# The catalog's memory image (`seam serve`): loaded from the latest topic, asked for one
# product, stopped (SIGTERM: it writes its snapshot for a fast start next time).
$seam serve legacy_db/services/catalog.yaml &
serve_pid=$!
trap 'kill "$serve_pid" 2>/dev/null || true' EXIT
.venv/bin/python - <<'PY'
import json, sys, time, urllib.error, urllib.request

base = "http://127.0.0.1:8780"
deadline = time.monotonic() + 120
while True:
    try:
        with urllib.request.urlopen(f"{base}/ready", timeout=5) as answer:
            break
    except (urllib.error.URLError, ConnectionError):
        if time.monotonic() > deadline:
            sys.exit("seam serve was not ready within 120 s")
        time.sleep(0.2)
with urllib.request.urlopen(f"{base}/product?limit=1", timeout=5) as answer:
    page = json.load(answer)
key = page["keys"][0]
print(f"curl {base}/product/{key}")
with urllib.request.urlopen(f"{base}/product/{key}", timeout=5) as answer:
    print(json.dumps(json.load(answer), indent=2))
PY
kill -TERM "$serve_pid"
wait "$serve_pid" || true
trap - EXIT
# The legacy application itself (`seam legacy app`): started over the PostgreSQL catalog, asked
# for one product (its answer says the database position it reflects), stopped with SIGTERM.
$seam legacy app --database postgres --port 8790 &
app_pid=$!
trap 'kill "$app_pid" 2>/dev/null || true' EXIT
.venv/bin/python - <<'PY'
import json, sys, time, urllib.error, urllib.request

base = "http://127.0.0.1:8790"
deadline = time.monotonic() + 60
while True:
    try:
        with urllib.request.urlopen(f"{base}/products/1", timeout=5) as answer:
            position = answer.headers["Seam-Legacy-Position"]
            product = json.load(answer)
            break
    except (urllib.error.URLError, ConnectionError):
        if time.monotonic() > deadline:
            sys.exit("seam legacy app did not answer within 60 s")
        time.sleep(0.2)
print(f"curl -i {base}/products/1")
print(f"Seam-Legacy-Position: {position}")
print(json.dumps(product, indent=2, ensure_ascii=False))
PY
kill -TERM "$app_pid"
wait "$app_pid"
trap - EXIT
$seam stack status
$seam connectors status
$seam streams list --prefix catalog
# The migration dashboard: one page over the connectors, slots, pipelines, services and the
# facade (read-only; --allow-actions lets it pause connectors, move routes and run parity).
echo "open the migration dashboard: $seam dashboard --file legacy_db/dashboard.yaml, then http://127.0.0.1:8760"
