"""``python -m brewnet`` is the ``brewnet`` command."""

import sys

from .cli.main import main

sys.exit(main())
