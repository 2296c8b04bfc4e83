"""encode/decode/info/codecs on numpy arrays, and their errors."""

import concurrent.futures

import numpy
import pytest

import roibin

DTYPES = ["u1", "u2", "u4", "u8", "i1", "i2", "i4", "i8", "f4", "f8"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec", ["auto", "fast", "strong", "bitshuffle|zstd(5)", "delta|lz4"])
def test_lossless_round_trip_every_dtype(dtype, spec):
    rng = numpy.random.default_rng(1)
    a = (rng.poisson(5, (3, 40, 33)) - (2 if dtype[0] == "i" else 0)).astype(dtype)
    chunk = roibin.encode(a, spec)
    out = roibin.decode(chunk)
    assert out.dtype == a.dtype and out.shape == a.shape
    assert numpy.array_equal(out, a)
    assert roibin.info(chunk)["shape"] == a.shape


def test_sz_and_zfp_keep_their_bounds():
    rng = numpy.random.default_rng(2)
    a = numpy.cumsum(rng.normal(0, 1, (64, 64)), axis=1).astype("f4")
    for spec, bound in [("sz(abs=0.05)", 0.05), ("zfp(accuracy=0.01)", 0.01)]:
        chunk = roibin.encode(a, spec)
        out = roibin.decode(chunk)
        assert numpy.abs(out.astype("f8") - a).max() <= bound
        assert len(chunk) < a.nbytes / 2, spec


def test_info_describes_the_chunk(frames):
    chunk = roibin.encode(frames, "bitshuffle|lz4")
    i = roibin.info(chunk)
    assert i["dtype"] == "u16" and i["shape"] == frames.shape
    assert i["spec"] == "bitshuffle|lz4" and not i["stored_raw"]
    assert i["nbytes"] == frames.nbytes and i["stored_bytes"] == len(chunk)
    assert i["ratio"] == pytest.approx(frames.nbytes / len(chunk))


def test_non_contiguous_and_big_endian_inputs_are_encoded_as_their_values(frames):
    t = frames[0].T  # a view, not C-contiguous
    assert numpy.array_equal(roibin.decode(roibin.encode(t, "fast")), t)
    be = frames[1].astype(">u2")
    out = roibin.decode(roibin.encode(be, "fast"))
    assert out.dtype == numpy.dtype("u2") and numpy.array_equal(out, be)


def test_threads_never_change_the_bytes(frames):
    one = roibin.encode(frames, "chunked(codec=bitshuffle|zstd(3))", threads=1)
    two = roibin.encode(frames, "chunked(codec=bitshuffle|zstd(3))", threads=2)
    assert one == two


def test_concurrent_calls_from_python_threads(frames):
    # The GIL is released while coding: several Python threads encode at once, each correct.
    def job(k):
        a = numpy.roll(frames, k, axis=2)
        return numpy.array_equal(roibin.decode(roibin.encode(a, "strong")), a)

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        assert all(pool.map(job, range(16)))


def test_codecs_lists_the_registry_with_options():
    by_name = {c["name"]: c for c in roibin.codecs()}
    assert {"roibin", "sz", "zfp", "bitshuffle", "lz4", "zstd", "dispersion"} <= set(by_name)
    sz = {o["name"]: o for o in by_name["sz"]["options"]}
    assert "abs" in sz and sz["level"]["default"] == "3" and sz["abs"]["doc"]
    assert by_name["zfp"]["dtypes"] == ["f32", "f64", "i32", "i64"]


def test_spec_errors_name_the_option():
    with pytest.raises(roibin.SpecError, match="sz:abz"):
        roibin.Sz(abz=1)
    with pytest.raises(roibin.SpecError, match="zstd:level"):
        roibin.check_spec("zstd(level=99)")
    with pytest.raises(roibin.SpecError, match="unknown codec `zsdt`"):
        roibin.encode(numpy.zeros(8, "u2"), "zsdt")
    with pytest.raises(ValueError, match="column"):  # SpecError is a ValueError
        roibin.check_spec("zstd(")
    with pytest.raises(roibin.SpecError, match="zfp"):
        roibin.encode(numpy.zeros((8, 8), "u2"), "zfp(accuracy=1)")  # zfp takes no u16


def test_corrupt_bytes_raise_not_crash(frames):
    chunk = bytearray(roibin.encode(frames, "strong"))
    chunk[len(chunk) // 2] ^= 0x40
    with pytest.raises(roibin.CorruptError):
        roibin.decode(bytes(chunk))
    with pytest.raises(roibin.RoibinError):
        roibin.decode(bytes(chunk[:20]))
    with pytest.raises(roibin.RoibinError):
        roibin.decode(b"not a roibin chunk at all")
    with pytest.raises(roibin.RoibinError):
        roibin.info(b"RBIN")


def test_unsupported_dtype_is_a_type_error():
    with pytest.raises(TypeError, match="complex|dtype"):
        roibin.encode(numpy.zeros(4, "c8"), "fast")


def test_filter_objects_carry_the_checked_spec():
    assert roibin.Sz(abs=0.5).spec == "sz(abs=0.5)"
    assert roibin.Zfp(reversible=True).spec == "zfp(reversible=1)"
    r = roibin.Roibin(abs=45, roi=6, bin=(4, 4))
    assert r.spec == "roibin(roi=6,background=bin(4,4)|sz(abs=45))"
    assert r["compression"] == roibin.FILTER_ID and len(r["compression_opts"]) > 3
    with pytest.raises(roibin.SpecError, match="background"):
        roibin.Roibin(abs=1, background="sz(abs=1)")
    assert roibin.encode(numpy.arange(16, dtype="u2"), roibin.Fast())


def test_nested_graphs_are_checked_too():
    with pytest.raises(roibin.SpecError, match="roibin/background/sz:abz"):
        roibin.Roibin(background="sz(abz=1)")
    with pytest.raises(roibin.SpecError, match="chunked/codec/zstd:level"):
        roibin.Filter("chunked(codec=zstd(level=99))")


def test_a_chunk_declaring_a_huge_array_is_refused_before_allocating():
    # Valid containers (CRC and all) that claim 2 GiB and 16 GiB of float64 from a few bytes.
    import struct

    def forged(elements):
        spec = b"zstd(level=3)"
        body = b"RBIN" + bytes([1, 0, 10, 1]) + struct.pack("<Q", elements) + struct.pack("<H", len(spec)) + spec
        body += bytes([1]) + struct.pack("<Q", 4) + b"\0\0\0\0"
        return body + struct.pack("<I", crc32c(body))

    with pytest.raises(roibin.RoibinError, match="max_bytes"):
        roibin.decode(forged(1 << 28))
    with pytest.raises(roibin.CorruptError, match="too large"):
        roibin.decode(forged(1 << 31), max_bytes=1 << 40)
    # A highly compressible legitimate chunk within the default is fine.
    zeros = numpy.zeros((1024, 1024), "u4")
    assert numpy.array_equal(roibin.decode(roibin.encode(zeros, "strong")), zeros)


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), bitwise: enough for a forged test header."""
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF
