"""kayenta_py.reports."""
