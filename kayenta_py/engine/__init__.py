"""kayenta_py.engine."""
