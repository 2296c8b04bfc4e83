"""roibin.stxm: the STXM engine from Python, equal to `roibin stxm` on the same scan."""

import json

import numpy
import pytest

import roibin


@pytest.fixture(scope="module")
def scans(tmp_path_factory, roibin_bin):
    import subprocess

    d = tmp_path_factory.mktemp("stxm")
    bslz4, plain, packed = d / "scan.h5", d / "plain.h5", d / "scan_roibin.h5"
    synth = ["synth", "--layout", "stxm", "--scan", "12x12", "--frame", "64x64"]
    for args in (
        [*synth, str(bslz4), "--bslz4"],
        [*synth, str(plain)],
        ["compress", f"{plain}:/entry/data/data", str(packed), "--spec", "bitshuffle|zstd(3)"],
    ):
        subprocess.run([roibin_bin, *args], check=True, capture_output=True)
    return bslz4, packed


def cli_map(run, path, out, *args):
    run("stxm", str(path), "--no-cache", "--json", "--out", str(out), *args)
    return numpy.array(json.loads(out.read_text())["data"], dtype="f8")


@pytest.mark.parametrize("signal", ["Itot", "comh"])
def test_equals_the_cli(scans, run, tmp_path, signal):
    bslz4, packed = scans
    want = cli_map(run, bslz4, tmp_path / "m.json", "--scan", "12x12", "--signal", signal)
    for path in (bslz4, packed):
        got = roibin.stxm(path, scan=(12, 12), signal=signal)
        assert got.shape == (12, 12)
        numpy.testing.assert_allclose(got, want, rtol=1e-12)


def test_geometry_parameters_and_info(scans, run, tmp_path):
    bslz4, _ = scans
    got, info = roibin.stxm(
        bslz4, "/entry/data/data", scan=(12, 12), algo="radial", radial=((32, 32), (0, 24), 6),
        binning=(2, 2), mask="none", return_info=True,
    )
    assert got.shape == (12, 12, 6)
    assert info["algo"] == "radial" and info["stats"]["frames"] == 144
    assert "radial=32,32;0,24;6" in info["request"]
    want = cli_map(
        run, bslz4, tmp_path / "r.json", "--scan", "12x12", "--algo", "radial",
        "--radial", "32,32;0,24;6", "--binning", "2,2", "--mask", "none",
    )
    numpy.testing.assert_allclose(got, want.reshape(got.shape), rtol=1e-12)


def test_request_errors_name_the_parameter(scans):
    bslz4, _ = scans
    with pytest.raises(roibin.SpecError, match="roi"):
        roibin.stxm(bslz4, roi=(1, 2, 3))
    with pytest.raises(roibin.SpecError, match="signal|brightfield"):
        roibin.stxm(bslz4, scan=(12, 12), signal="nope")
    with pytest.raises(roibin.RoibinError):
        roibin.stxm(bslz4.parent / "missing.h5")
    names = [a["name"] for a in roibin.stxm_algorithms()]
    assert "brightfield" in names and "radial" in names


@pytest.mark.parametrize("mask", ["auto", "none"])
def test_radial_equals_pyfai(scans, mask):
    """`algo=radial` against pyFAI's integrate1d without pixel splitting, frame by frame.

    pyFAI's geometry is set so that its `r_mm` is our radius in pixels: 1 mm pixels, the
    point of normal incidence at the centre of pixel (cx, cy), no solid-angle correction.
    The centre lies on a pixel corner, so every squared radius is an integer plus a half and
    no pixel centre is near a ring edge (float32 positions cannot tip one over). Sentinels
    (0xFFFFFFFF) count 0, as docs/stxm.md says; the file's pixel mask leaves pixels out."""
    import h5py
    import hdf5plugin  # noqa: F401 (registers bitshuffle-LZ4 with h5py)
    from pyFAI.integrator.azimuthal import AzimuthalIntegrator

    bslz4, _ = scans
    (cx, cy), (qmin, qmax), nq = (30.5, 33.5), (0.0, 30.0), 30
    got = roibin.stxm(bslz4, scan=(12, 12), algo="radial", radial=((cx, cy), (qmin, qmax), nq), mask=mask)
    with h5py.File(bslz4) as f:
        frames = f["/entry/data/data"][()]
        bad = f["/entry/instrument/detector/detectorSpecific/pixel_mask"][()] != 0
    assert (frames == 0xFFFFFFFF).any(), "the scan should hold sentinels to count as 0"
    frames = numpy.where(frames == 0xFFFFFFFF, 0, frames).astype("f8")
    pix = 1e-3
    ai = AzimuthalIntegrator(dist=0.1, poni1=(cy + 0.5) * pix, poni2=(cx + 0.5) * pix, pixel1=pix, pixel2=pix)
    want = numpy.array([
        ai.integrate1d(
            frame, nq, unit="r_mm", radial_range=(qmin, qmax), method=("no", "histogram", "cython"),
            correctSolidAngle=False, mask=bad if mask == "auto" else None,
        ).intensity
        for frame in frames
    ]).reshape(got.shape)
    # pyFAI sums float32 values (1e-7); the profiles vary over the scan, so this is no
    # comparison of a constant.
    assert numpy.ptp(want[..., 5]) > 0
    numpy.testing.assert_allclose(got, want, rtol=1e-6)
