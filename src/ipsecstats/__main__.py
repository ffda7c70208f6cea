"""``python -m ipsecstats``: the ``ipsecstats`` command."""

import sys

from .cli import main

sys.exit(main())
