"""Event-driven services that build their own views from seam's clean topics.

`seam serve SERVICE_FILE` runs a memory image of one declared entity (its latest topic,
loaded, tailed and served over HTTP): see `seam.services.service_file` for the file,
`seam.services.app` for the endpoints, `seam.services.image` for what is kept in memory.
History, as-of and "why" queries come from a pipeline's history topic
(`seam.services.history_index`, `seam history ...`).
"""
