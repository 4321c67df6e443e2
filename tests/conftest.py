"""Settings for the whole suite."""

from hypothesis import HealthCheck, settings

# Property tests are deterministic (the same examples every run) and carry no time
# limit per example: CI machines are shared and slow at times.
settings.register_profile(
    "accord",
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("accord")
