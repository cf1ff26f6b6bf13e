"""kayenta_py.config."""
