"""``python -m kayenta_py.cli``: the command line."""

import sys

from kayenta_py.cli.main import main

sys.exit(main())
