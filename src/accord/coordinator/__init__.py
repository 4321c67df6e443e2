"""accord.coordinator."""
