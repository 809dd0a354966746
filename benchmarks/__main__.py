"""``python -m benchmarks [--quick] [--out FILE]``: see :mod:`benchmarks.run`."""

import sys

from benchmarks.run import main

sys.exit(main())
