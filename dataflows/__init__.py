"""sensorwax dataflows: jobs run with ``python -m bytewax.run dataflows.<job>``."""
