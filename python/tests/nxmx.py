"""A minimal NeXus/NXmx master as beamline writers make it (DLS/DECTRIS style), for DIALS.

One detector module, a single-axis goniometer, the frames in /entry/data/data: enough for
dxtbx's FormatNXmx (dials.import) to build beam, detector, goniometer and scan models.
"""

import h5py
import numpy


def _nx(group: h5py.Group, name: str, nx_class: str) -> h5py.Group:
    g = group.require_group(name)
    g.attrs["NX_class"] = nx_class
    return g


def _axis(group, name, value, kind, vector, depends_on, units, offset=None):
    d = group.create_dataset(name, data=numpy.atleast_1d(numpy.asarray(value, "f8")))
    d.attrs["transformation_type"] = kind
    d.attrs["vector"] = numpy.asarray(vector, "f8")
    d.attrs["depends_on"] = depends_on
    d.attrs["units"] = units
    if offset is not None:
        d.attrs["offset"] = numpy.asarray(offset, "f8")
        d.attrs["offset_units"] = units
    return d


def write_skeleton(path, shape, mask=None, wavelength=0.9763, distance_mm=150.0, pixel_mm=0.075,
                   beam_px=None, osc_deg=0.1, counts=True):
    """Everything of an NXmx file except /entry/data/data (``shape``: frames, rows, cols),
    which the caller writes (with h5py, or `roibin compress` into this file). ``counts``:
    integer photon counts, whose gaps (read as int32 -1) must not be trusted; calibrated float
    data (ADU, negative after pedestal subtraction) get no underload."""
    n, ny, nx = shape
    by, bx = beam_px or (ny / 2, nx / 2)
    with h5py.File(path, "w") as f:
        entry = _nx(f, "entry", "NXentry")
        entry["definition"] = "NXmx"
        entry["start_time"] = "2026-12-02T00:00:00Z"
        entry["end_time"] = "2026-12-02T00:00:01Z"
        _nx(entry, "data", "NXdata").attrs["signal"] = "data"
        inst = _nx(entry, "instrument", "NXinstrument")
        inst["name"] = "roibin test beamline"
        beam = _nx(inst, "beam", "NXbeam")
        beam.create_dataset("incident_wavelength", data=wavelength).attrs["units"] = "angstrom"
        det = _nx(inst, "detector", "NXdetector")
        det["description"] = "EIGER 4M"
        det["sensor_material"] = "Si"
        det.create_dataset("sensor_thickness", data=0.45).attrs["units"] = "mm"
        det.create_dataset("x_pixel_size", data=pixel_mm / 1000).attrs["units"] = "m"
        det.create_dataset("y_pixel_size", data=pixel_mm / 1000).attrs["units"] = "m"
        det.create_dataset("beam_center_x", data=bx).attrs["units"] = "pixel"
        det.create_dataset("beam_center_y", data=by).attrs["units"] = "pixel"
        det.create_dataset("distance", data=distance_mm / 1000).attrs["units"] = "m"
        det.create_dataset("count_time", data=0.01).attrs["units"] = "s"
        det["saturation_value"] = numpy.int64(1_000_000)
        if counts:
            # dxtbx trusts values above underload_value - 1: gaps read as int32 -1 do not.
            det["underload_value"] = numpy.int64(0)
        det["depends_on"] = "/entry/instrument/detector/transformations/det_z"
        if mask is not None:
            det.create_dataset("pixel_mask", data=mask.astype("u4"), compression="gzip")
        tr = _nx(det, "transformations", "NXtransformations")
        _axis(tr, "det_z", distance_mm, "translation", (0, 0, 1), ".", "mm")
        module = _nx(det, "module", "NXdetector_module")
        module["data_origin"] = numpy.array([0, 0], "i8")
        module["data_size"] = numpy.array([ny, nx], "i8")
        module["data_stride"] = numpy.array([1, 1], "i8")
        here = "/entry/instrument/detector/module"
        _axis(module, "module_offset", 0, "translation", (1, 0, 0),
              "/entry/instrument/detector/transformations/det_z", "mm",
              offset=(bx * pixel_mm, by * pixel_mm, 0))
        _axis(module, "fast_pixel_direction", pixel_mm, "translation", (-1, 0, 0),
              f"{here}/module_offset", "mm", offset=(0, 0, 0))
        _axis(module, "slow_pixel_direction", pixel_mm, "translation", (0, -1, 0),
              f"{here}/module_offset", "mm", offset=(0, 0, 0))
        sample = _nx(entry, "sample", "NXsample")
        sample["name"] = "crystal"
        sample["depends_on"] = "/entry/sample/transformations/omega"
        st = _nx(sample, "transformations", "NXtransformations")
        omega = numpy.arange(n) * osc_deg
        _axis(st, "omega", omega, "rotation", (-1, 0, 0), ".", "deg")
        st.create_dataset("omega_end", data=omega + osc_deg).attrs["units"] = "deg"
        st.create_dataset("omega_increment_set", data=osc_deg).attrs["units"] = "deg"
        _nx(entry, "source", "NXsource")["name"] = "roibin test source"
