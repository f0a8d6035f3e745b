"""Services that consume the clean topics: views built from a pipeline's outputs (history,
as-of and "why" queries from its history topic: `seam.services.history_index`)."""
