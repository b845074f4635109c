"""beamwatch: training package."""
