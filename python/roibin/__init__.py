"""roibin: composable compression for X-ray detector data, from Python.

Store less, keep the science: lossless graphs for counting detectors and ROIBIN (Bragg peaks
kept exactly, the background binned and error-bounded) for crystallography frames, as HDF5
filter 443 or as bytes; and STXM maps reduced straight from compressed scans.

>>> import numpy, roibin
>>> frame = numpy.arange(64 * 64, dtype=numpy.uint16).reshape(64, 64)
>>> chunk = roibin.encode(frame, "bitshuffle|lz4")
>>> bool((roibin.decode(chunk) == frame).all())
True
>>> roibin.info(chunk)["dtype"], roibin.info(chunk)["shape"]
('u16', (64, 64))

With h5py (``import roibin`` registers filter 443 with h5py's HDF5; no environment variable)::

    f.create_dataset("data", data=frames, chunks=(1, 512, 1024), **roibin.Roibin(abs=90))

Other clients (h5repack, h5dump, C writers) load the bundled plugin from ``roibin.PLUGIN_PATH``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Iterator, Optional, Sequence, Tuple, Union

import numpy

from . import _roibin
from ._roibin import (
    FILTER_ID,
    CorruptError,
    RoibinError,
    SpecError,
    __version__,
    check_spec,
    codecs,
    info,
)

__all__ = [
    "FILTER_ID",
    "PLUGIN_PATH",
    "CorruptError",
    "RoibinError",
    "SpecError",
    "Filter",
    "Auto",
    "Fast",
    "Strong",
    "Roibin",
    "Sz",
    "Zfp",
    "check_spec",
    "codecs",
    "decode",
    "encode",
    "info",
    "register",
    "stxm",
    "stxm_algorithms",
    "__version__",
]

#: Folder holding ``libh5roibin.so``, for ``HDF5_PLUGIN_PATH`` of other HDF5 clients.
PLUGIN_PATH: str = os.path.join(os.path.dirname(os.path.abspath(__file__)), "plugin")


def _native(array: Any) -> numpy.ndarray:
    """A C-contiguous, native-endian view of ``array`` (copied only when it is not one)."""
    a = numpy.asarray(array)
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    return numpy.ascontiguousarray(a)


def encode(array: Any, spec: str = "auto", *, threads: Optional[int] = None) -> bytes:
    """Encode ``array`` with the graph ``spec`` into one self-describing roibin chunk.

    ``spec`` is roibin's graph language (``"bitshuffle|zstd(5)"``, ``"sz(abs=0.5)"``,
    ``"roibin(peaks=auto)"``); a Filter object's ``spec`` works too. The array is read in
    place when it is C-contiguous and native-endian. The GIL is released while encoding;
    ``threads`` bounds the workers (default: every core).
    """
    if isinstance(spec, Filter):
        spec = spec.spec
    return _roibin.encode(_native(array), spec, threads)


def decode(
    data: Union[bytes, bytearray, memoryview], *, threads: Optional[int] = None, max_bytes: Optional[int] = None
) -> numpy.ndarray:
    """Decode one roibin chunk into a new numpy array (its dtype and shape are in the chunk).

    Raises CorruptError on bytes that are truncated, corrupted or not a roibin chunk. A chunk
    declaring more than ``max_bytes`` is refused before anything is allocated (default: 64 MiB
    or 1024 times its stored size, whichever is more, as the HDF5 filter allows).
    """
    if not isinstance(data, bytes):
        data = bytes(data)
    return _roibin.decode(data, threads, max_bytes)


def register() -> list:
    """Register filter 443 with the HDF5 that h5py carries (done by ``import roibin``).

    Returns the paths of the libhdf5 copies it was registered with.
    """
    import h5py.h5z  # loads h5py's libhdf5 into the process

    return _roibin.register_filter(h5py.h5z.__file__)


def _value(v: Any) -> str:
    """An option value in the spec language."""
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, (int, float, numpy.integer, numpy.floating)):
        return repr(float(v)) if isinstance(v, (float, numpy.floating)) else str(int(v))
    if isinstance(v, Filter):
        return v.spec
    if isinstance(v, (tuple, list)):
        return ",".join(_value(x) for x in v)
    return str(v)


def _stage(name: str, **options: Any) -> str:
    """``name(k=v,...)`` from the options that are not None, in the order given."""
    args = [f"{k}={_value(v)}" for k, v in options.items() if v is not None]
    return f"{name}({','.join(args)})" if args else name


try:  # h5py's own base class, so `compression=roibin.Sz(...)` works as well as `**roibin.Sz(...)`
    import h5py

    _Base = h5py.filters.FilterRefBase
    _HAVE_H5PY = True
except ImportError:  # pragma: no cover - h5py is optional

    _HAVE_H5PY = False

    class _Base(Mapping):  # type: ignore[no-redef]
        filter_id: Optional[int] = None
        filter_options: Tuple[int, ...] = ()

        @property
        def _kwargs(self) -> dict:
            return {"compression": self.filter_id, "compression_opts": self.filter_options}

        def __hash__(self) -> int:
            return hash((self.filter_id, self.filter_options))

        def __len__(self) -> int:
            return len(self._kwargs)

        def __iter__(self) -> Iterator[str]:
            return iter(self._kwargs)

        def __getitem__(self, item: str) -> Any:
            return self._kwargs[item]


class Filter(_Base):
    """The roibin HDF5 filter (443) with a graph spec, as ``create_dataset`` keyword arguments.

    ``f.create_dataset(name, data=..., chunks=..., **roibin.Filter("bitshuffle|zstd(5)"))``.
    The spec is checked here (a SpecError names the codec or option at fault); the dtype and
    chunk shape are checked when HDF5 creates the dataset.
    """

    filter_id = FILTER_ID

    def __init__(self, spec: str = "auto") -> None:
        self.spec: str = check_spec(spec)
        self.filter_options: Tuple[int, ...] = tuple(_roibin.cd_values(self.spec))

    def __repr__(self) -> str:
        return f"roibin.Filter({self.spec!r})"



class Auto(Filter):
    """Lossless, balanced: bitshuffle|zstd(3) in blocks for multi-byte types."""

    def __init__(self) -> None:
        super().__init__("auto")


class Fast(Filter):
    """Lossless, fastest: bitshuffle|lz4 on cache-sized blocks, in parallel."""

    def __init__(self) -> None:
        super().__init__("fast")


class Strong(Filter):
    """Lossless, strongest at speed: bitshuffle|zstd(6) on 1 MiB blocks."""

    def __init__(self) -> None:
        super().__init__("strong")


class Sz(Filter):
    """Error-bounded lossy (SZ3-class): give one of ``abs``, ``rel`` or ``psnr``."""

    def __init__(
        self,
        abs: Optional[float] = None,
        rel: Optional[float] = None,
        psnr: Optional[float] = None,
        predictor: Optional[str] = None,
        **options: Any,
    ) -> None:
        super().__init__(_stage("sz", abs=abs, rel=rel, psnr=psnr, predictor=predictor, **options))


class Zfp(Filter):
    """ZFP-class transform coding: ``accuracy`` (a checked absolute bound), ``precision``,
    ``rate`` or ``reversible=True`` (lossless). Floats and 32/64-bit integers."""

    def __init__(
        self,
        accuracy: Optional[float] = None,
        precision: Optional[int] = None,
        rate: Optional[float] = None,
        reversible: Optional[bool] = None,
    ) -> None:
        super().__init__(
            _stage("zfp", accuracy=accuracy, precision=precision, rate=rate, reversible=reversible)
        )


class Roibin(Filter):
    """ROIBIN for diffraction frames: windows around Bragg peaks kept exactly, the rest binned
    and compressed within ``abs``.

    ``peaks``: the finder (``"pf8"``, ``"dispersion"``, ``"auto"`` for settings from the data,
    or a spec with options); ``roi``: window half-size; ``bin``: background binning
    (``(2, 2)``); ``background``: a whole background graph instead of ``bin`` and ``abs``.
    Other options of the ``roibin`` codec (``masked``, ``exact_above``, ``panel_rows``…) pass
    through; ``roibin.codecs()`` lists them.
    """

    def __init__(
        self,
        abs: Optional[float] = None,
        roi: Optional[int] = None,
        peaks: Optional[str] = None,
        bin: Optional[Sequence[int]] = None,
        background: Optional[str] = None,
        **options: Any,
    ) -> None:
        if background is not None and (abs is not None or bin is not None):
            raise SpecError("give `background` or `abs`/`bin`, not both")
        if background is None and (abs is not None or bin is not None):
            factors = _value(bin or (2, 2))
            background = f"bin({factors})|{_stage('sz', abs=90 if abs is None else abs)}"
        super().__init__(_stage("roibin", peaks=peaks, roi=roi, background=background, **options))


def stxm_algorithms() -> list:
    """The STXM algorithms: name, signals (the first is the default) and a description."""
    return _roibin.stxm_algorithms()


def _param(v: Any) -> str:
    """A request parameter: tuples become ``a,b``; a tuple of tuples ``a,b;c,d``."""
    if isinstance(v, (tuple, list)) and any(isinstance(x, (tuple, list)) for x in v):
        return ";".join(_param(x) for x in v)
    if isinstance(v, (tuple, list)):
        return ",".join(str(x) for x in v)
    return str(v)


def stxm(
    path: Union[str, os.PathLike],
    dataset: Optional[str] = None,
    *,
    scan: Optional[Tuple[int, int]] = None,
    algo: str = "brightfield",
    signal: Optional[str] = None,
    first: Optional[int] = None,
    roi: Optional[Tuple[int, int, int, int]] = None,
    binning: Optional[Tuple[int, int]] = None,
    mask: Optional[str] = None,
    empty: Optional[Union[int, str]] = None,
    difference: Optional[Union[int, str]] = None,
    polarroi: Any = None,
    radial: Any = None,
    gridroi: Any = None,
    decode: bool = False,
    threads: Optional[int] = None,
    return_info: bool = False,
) -> Any:
    """Reduce every frame of a raster scan to a map (dada's STXM), straight from the file.

    ``path``: an HDF5 file (``dataset`` default ``/entry/data/data``), a DECTRIS master file
    or a Merlin ``.mib``. ``scan``: (rows, cols), default the dataset's own 4-D shape.
    ``algo``/``signal``: see ``stxm_algorithms()`` (brightfield: Itot, Imax, comh, comv, dpc).
    Geometry: ``roi=(x, y, w, h)``, ``binning=(bx, by)``, ``mask`` (``"auto"``, ``"none"``,
    ``FILE.npy``), ``empty``/``difference`` (a frame number or a file),
    ``polarroi=((cx, cy), (qmin, qmax), (phimin, phimax))``, ``radial=((cx, cy), (qmin, qmax), nq)``,
    ``gridroi=((x, y, w, h), (nx, ny))``. roibin chunks are reduced from their bins where the
    signal is linear (``decode=True`` decodes them instead).

    Returns a float64 array of shape (rows, cols, *per-point shape), NaN where a frame could not
    be read; with ``return_info=True``, ``(array, info)`` where info has the canonical request,
    the value axes, failed frames and timings.
    """
    target = os.fspath(path)
    if dataset is not None:
        target = f"{target}:{dataset}"
    params = {
        "algo": algo,
        "signal": signal,
        "scan": None if scan is None else f"{scan[0]}x{scan[1]}",
        "first": first,
        "roi": roi,
        "binning": binning,
        "mask": mask,
        "empty": empty,
        "difference": difference,
        "polarroi": polarroi,
        "radial": radial,
        "gridroi": gridroi,
    }
    pairs = [(k, _param(v)) for k, v in params.items() if v is not None]
    values, meta = _roibin.stxm(target, pairs, decode, threads)
    return (values, meta) if return_info else values


if _HAVE_H5PY:  # filter 443 is ready for h5py as soon as roibin is imported
    register()
