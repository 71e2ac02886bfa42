import sys

from bench.batched.cli import main

sys.exit(main())
