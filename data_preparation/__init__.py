"""beamwatch: data_preparation package."""
