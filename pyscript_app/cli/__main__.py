"""`python -m pyscript_app.cli ...` is `tabgpt ...`."""

import sys

from .main import main

sys.exit(main())
