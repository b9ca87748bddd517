"""``python -m devstack exec -- CMD ...``: see the package docstring."""

import sys

from devstack.cli import main

sys.exit(main())
