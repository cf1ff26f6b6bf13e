"""kayenta_py.http."""
