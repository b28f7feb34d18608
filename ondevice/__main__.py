"""``python -m ondevice`` runs the CLI (also under torchrun)."""

import sys

from .cli import main

sys.exit(main())
