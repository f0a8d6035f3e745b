"""Declared pipelines: a table's cleaning, its entity and its events, declared, not programmed.

A pipeline file declares `tables` (each clean field's rule chain, `rules.py`), the `entity`
(key, state, when a row counts as gone) and its `events` (`model.py`); `reading.py` reads
them with file:line errors; the built-in `clean` and `events` stages run them (`clean.py`,
`entity.py`), in the envelope of `envelope.py`; `derive.py` derives their JSON Schemas. See
the transforms README's "Declared pipelines".
"""
