"""`python -m studies ...` is `hpstudy ...` (workers are started this way)."""

import sys

from studies.cli import main

sys.exit(main())
