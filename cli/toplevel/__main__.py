"""`python -m balerc`: the command line."""

from balerc.cli.main import main

main()
