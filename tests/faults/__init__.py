"""The fault-injection tier: kill -9 of the stack's parts and of the worker, poison records."""
