"""`python -m app.simulate`: simulated traffic, or with `--rounds` the learning loop, or with `--reward` the
generation loop (see `app.simulate.traffic.main`)."""

import sys

from app.simulate.traffic import main

if __name__ == "__main__":
    sys.exit(main())
