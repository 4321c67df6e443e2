"""accord.simulation."""
