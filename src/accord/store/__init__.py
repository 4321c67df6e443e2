"""accord.store."""
