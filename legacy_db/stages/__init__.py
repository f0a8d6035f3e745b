"""The catalog's own stages, from before it was declared: clean (warts W1..W14), enrich
(reference names, provenance) and map (product changes -> domain events). The catalog's
pipelines now run its declaration (pipelines/tables/catalog.yaml); these stay as the
reference tests/unit/test_declared_catalog.py holds the declaration to, byte for byte. A
pipeline file can still name them by `seam.legacy_db.stages.<name>:create`.
"""
