use thiserror::Error;

/// Everything that can go wrong while parsing specs, building graphs, encoding or decoding.
///
/// Messages name the problem and, where it helps, what the user should write instead.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum Error {
    /// A graph spec that does not parse; `column` is 1-based.
    #[error("spec syntax error at column {column}: {message}\n  {spec}\n  {caret:>width$}", caret = "^", width = column)]
    Syntax {
        spec: String,
        column: usize,
        message: String,
    },
    /// A codec name that nothing registered.
    #[error("unknown codec `{name}` (known codecs: {known}); run `roibin list` to see them with their options")]
    UnknownCodec { name: String, known: String },
    /// An option the codec does not have, has the wrong type, or is out of range.
    #[error("option `{path}`: {message}")]
    Option { path: String, message: String },
    /// The data handed to a codec is not something it accepts (dtype, rank, bytes).
    #[error("`{codec}` cannot take {what}: {message}")]
    Unsupported {
        codec: String,
        what: String,
        message: String,
    },
    /// Encoded bytes that do not decode: truncated, corrupted, or not ours.
    #[error("corrupt or truncated `{codec}` stream: {message}")]
    Corrupt { codec: String, message: String },
    /// An error bound that was checked after encoding and did not hold.
    #[error("error bound violated by `{codec}`: {message}")]
    Bound { codec: String, message: String },
    /// Input that this graph cannot hold (zfp's fixed rate and a NaN, an intermediate stage
    /// that would grow past its cap). The container then stores the chunk raw, inside its
    /// own format: never an error that would make HDF5 store the chunk unfiltered.
    #[error("`{codec}` cannot encode this chunk: {message}")]
    Unrepresentable { codec: String, message: String },
    /// Anything else, with its message.
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// A corrupt-stream error for `codec`.
    pub fn corrupt(codec: &str, message: impl Into<String>) -> Self {
        Error::Corrupt {
            codec: codec.to_string(),
            message: message.into(),
        }
    }

    /// An input the codec cannot hold; the container falls back to raw storage.
    pub fn unrepresentable(codec: &str, message: impl Into<String>) -> Self {
        Error::Unrepresentable {
            codec: codec.to_string(),
            message: message.into(),
        }
    }

    /// An unsupported-input error for `codec`.
    pub fn unsupported(codec: &str, what: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Unsupported {
            codec: codec.to_string(),
            what: what.into(),
            message: message.into(),
        }
    }

    /// An option error at `path` (e.g. `roibin/background/sz:abs`).
    pub fn option(path: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Option {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Result with the registry's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
