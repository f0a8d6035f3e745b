"""Moving capabilities off the legacy system: the facade that routes each capability to
legacy, shadow or new, the parity check that proves both sides agree, and cutover."""
