"""kayenta_py.service."""
