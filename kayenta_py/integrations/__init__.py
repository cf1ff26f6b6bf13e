"""kayenta_py.integrations."""
