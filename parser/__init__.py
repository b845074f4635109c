"""beamwatch: parser package."""
