"""The native API's routers, one module per tag: health, analyses, judge, configs."""
