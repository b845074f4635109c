"""beamwatch: enterprise_tools package."""
