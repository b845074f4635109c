"""beamwatch: testing package."""
