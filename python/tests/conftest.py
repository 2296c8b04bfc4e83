"""Shared fixtures: the repository's `roibin` binary (built by scripts/test.sh) and frames."""

import os
import pathlib
import subprocess

import numpy
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def roibin_bin() -> str:
    path = os.environ.get("ROIBIN_BIN") or str(REPO / "target" / "release" / "roibin")
    assert os.access(path, os.X_OK), f"{path} missing: run cargo build --release first"
    return path


@pytest.fixture
def run(roibin_bin):
    """Run the roibin CLI; fail the test with its stderr when it fails."""

    def go(*args: str, env=None) -> str:
        p = subprocess.run([roibin_bin, *args], capture_output=True, text=True, env=env)
        assert p.returncode == 0, p.stderr
        return p.stdout

    return go


@pytest.fixture(scope="session")
def frames() -> numpy.ndarray:
    """Four 128×128 uint16 photon-count frames with a few bright spots."""
    rng = numpy.random.default_rng(7)
    f = rng.poisson(2.0, (4, 128, 128)).astype(numpy.uint16)
    for k in range(4):
        for y, x in [(20, 30), (64, 64), (100, 17)]:
            f[k, y - 1 : y + 2, x - 1 : x + 2] += numpy.uint16(400 + 50 * k)
    return f


@pytest.fixture
def no_plugin_env() -> dict:
    """The environment without HDF5_PLUGIN_PATH (what `import roibin` must make unnecessary)."""
    env = dict(os.environ)
    env.pop("HDF5_PLUGIN_PATH", None)
    return env
