use crate::{Error, Result};
use std::fmt;

/// Element types that flow through codecs. Values are little-endian in memory and in streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DType {
    U8 = 1,
    U16 = 2,
    U32 = 3,
    U64 = 4,
    I8 = 5,
    I16 = 6,
    I32 = 7,
    I64 = 8,
    F32 = 9,
    F64 = 10,
}

impl DType {
    /// Every dtype, in code order.
    pub const ALL: [DType; 10] = [
        DType::U8,
        DType::U16,
        DType::U32,
        DType::U64,
        DType::I8,
        DType::I16,
        DType::I32,
        DType::I64,
        DType::F32,
        DType::F64,
    ];

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::U8 | DType::I8 => 1,
            DType::U16 | DType::I16 => 2,
            DType::U32 | DType::I32 | DType::F32 => 4,
            DType::U64 | DType::I64 | DType::F64 => 8,
        }
    }

    /// True for f32 and f64.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }

    /// True for the signed integer types.
    pub fn is_signed_int(self) -> bool {
        matches!(self, DType::I8 | DType::I16 | DType::I32 | DType::I64)
    }

    /// The stable one-byte code stored in containers and cd_values.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// Inverse of [`DType::code`].
    pub fn from_code(code: u32) -> Result<DType> {
        DType::ALL
            .into_iter()
            .find(|d| d.code() as u32 == code)
            .ok_or_else(|| Error::Other(format!("unknown dtype code {code}")))
    }

    /// numpy-style name (`u2`, `f4`, ...) as h5py users write it.
    pub fn name(self) -> &'static str {
        match self {
            DType::U8 => "u8",
            DType::U16 => "u16",
            DType::U32 => "u32",
            DType::U64 => "u64",
            DType::I8 => "i8",
            DType::I16 => "i16",
            DType::I32 => "i32",
            DType::I64 => "i64",
            DType::F32 => "f32",
            DType::F64 => "f64",
        }
    }

    /// Parse `u16`, `f32`, ... (as printed by [`DType::name`]).
    pub fn parse(s: &str) -> Result<DType> {
        DType::ALL
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| {
                Error::Other(format!(
                    "unknown dtype `{s}` (expected one of u8 u16 u32 u64 i8 i16 i32 i64 f32 f64)"
                ))
            })
    }

    /// Integer type of the same width, used by codecs that work on bit patterns (delta on floats).
    pub fn bits_type(self) -> DType {
        match self.size() {
            1 => DType::U8,
            2 => DType::U16,
            4 => DType::U32,
            _ => DType::U64,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// dtype and C-order shape (slowest dimension first) of an array.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ArrayMeta {
    pub dtype: DType,
    pub shape: Vec<usize>,
}

impl ArrayMeta {
    /// Build a meta; the shape must be non-empty.
    pub fn new(dtype: DType, shape: impl Into<Vec<usize>>) -> Self {
        ArrayMeta {
            dtype,
            shape: shape.into(),
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True when the array holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Size in bytes.
    pub fn nbytes(&self) -> usize {
        self.len() * self.dtype.size()
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
}

impl fmt::Display for ArrayMeta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dims: Vec<String> = self.shape.iter().map(|d| d.to_string()).collect();
        write!(f, "{}[{}]", self.dtype, dims.join("×"))
    }
}

/// What flows between two stages of a graph: a typed array, or opaque bytes (after an entropy coder).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DataKind {
    Array(ArrayMeta),
    Bytes,
}

impl DataKind {
    /// The array meta, or an `Unsupported` error naming `codec` when these are opaque bytes.
    pub fn array(&self, codec: &str) -> Result<&ArrayMeta> {
        match self {
            DataKind::Array(m) => Ok(m),
            DataKind::Bytes => Err(Error::unsupported(
                codec,
                "opaque bytes",
                "it needs a typed array; put it before byte codecs such as zstd or lz4",
            )),
        }
    }

    /// The same bytes seen as a flat u8 array (what byte-level transforms such as shuffles
    /// produce: the size stays known, so the next stage can decode in place).
    pub fn as_bytes_array(&self) -> DataKind {
        match self {
            DataKind::Array(m) => DataKind::Array(ArrayMeta::new(DType::U8, vec![m.nbytes()])),
            DataKind::Bytes => DataKind::Bytes,
        }
    }

    /// Element size in bytes (1 for opaque bytes).
    pub fn elem_size(&self) -> usize {
        match self {
            DataKind::Array(m) => m.dtype.size(),
            DataKind::Bytes => 1,
        }
    }
}

impl fmt::Display for DataKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataKind::Array(m) => m.fmt(f),
            DataKind::Bytes => f.write_str("bytes"),
        }
    }
}
