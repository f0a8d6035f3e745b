"""Transform workers: raw Debezium change events to clean, enriched, validated domain events.

- `model`: the `Item` that flows through stages, the `Stage` protocol and `Reject`.
- `stages/`: the built-in stages (decode, validate); a pipeline names its own by
  package.module:callable (the worked example's live in `seam.legacy_db.stages`).
- `provenance`: where a change comes from, as the events carry it.
- `pipeline`: runs one record through the stages; the outcome is pure data.
- `pipeline_file`: the YAML pipeline declaration.
- `fast_path`: the hook through which a pipeline names a compiled version of its stages.
- `compat`: JSON Schema backward-compatibility checks.
- `worker`: the one module that owns poll, produce, commit and transactions.
"""
