"""The legacy product catalog that seam migrates away from, and the tools to play it.

- `models`:    SQLAlchemy 2.0 models; the module docstring lists every data wart (the contract
               the transform stages clean).
- `generator`: deterministic warty data; `tsv`: the bulk-load text format.
- `seed`:      `seed(url, products=..., seed=..., drop=...)` bulk-loads the catalog.
- `workload`:  `run_workload(url, rate=..., count=... | duration=..., seed=...)` plays the
               legacy application and returns a `WorkloadReport` of every operation.

Connections go through the toolkit's `seam.connectors.engine`; readiness for CDC is the
toolkit's too (`seam connectors preflight | prepare` on examples/connectors/).

Submodules import SQLAlchemy; this package itself imports nothing, so `seam --help` stays fast.
"""
