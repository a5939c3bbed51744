"""sensorwax dataflows: jobs run with ``python -m bytewax.run dataflows.<job>``."""

from dataflows.native import choose

# Before any submodule is imported: the compiled hot modules, when built and current.
choose(__path__)
