"""kayenta_py.integrations.kayenta."""
