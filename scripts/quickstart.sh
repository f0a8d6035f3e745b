#!/usr/bin/env bash
# seam's main job on the embedded local stack, from nothing: install what is missing, bring
# the stack up, seed the legacy catalog in PostgreSQL and MariaDB, make both ready for CDC,
# provision the Debezium connectors from legacy_db/connectors/, turn the captured changes into
# validated domain events (one transform pass per database, exactly once, until caught up),
# keep the products as a table of another database (legacy_db/views/, a JDBC sink), and show
# what runs and what the topics hold.
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
$seam stack status
$seam connectors status
$seam streams list --prefix catalog
