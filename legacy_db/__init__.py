"""The legacy product catalog that seam migrates away from, and the tools to play it.

- `models`:    SQLAlchemy 2.0 models; the module docstring lists every data wart (the contract
               the transform stages clean).
- `engine`:    URLs to engines (`flavour_of`, `make_engine`, `connect`), one `DatabaseError`
               for every connection failure, `create_database` / `drop_database`.
- `generator`: deterministic warty data; `tsv`: the bulk-load text format.
- `seed`:      `seed(url, products=..., seed=..., drop=...)` bulk-loads the catalog.
- `workload`:  `run_workload(url, rate=..., count=... | duration=..., seed=...)` plays the
               legacy application and returns a `WorkloadReport` of every operation.
- `cdc`:       `prepare_cdc(url, cdc_user=..., password=...)` readies the database for
               Debezium and returns a `CdcReport`.

Submodules import SQLAlchemy; this package itself imports nothing, so `seam --help` stays fast.
"""
