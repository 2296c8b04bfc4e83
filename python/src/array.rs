//! numpy arrays ⇄ roibin's (dtype, shape, bytes), without copies.

use numpy::{Element, PyArrayDyn, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use roibin_registry::{ArrayMeta, DType};

/// Run `f` on the bytes of a C-contiguous, native-endian numpy array of one of roibin's
/// dtypes, borrowed read-only (the array cannot change under it, even with the GIL released).
pub fn with_bytes<R>(
    array: &Bound<'_, PyAny>,
    f: impl FnOnce(ArrayMeta, &[u8]) -> PyResult<R>,
) -> PyResult<R> {
    let untyped = array
        .cast::<PyUntypedArray>()
        .map_err(|_| PyTypeError::new_err("expected a numpy array"))?;
    let shape = untyped.shape().to_vec();
    macro_rules! each {
        ($($t:ty => $d:expr),*) => {
            $(
                if let Ok(a) = array.cast::<PyArrayDyn<$t>>() {
                    let ro = a.readonly();
                    let slice = ro.as_slice().map_err(|_| {
                        PyTypeError::new_err("the array is not C-contiguous (use numpy.ascontiguousarray)")
                    })?;
                    return f(ArrayMeta::new($d, shape), bytemuck::cast_slice(slice));
                }
            )*
        };
    }
    each!(u8 => DType::U8, u16 => DType::U16, u32 => DType::U32, u64 => DType::U64,
          i8 => DType::I8, i16 => DType::I16, i32 => DType::I32, i64 => DType::I64,
          f32 => DType::F32, f64 => DType::F64);
    Err(PyTypeError::new_err(format!(
        "dtype {} is not supported: roibin takes native-endian uint8/16/32/64, int8/16/32/64, float32/64",
        untyped.dtype()
    )))
}

/// A new C-order numpy array of `meta`, filled by `fill` with the GIL released.
pub fn new_filled<'py>(
    py: Python<'py>,
    meta: &ArrayMeta,
    fill: impl FnOnce(&mut [u8]) -> PyResult<()> + Send,
) -> PyResult<Bound<'py, PyAny>> {
    fn typed<'py, T: Element + bytemuck::Pod>(
        py: Python<'py>,
        shape: &[usize],
        fill: impl FnOnce(&mut [u8]) -> PyResult<()> + Send,
    ) -> PyResult<Bound<'py, PyAny>> {
        let a = PyArrayDyn::<T>::zeros(py, shape, false);
        {
            // SAFETY: `a` was just created here and no Python code has seen it, so nothing
            // else can read or write its buffer while `fill` runs.
            let slice = unsafe { a.as_slice_mut() }.expect("a new array is contiguous");
            let bytes: &mut [u8] = bytemuck::cast_slice_mut(slice);
            py.detach(|| fill(bytes))?;
        }
        Ok(a.into_any())
    }
    let s = meta.shape.as_slice();
    match meta.dtype {
        DType::U8 => typed::<u8>(py, s, fill),
        DType::U16 => typed::<u16>(py, s, fill),
        DType::U32 => typed::<u32>(py, s, fill),
        DType::U64 => typed::<u64>(py, s, fill),
        DType::I8 => typed::<i8>(py, s, fill),
        DType::I16 => typed::<i16>(py, s, fill),
        DType::I32 => typed::<i32>(py, s, fill),
        DType::I64 => typed::<i64>(py, s, fill),
        DType::F32 => typed::<f32>(py, s, fill),
        DType::F64 => typed::<f64>(py, s, fill),
    }
}
