"""h5py writes every dtype, ranks 1-4 and odd chunk shapes with the roibin filter, then reads
back bit-exactly in a fresh file handle. Usage: write_read.py OUT_DIR SPEC..."""
import sys, os
import h5py
import numpy as np
from common import FILTER_ID, DTYPES, opts, sample, filter_mask_all_zero

out_dir, specs = sys.argv[1], sys.argv[2:]
LAYOUTS = [  # (shape, chunk): partial edge chunks everywhere
    ((1000,), (333,)),
    ((37, 129), (16, 50)),
    ((5, 67, 91), (2, 67, 40)),
    ((3, 2, 33, 47), (1, 2, 33, 47)),
]
n = 0
for spec in specs:
    path = os.path.join(out_dir, "w_%d.h5" % specs.index(spec))
    expect = {}
    with h5py.File(path, "w") as f:
        for dt in DTYPES:
            for shape, chunk in LAYOUTS:
                name = "%s_r%d" % (dt, len(shape))
                data = sample(dt, shape, seed=len(shape))
                kw = {} if spec == "" else {"compression_opts": opts(spec)}
                ds = f.create_dataset(name, data=data, chunks=chunk, compression=FILTER_ID, **kw)
                assert str(FILTER_ID) in ds._filters, ds._filters
                stored = ds.id.get_storage_size()
                assert stored < data.nbytes, "%s %s %s: stored %d >= raw %d" % (spec, name, chunk, stored, data.nbytes)
                assert filter_mask_all_zero(ds), "%s %s: a chunk skipped the filter" % (spec, name)
                expect[name] = data
                n += 1
    with h5py.File(path, "r") as f:
        for name, data in expect.items():
            got = f[name][()]
            assert got.dtype == data.dtype and got.shape == data.shape, name
            assert np.array_equal(got.view(np.uint8), data.view(np.uint8)), "%s %s differs" % (spec, name)
            # partial reads across chunk borders
            sl = tuple(slice(1, None, 2) for _ in data.shape)
            assert np.array_equal(got[sl], data[sl])
print("ok %d datasets" % n)
