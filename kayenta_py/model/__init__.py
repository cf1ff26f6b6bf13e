"""kayenta_py.model."""
