"""``python -m realtime.still``: stylise one image (Gatys optimisation or a trained model).

The command lives in :mod:`realtime.cli.still`; this module keeps the short entry point.
"""

from __future__ import annotations

import sys

from realtime.cli.still import main

if __name__ == "__main__":
    sys.exit(main())
