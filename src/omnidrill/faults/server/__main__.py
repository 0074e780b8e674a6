"""`python -m omnidrill.faults.server`: run the fault proxy."""

import sys

from omnidrill.faults.server.app import main

sys.exit(main())
