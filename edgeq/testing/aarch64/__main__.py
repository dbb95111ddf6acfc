"""`python -m edgeq.testing.aarch64 build|start`: build or start the emulated board by hand."""

import sys

from edgeq.testing.aarch64 import main

sys.exit(main())
