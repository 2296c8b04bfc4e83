"""Type stubs of roibin's compiled module (``roibin._roibin``)."""

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy

FILTER_ID: int
__version__: str

class RoibinError(ValueError):
    """Base class of every error roibin raises."""

class SpecError(RoibinError):
    """A graph spec or option that is not valid; the message names it."""

class CorruptError(RoibinError):
    """Bytes that do not decode: truncated, corrupted, or not a roibin chunk."""

def encode(array: numpy.ndarray, spec: str = "auto", threads: Optional[int] = None) -> bytes: ...
def decode(data: bytes, threads: Optional[int] = None, max_bytes: Optional[int] = None) -> numpy.ndarray: ...
def info(data: bytes) -> Dict[str, Any]:
    """Header of a chunk: format_version, dtype, shape, spec, stored_raw, nbytes, stored_bytes,
    ratio, sections (payload section lengths)."""

def codecs() -> List[Dict[str, Any]]:
    """Every registered codec: name, version, doc, options (name, type, default, doc), dtypes,
    ranks, accepts_bytes."""

def check_spec(spec: str) -> str:
    """Check a graph spec (codecs and options, nested graphs included); returns it parsed and
    printed back. Raises SpecError naming the codec or option at fault."""

def cd_values(spec: str) -> Tuple[int, ...]: ...
def register_filter(module: str) -> List[str]: ...
def stxm(
    target: str, params: Sequence[Tuple[str, str]], decode: bool = False, threads: Optional[int] = None
) -> Tuple[numpy.ndarray, Dict[str, Any]]: ...
def stxm_algorithms() -> List[Dict[str, Any]]: ...
