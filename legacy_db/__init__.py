"""The worked example: the legacy product catalog that seam migrates away from, the tools to
play it, and its transform (stages, pipelines, schemas, compiled fast path). See README.md.

- `models`:    SQLAlchemy 2.0 models; the module docstring lists every data wart (the contract
               the transform stages clean).
- `generator`: deterministic warty data; `tsv`: the bulk-load text format.
- `seed`:      `seed(url, products=..., seed=..., drop=...)` bulk-loads the catalog.
- `workload`:  `run_workload(url, rate=..., count=... | duration=..., seed=...)` plays the
               legacy application and returns a `WorkloadReport` of every operation.
- `cli`:       the `seam legacy` commands (a plugin: entry-point group `seam.commands`).
- `stages/`, `rules`: the catalog's clean, enrich and map stages and its cleaning rules.
- `files`:     its pipelines/, schemas/ and connectors/ (package data); `export(dir)`.
- `fast_path`: the compiled fast path of its chain (the Rust crate in native/).
- `synthetic`: Debezium-shaped change records of generated rows (tests, benchmarks).

Connections go through the toolkit's `seam.connectors.engine`; readiness for CDC is the
toolkit's too (`seam connectors preflight | prepare` on legacy_db/connectors/).

Submodules import SQLAlchemy; this package itself imports nothing, so `seam --help` stays fast.
"""
