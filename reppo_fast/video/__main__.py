"""`python -m reppo_fast.video RUN_DIR [options]`: see command.py."""

import sys

from reppo_fast.video import main

sys.exit(main())
