"""`python -m tools.cli ...`: the same as `intent ...` (the tests start processes so)."""

from tools.cli.main import main

main()
