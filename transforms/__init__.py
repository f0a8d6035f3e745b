"""Transform workers: raw Debezium change events to clean, enriched, validated domain events.

- `model`: the `Item` that flows through stages, the `Stage` protocol and `Reject`.
- `stages/`: one small module per stage (decode, clean, enrich, map, validate).
- `rules`: the cleaning rules for the legacy catalog's warts (W1..W14).
- `pipeline`: runs one record through the stages; the outcome is pure data.
- `pipeline_file`: the YAML pipeline declaration.
- `compat`: JSON Schema backward-compatibility checks.
- `worker`: the one module that owns poll, produce, commit and transactions.
"""
