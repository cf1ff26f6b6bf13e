"""kayenta_py.integrations.slack."""
