"""`python -m bench.gpu_check`: see bench/gpu_check/__init__.py and docs/gpu_check.md."""

import sys

from bench.gpu_check.check import main

sys.exit(main())
