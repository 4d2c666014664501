"""`python -m effcourse` is the `effcourse` command."""
import sys

from .cli import main

sys.exit(main())
