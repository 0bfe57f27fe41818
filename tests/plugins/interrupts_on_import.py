"""A plugin whose import raises ``KeyboardInterrupt`` (a stray interrupt handler's doing)."""

raise KeyboardInterrupt
