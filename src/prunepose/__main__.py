"""``python -m prunepose`` runs the command-line tool (same as the ``prunepose`` script)."""

from prunepose.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
