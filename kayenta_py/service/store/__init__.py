"""kayenta_py.service.store."""
