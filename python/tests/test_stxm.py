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
