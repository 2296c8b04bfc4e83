"""h5py writes and reads filter 443 after `import roibin`, with no HDF5_PLUGIN_PATH, next to
hdf5plugin in the same process; h5dump and h5repack read the files through roibin.PLUGIN_PATH."""

import os
import subprocess
import sys
import textwrap

import h5py
import numpy
import pytest

import roibin


def test_no_plugin_path_is_needed():
    assert "HDF5_PLUGIN_PATH" not in os.environ, "run the tests without HDF5_PLUGIN_PATH"
    assert h5py.h5z.filter_avail(roibin.FILTER_ID)


@pytest.mark.parametrize(
    "filt",
    [roibin.Auto(), roibin.Fast(), roibin.Strong(), roibin.Filter("bitshuffle|zstd(5)")],
    ids=repr,
)
def test_h5py_lossless_round_trip(tmp_path, frames, filt):
    path = tmp_path / "f.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=frames, chunks=(1, 128, 128), **filt)
    with h5py.File(path, "r") as f:
        d = f["data"]
        assert d.id.get_create_plist().get_filter(0)[0] == roibin.FILTER_ID
        assert numpy.array_equal(d[()], frames)
        assert d.id.get_storage_size() < frames.nbytes


def test_compression_keyword_takes_the_filter_object(tmp_path):
    a = numpy.cumsum(numpy.random.default_rng(3).normal(0, 1, (8, 64, 64)), axis=2).astype("f4")
    with h5py.File(tmp_path / "f.h5", "w") as f:
        d = f.create_dataset("data", data=a, chunks=(1, 64, 64), compression=roibin.Sz(abs=0.01))
        assert numpy.abs(d[()] - a).max() <= 0.01


def test_roibin_keeps_peak_windows_exactly(tmp_path):
    rng = numpy.random.default_rng(4)
    frame = rng.normal(100, 10, (2, 256, 256)).astype("f4")
    for y, x in [(40, 50), (128, 128), (200, 30)]:
        frame[:, y - 2 : y + 3, x - 2 : x + 3] += 5000
    with h5py.File(tmp_path / "f.h5", "w") as f:
        d = f.create_dataset(
            "data", data=frame, chunks=(1, 256, 256), **roibin.Roibin(abs=20, roi=6, peaks="pf8(adc=1000,snr=5)")
        )
        out = d[()]
    for y, x in [(40, 50), (128, 128), (200, 30)]:
        win = (slice(None), slice(y - 6, y + 7), slice(x - 6, x + 7))
        assert numpy.array_equal(out[win], frame[win])
    assert numpy.abs(out - frame).max() <= 20 + 1e-3


def test_hdf5plugin_coexists_in_one_process_and_file(tmp_path, frames):
    import hdf5plugin

    path = tmp_path / "mixed.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("roibin", data=frames, chunks=(1, 128, 128), **roibin.Fast())
        f.create_dataset("zstd", data=frames, chunks=(1, 128, 128), **hdf5plugin.Zstd())
        f.create_dataset("bslz4", data=frames, chunks=(1, 128, 128), **hdf5plugin.Bitshuffle())
    with h5py.File(path, "r") as f:
        for name in ["roibin", "zstd", "bslz4"]:
            assert numpy.array_equal(f[name][()], frames), name


def test_bad_dataset_gets_a_named_error_and_no_unfiltered_data(tmp_path):
    with h5py.File(tmp_path / "f.h5", "w") as f:
        with pytest.raises(ValueError):
            # zfp takes no uint16: HDF5 refuses the dataset instead of storing it unfiltered.
            f.create_dataset("data", data=numpy.zeros((4, 8, 8), "u2"), chunks=(1, 8, 8), **roibin.Zfp(accuracy=1))
        assert "data" not in f


def test_other_clients_read_through_plugin_path(tmp_path, frames, no_plugin_env):
    path = tmp_path / "f.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=frames, chunks=(1, 128, 128), **roibin.Strong())
    assert os.path.isfile(os.path.join(roibin.PLUGIN_PATH, "libh5roibin.so"))
    env = dict(no_plugin_env, HDF5_PLUGIN_PATH=roibin.PLUGIN_PATH)
    dump = subprocess.run(
        ["h5dump", "-d", "/data", "-s", "2,64,64", "-c", "1,1,1", str(path)],
        capture_output=True, text=True, env=env, check=True,
    ).stdout
    assert f"(2,64,64): {frames[2, 64, 64]}" in dump
    out = tmp_path / "plain.h5"
    subprocess.run(["h5repack", "-f", "NONE", str(path), str(out)], env=env, check=True)
    with h5py.File(out, "r") as f:
        assert f["data"].compression is None and numpy.array_equal(f["data"][()], frames)


def test_import_in_a_fresh_interpreter_registers(tmp_path, frames, no_plugin_env):
    # `import roibin` alone (h5py imported by it) is enough in a new process.
    path = tmp_path / "f.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=frames, chunks=(1, 128, 128), **roibin.Auto())
    code = textwrap.dedent(
        f"""
        import roibin, h5py
        print(int(h5py.File({str(path)!r}, "r")["data"][3].sum()))
        """
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=no_plugin_env)
    assert p.returncode == 0, p.stderr
    assert int(p.stdout) == int(frames[3].sum())
