"""``python -m dispatch.cli``: the same as the ``dispatch`` console script."""

import sys

from dispatch.cli import main

sys.exit(main())
