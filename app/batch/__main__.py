"""`python -m app.batch covers|captions|features ...` (see `app.batch`)."""

import sys

from app.batch.run import main

sys.exit(main())
