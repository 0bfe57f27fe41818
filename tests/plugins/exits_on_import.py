"""A plugin whose import calls ``sys.exit(3)`` (as a careless script-turned-plugin would)."""

import sys

sys.exit(3)
