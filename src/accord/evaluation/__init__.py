"""accord.evaluation."""
