"""accord.aggregation."""
