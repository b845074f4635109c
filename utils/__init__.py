"""beamwatch: utils package."""
