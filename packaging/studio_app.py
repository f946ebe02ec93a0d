"""The entry of the PyInstaller app (packaging/studio.spec): the window by default, any
`studio` command when one is given (`Studio check PROJECT`)."""

import sys

from studio.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
