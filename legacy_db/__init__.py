"""The worked example: the legacy product catalog that seam migrates away from, the tools to
play it, and its transform (declared pipelines, schemas, and the Python stages they replaced).
See README.md.

- `models`:    SQLAlchemy 2.0 models; the module docstring lists every data wart (the contract
               the transform stages clean).
- `generator`: deterministic warty data; `tsv`: the bulk-load text format.
- `seed`:      `seed(url, products=..., seed=..., drop=...)` bulk-loads the catalog.
- `workload`:  `run_workload(url, rate=..., count=... | duration=..., seed=...)` plays the
               legacy application and returns a `WorkloadReport` of every operation.
- `cli`:       the `seam legacy` commands (a plugin: entry-point group `seam.commands`).
- `stages/`, `rules`: the catalog's clean, enrich and map stages and its cleaning rules, the
               parity reference of its declaration (pipelines/tables/catalog.yaml).
- `files`:     its pipelines/, schemas/ and connectors/ (package data); `export(dir)`.
- `synthetic`: Debezium-shaped change records of generated rows (tests, benchmarks).

Connections go through the toolkit's `seam.connectors.engine`; readiness for CDC is the
toolkit's too (`seam connectors preflight | prepare` on legacy_db/connectors/).

Submodules import SQLAlchemy; this package itself imports nothing, so `seam --help` stays fast.
"""
