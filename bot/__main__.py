"""``python -m bot`` is the ``voicebot`` command."""

import sys

from bot.cli import main

sys.exit(main())
