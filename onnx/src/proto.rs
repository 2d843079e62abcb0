//! Reading ONNX's protobuf: the model, its tensors and node attributes.
//!
//! The messages are prost's, generated from `onnx.proto` (`tract_onnx::pb`); this module only
//! interprets tensor payloads (raw little-endian bytes or the typed repeated fields, as the
//! ONNX spec allows both) for the element types an int8 model uses, and checks every size
//! against the bytes actually present, so a hostile file is an error, never a huge allocation.

use prost::Message;
use tract_onnx::pb::{self, tensor_proto::DataType};

/// Decode a model from its bytes.
pub fn decode_model(bytes: &[u8]) -> Result<pb::ModelProto, String> {
    pb::ModelProto::decode(bytes).map_err(|e| format!("not an ONNX model (protobuf decode failed: {e})"))
}

/// An element type of the tensors this importer reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    /// float32
    F32,
    /// uint8
    U8,
    /// int8
    I8,
    /// int32
    I32,
    /// int64
    I64,
}

impl std::fmt::Display for Dtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Dtype::F32 => "float32",
            Dtype::U8 => "uint8",
            Dtype::I8 => "int8",
            Dtype::I32 => "int32",
            Dtype::I64 => "int64",
        })
    }
}

/// The name of an ONNX element type code, for messages.
pub fn dtype_name(code: i32) -> String {
    match DataType::try_from(code) {
        Ok(d) => d.as_str_name().to_lowercase(),
        Err(_) => format!("type {code}"),
    }
}

/// The dtype of an ONNX element type code, if this importer reads it.
pub fn dtype(code: i32) -> Option<Dtype> {
    match DataType::try_from(code).ok()? {
        DataType::Float => Some(Dtype::F32),
        DataType::Uint8 => Some(Dtype::U8),
        DataType::Int8 => Some(Dtype::I8),
        DataType::Int32 => Some(Dtype::I32),
        DataType::Int64 => Some(Dtype::I64),
        _ => None,
    }
}

/// A constant tensor's values.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    /// float32
    F32(Vec<f32>),
    /// uint8
    U8(Vec<u8>),
    /// int8
    I8(Vec<i8>),
    /// int32
    I32(Vec<i32>),
    /// int64
    I64(Vec<i64>),
}

/// A constant tensor (an initializer or a `Constant` node's value).
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Its shape (empty for a scalar).
    pub dims: Vec<usize>,
    /// Its values, row-major.
    pub data: Data,
}

impl Tensor {
    /// The element type.
    pub fn dtype(&self) -> Dtype {
        match self.data {
            Data::F32(_) => Dtype::F32,
            Data::U8(_) => Dtype::U8,
            Data::I8(_) => Dtype::I8,
            Data::I32(_) => Dtype::I32,
            Data::I64(_) => Dtype::I64,
        }
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        match &self.data {
            Data::F32(v) => v.len(),
            Data::U8(v) => v.len(),
            Data::I8(v) => v.len(),
            Data::I32(v) => v.len(),
            Data::I64(v) => v.len(),
        }
    }

    /// True if it has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values as f32, if it is float32.
    pub fn f32s(&self) -> Option<&[f32]> {
        match &self.data {
            Data::F32(v) => Some(v),
            _ => None,
        }
    }

    /// The values as i64 (int8, uint8, int32, int64; not float).
    pub fn ints(&self) -> Option<Vec<i64>> {
        Some(match &self.data {
            Data::F32(_) => return None,
            Data::U8(v) => v.iter().map(|&x| i64::from(x)).collect(),
            Data::I8(v) => v.iter().map(|&x| i64::from(x)).collect(),
            Data::I32(v) => v.iter().map(|&x| i64::from(x)).collect(),
            Data::I64(v) => v.clone(),
        })
    }
}

/// Decode a tensor's payload; `what` names it in errors.
pub fn tensor(t: &pb::TensorProto) -> Result<Tensor, String> {
    let name = if t.name.is_empty() { "a constant".to_string() } else { format!("'{}'", t.name) };
    if t.data_location == Some(pb::tensor_proto::DataLocation::External as i32) {
        return Err(format!("tensor {name} is stored in an external file, which protobrain does not read: save the model with its weights inside (onnx.save_model(..., save_as_external_data=False))"));
    }
    if t.segment.is_some() {
        return Err(format!("tensor {name} is segmented, which protobrain does not read"));
    }
    let mut dims = Vec::with_capacity(t.dims.len());
    let mut count: usize = 1;
    for &d in &t.dims {
        let d = usize::try_from(d).map_err(|_| format!("tensor {name} has a negative dimension {d}"))?;
        count =
            count.checked_mul(d).ok_or_else(|| format!("tensor {name}: its shape {:?} overflows", t.dims))?;
        dims.push(d);
    }
    let dt = dtype(t.data_type).ok_or_else(|| {
        format!("tensor {name} is {}, which protobrain does not read", dtype_name(t.data_type))
    })?;
    let width = match dt {
        Dtype::F32 | Dtype::I32 => 4,
        Dtype::U8 | Dtype::I8 => 1,
        Dtype::I64 => 8,
    };
    let short = |got: usize| format!("tensor {name} of shape {dims:?} ({count} values) holds {got}");
    let data = if !t.raw_data.is_empty() {
        let raw = &t.raw_data;
        if count.checked_mul(width) != Some(raw.len()) {
            return Err(short(raw.len() / width));
        }
        match dt {
            Dtype::F32 => {
                Data::F32(raw.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect())
            }
            Dtype::I32 => {
                Data::I32(raw.chunks_exact(4).map(|b| i32::from_le_bytes(b.try_into().unwrap())).collect())
            }
            Dtype::I64 => {
                Data::I64(raw.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap())).collect())
            }
            Dtype::U8 => Data::U8(raw.clone()),
            Dtype::I8 => Data::I8(raw.iter().map(|&b| b as i8).collect()),
        }
    } else {
        let n = match dt {
            Dtype::F32 => t.float_data.len(),
            Dtype::I64 => t.int64_data.len(),
            _ => t.int32_data.len(),
        };
        if n != count {
            return Err(short(n));
        }
        // ONNX stores int8 and uint8 in int32_data, one value per element
        let narrow = |lo: i32, hi: i32| {
            t.int32_data
                .iter()
                .find(|&&v| v < lo || v > hi)
                .map_or(Ok(()), |v| Err(format!("tensor {name} holds {v}, outside its type {dt}")))
        };
        match dt {
            Dtype::F32 => Data::F32(t.float_data.clone()),
            Dtype::I32 => Data::I32(t.int32_data.clone()),
            Dtype::I64 => Data::I64(t.int64_data.clone()),
            Dtype::U8 => {
                narrow(0, 255)?;
                Data::U8(t.int32_data.iter().map(|&v| v as u8).collect())
            }
            Dtype::I8 => {
                narrow(-128, 127)?;
                Data::I8(t.int32_data.iter().map(|&v| v as i8).collect())
            }
        }
    };
    Ok(Tensor { dims, data })
}

/// One node's attributes.
pub struct Attrs<'a>(pub &'a pb::NodeProto);

impl<'a> Attrs<'a> {
    fn get(&self, name: &str) -> Option<&'a pb::AttributeProto> {
        self.0.attribute.iter().find(|a| a.name == name)
    }

    /// The names of every attribute given.
    pub fn names(&self) -> impl Iterator<Item = &'a str> {
        self.0.attribute.iter().map(|a| a.name.as_str())
    }

    /// An integer attribute.
    pub fn int(&self, name: &str) -> Option<i64> {
        self.get(name).map(|a| a.i)
    }

    /// A float attribute.
    pub fn float(&self, name: &str) -> Option<f32> {
        self.get(name).map(|a| a.f)
    }

    /// A list of integers.
    pub fn ints(&self, name: &str) -> Option<&'a [i64]> {
        self.get(name).map(|a| a.ints.as_slice())
    }

    /// A string attribute.
    pub fn string(&self, name: &str) -> Option<String> {
        self.get(name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
    }

    /// A tensor attribute (a `Constant`'s `value`).
    pub fn tensor(&self, name: &str) -> Option<&'a pb::TensorProto> {
        self.get(name).and_then(|a| a.t.as_ref())
    }
}

/// A value's declared element type and shape (graph inputs and outputs): dims are `None` where
/// symbolic (a batch dimension `N`).
pub fn value_type(v: &pb::ValueInfoProto) -> Option<(i32, Vec<Option<usize>>)> {
    let pb::type_proto::Value::TensorType(t) = v.r#type.as_ref()?.value.as_ref()?;
    let dims = t
        .shape
        .as_ref()
        .map(|s| {
            s.dim
                .iter()
                .map(|d| match d.value {
                    Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) => usize::try_from(v).ok(),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Some((t.elem_type, dims))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proto(dims: &[i64], data_type: DataType) -> pb::TensorProto {
        pb::TensorProto {
            dims: dims.to_vec(),
            data_type: data_type as i32,
            name: "t".into(),
            ..Default::default()
        }
    }

    #[test]
    fn raw_and_typed_payloads_agree() {
        let mut raw = proto(&[2, 2], DataType::Int8);
        raw.raw_data = vec![1, 0xff, 0x80, 127];
        let mut typed = proto(&[2, 2], DataType::Int8);
        typed.int32_data = vec![1, -1, -128, 127];
        let want = Tensor { dims: vec![2, 2], data: Data::I8(vec![1, -1, -128, 127]) };
        assert_eq!(tensor(&raw).unwrap(), want);
        assert_eq!(tensor(&typed).unwrap(), want);
        let mut f = proto(&[], DataType::Float);
        f.raw_data = 0.5f32.to_le_bytes().to_vec();
        assert_eq!(tensor(&f).unwrap().f32s(), Some(&[0.5f32][..]));
    }

    #[test]
    fn hostile_sizes_are_errors() {
        // a shape whose product overflows, with 4 bytes of data
        let mut t = proto(&[1 << 40, 1 << 40], DataType::Float);
        t.raw_data = vec![0; 4];
        assert!(tensor(&t).unwrap_err().contains("overflows"));
        // a shape larger than its data
        let mut t = proto(&[1_000_000_000], DataType::Int32);
        t.raw_data = vec![0; 8];
        assert!(tensor(&t).unwrap_err().contains("holds 2"));
        let t = proto(&[-1], DataType::Int8);
        assert!(tensor(&t).unwrap_err().contains("negative"));
        let mut t = proto(&[1], DataType::Int8);
        t.int32_data = vec![300];
        assert!(tensor(&t).unwrap_err().contains("outside its type int8"));
        let t = proto(&[1], DataType::Double);
        assert!(tensor(&t).unwrap_err().contains("double"));
    }
}
