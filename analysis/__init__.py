"""beamwatch: analysis package."""
