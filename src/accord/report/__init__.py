"""Reports with plots (the ``report`` extra: matplotlib), written as files."""
