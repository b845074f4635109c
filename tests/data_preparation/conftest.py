import pytest

from enterprise_tools.simulator import SimulatorParams, simulate_archive

SIMULATION = SimulatorParams.tiny(seed=3, corrupt_files=2)


@pytest.fixture(scope="session")
def simulated_archive(tmp_path_factory):
    """A tiny simulated SNS archive (~1.3 h, ~140 files), written once per test session."""
    root = tmp_path_factory.mktemp("simulated") / "archive"
    simulate_archive(root, SIMULATION, workers=2)
    return root
