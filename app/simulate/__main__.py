"""`python -m app.simulate`: traffic, or with `--rounds` the learning loop, or with `--reward` the generation loop
(`app.simulate.cli`)."""

import sys

from app.simulate.cli import main

if __name__ == "__main__":
    sys.exit(main())
