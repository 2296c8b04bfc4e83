"""The plugin under ROIBIN_TUNING, as a facility writer using h5py would run it.
Usage: tuning.py write SRC.h5 DSET OUT.h5 SPEC   (frames of SRC compressed one per chunk)
       tuning.py same-chunks A.h5 B.h5 DSET      (every stored chunk byte-identical)"""
import sys
import h5py
import numpy as np
from common import FILTER_ID, opts, filter_mask_all_zero

mode = sys.argv[1]
if mode == "write":
    src, dset, out, spec = sys.argv[2:6]
    data = h5py.File(src, "r")[dset][...]
    with h5py.File(out, "w") as f:
        ds = f.create_dataset("data", data=data, chunks=(1,) + data.shape[1:],
                              compression=FILTER_ID, compression_opts=opts(spec))
        assert filter_mask_all_zero(ds), "a chunk was stored without the filter"
        assert ds.id.get_storage_size() < data.nbytes // 4, "not compressed"
    with h5py.File(out, "r") as f:
        assert f["data"].shape == data.shape
    print("tuning write ok")
elif mode == "same-chunks":
    a, b, dset = sys.argv[2:5]
    da, db = h5py.File(a, "r")[dset], h5py.File(b, "r")[dset]
    assert da.id.get_num_chunks() == db.id.get_num_chunks() > 0
    for i in range(da.id.get_num_chunks()):
        off = da.id.get_chunk_info(i).chunk_offset
        ma, ca = da.id.read_direct_chunk(off)
        mb, cb = db.id.read_direct_chunk(off)
        assert ma == mb == 0 and ca == cb, "chunk %s differs" % (off,)
    print("same chunks ok")
else:
    sys.exit("unknown mode " + mode)
