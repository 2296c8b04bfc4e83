"""DIALS (Debian's `dials`, HDF5 1.10) imports NXmx files whose frames are filter 443 and finds
the same spots as on the original: `dials.import` + `dials.find_spots` with HDF5_PLUGIN_PATH at
the plugin this package bundles."""

import json
import pathlib
import shutil
import subprocess

import h5py
import numpy
import pytest

import roibin
from nxmx import write_skeleton

SHARED = pathlib.Path(__file__).resolve().parents[3] / "shared" / "data"

# Reflection centroids as JSON, read by DIALS's own Python.
CENTROIDS = """
import json, sys
from dials.array_family import flex
r = flex.reflection_table.from_file(sys.argv[1])
print(json.dumps([list(v) for v in r["xyzobs.px.value"]]))
"""


# Debian's dials runs on Debian's numpy and h5py: put them ahead of what pip installed
# system-wide (/usr/local/lib/python3*/dist-packages holds numpy 2, which cctbx cannot load).
DEBIAN_PYTHON = "/usr/lib/python3/dist-packages"


def dials(tmp, env, nxmx_file, name):
    """Spot centroids (x, y, z in pixels) that dials.import + dials.find_spots give."""
    env = dict(env, PYTHONPATH=DEBIAN_PYTHON)
    for cmd in (
        ["dials.import", str(nxmx_file), f"output.experiments={name}.expt"],
        ["dials.find_spots", f"{name}.expt", f"output.reflections={name}.refl", "nproc=1"],
    ):
        p = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True)
        assert p.returncode == 0, f"{cmd[0]} failed on {name}:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}"
    p = subprocess.run(
        ["/usr/bin/python3", "-c", CENTROIDS, f"{name}.refl"], cwd=tmp, env=env, capture_output=True, text=True
    )
    assert p.returncode == 0, p.stderr
    return numpy.array(json.loads(p.stdout)).reshape(-1, 3)


def frames_of(source):
    if source == "eiger4m":
        path = SHARED / "eiger4m_bslz4_frame.h5"
        if not path.exists():
            pytest.skip(f"{path} is absent (the real frames live in ../shared/data)")
        import hdf5plugin  # noqa: F401  (its bitshuffle-LZ4)

        with h5py.File(path, "r") as f:
            return f["/entry/data/data"][()]
    # Two synthetic EIGER-like frames: photon counts, Bragg spots, gaps at the type's maximum.
    rng = numpy.random.default_rng(11)
    f = rng.poisson(3.0, (2, 512, 512)).astype("u4")
    yy, xx = numpy.mgrid[:512, :512]
    for k in range(2):
        for y, x in rng.uniform(20, 492, (60, 2)):
            f[k] += (300 * numpy.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 2.0)).astype("u4")
    f[:, 250:255, :] = 0xFFFFFFFF
    return f


@pytest.mark.parametrize("source", ["synthetic", "eiger4m"])
def test_dials_finds_the_same_spots_in_roibin_files(tmp_path, no_plugin_env, run, source):
    assert shutil.which("dials.find_spots"), "Debian's dials is not installed (scripts/setup.sh --mpi installs it)"
    frames = frames_of(source)
    mask = (frames[0] == numpy.iinfo(frames.dtype).max).astype("u4")
    original = tmp_path / "original.h5"
    write_skeleton(original, frames.shape, mask=mask)
    with h5py.File(original, "a") as f:
        f["/entry/data"].create_dataset("data", data=frames, chunks=(1, *frames.shape[1:]))
    # Transcoded as a facility would: `roibin compress` into a copy of the master's metadata.
    packed = tmp_path / "roibin.h5"
    write_skeleton(packed, frames.shape, mask=mask)
    run("compress", f"{original}:/entry/data/data", f"{packed}:/entry/data/data", "--spec", "strong")
    with h5py.File(packed, "r") as f:
        d = f["/entry/data/data"]
        assert d.id.get_create_plist().get_filter(0)[0] == roibin.FILTER_ID
        assert d.id.get_storage_size() < frames.nbytes / 2

    env = dict(no_plugin_env, HDF5_PLUGIN_PATH=roibin.PLUGIN_PATH)
    want = dials(tmp_path, env, original, "original")
    got = dials(tmp_path, env, packed, "roibin")
    assert len(want) > 20, f"only {len(want)} spots on the original"
    numpy.testing.assert_array_equal(got, want)

    # Without the plugin DIALS cannot read the frames: the test above did use filter 443.
    p = subprocess.run(["dials.find_spots", "roibin.expt", "output.reflections=x.refl"], cwd=tmp_path,
                       env=dict(no_plugin_env, PYTHONPATH=DEBIAN_PYTHON), capture_output=True, text=True)
    assert p.returncode != 0 and "plugin" in (p.stdout + p.stderr).lower(), p.stdout[-1000:]
