"""``python -m umbenet_cli``: the ``umbenet`` command (how `umbenet study` starts its jobs)."""
import sys

from umbenet_cli.cli import main

sys.exit(main())
