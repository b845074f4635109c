"""beamwatch: benchmarks package."""
