"""accord.transforms."""
