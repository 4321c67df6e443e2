"""The configuration of ``accord demo``, shipped with the package."""
