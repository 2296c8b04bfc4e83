"""Shared helpers for the h5py client scripts. Nothing of roibin is imported: the plugin is
found by HDF5 through HDF5_PLUGIN_PATH, as a user's h5py would find it."""
import numpy as np

FILTER_ID = 443
USER_MAGIC = 0x52425501

DTYPES = ["u1", "u2", "u4", "i2", "i4", "f4", "f8"]


def opts(spec):
    """compression_opts for a spec: the user form of roibin's cd_values (see `roibin cdvalues`)."""
    b = spec.encode()
    n = len(b)
    b += b"\0" * (-len(b) % 4)
    return (USER_MAGIC, n) + tuple(int.from_bytes(b[i:i + 4], "little") for i in range(0, len(b), 4))


def sample(dtype, shape, seed=0):
    """Detector-like data: sparse small counts, a few bright pixels, compressible but not trivial."""
    rng = np.random.default_rng(seed)
    x = rng.poisson(0.3, shape).astype(np.float64)
    x.flat[rng.integers(0, x.size, max(1, x.size // 200))] += rng.integers(10, 100)
    dt = np.dtype(dtype)
    if dt.kind == "f":
        # Calibrated ADU with read noise kept to 1/8 ADU, as calibration pipelines store them.
        return (x * 45.0 + np.round(rng.normal(0, 0.5, shape) * 8) / 8).astype(dt)
    if dt.kind == "i":
        x -= 1  # exercise negatives
    return x.astype(dt)


def filter_mask_all_zero(ds):
    """True when every stored chunk went through every filter (h5py marks filters optional)."""
    return all(ds.id.get_chunk_info(i).filter_mask == 0 for i in range(ds.id.get_num_chunks()))


def expect_error(what, fn, *needles, absent=()):
    """Run fn; it must raise an error whose message holds every needle and none of `absent`."""
    try:
        fn()
    except (ValueError, OSError, RuntimeError) as e:
        msg = str(e)
        for n in needles:
            assert n in msg, "%s: %r not in %r" % (what, n, msg)
        for n in absent:
            assert n not in msg, "%s: %r leaked into %r" % (what, n, msg)
        print("%s -> %s: %s" % (what, type(e).__name__, msg.splitlines()[0][:200] if msg else ""))
        return e
    raise AssertionError("%s: no error raised" % what)
