"""The catalog's own stages: clean (warts W1..W14), enrich (reference names, provenance) and
map (product changes -> domain events). A pipeline file names them by
`seam.legacy_db.stages.<name>:create`; see `seam.transforms.model` for the stage contract.
"""
