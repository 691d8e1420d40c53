"""`python -m postfx ...`: the same as the `postfx` command."""
from .cli import main

raise SystemExit(main())
