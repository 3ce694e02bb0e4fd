//! Removing a classifier's ZipMap from an ONNX model, so its probabilities come out as one
//! tensor instead of a map per row (which ONNX Runtime hands over map by map, slowly).
//!
//! skl2onnx ends classifiers with `ZipMap(probabilities) -> output_probability`. This edits
//! the serialized model at the protobuf wire level: the ZipMap node is dropped and the graph
//! output is renamed to the ZipMap's input, a float tensor [rows, classes]. Every other byte
//! of the model is kept as it is. The scores are the same numbers.

/// A protobuf field: its number, wire type and raw bytes (tag included).
struct Field<'a> {
    number: u64,
    wire_type: u8,
    /// The payload of a length-delimited field.
    payload: &'a [u8],
    /// The whole field, tag included.
    raw: &'a [u8],
}

fn varint(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn fields(bytes: &[u8]) -> Option<Vec<Field<'_>>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let start = pos;
        let tag = varint(bytes, &mut pos)?;
        let (number, wire_type) = (tag >> 3, (tag & 7) as u8);
        let mut payload: &[u8] = &[];
        match wire_type {
            0 => {
                varint(bytes, &mut pos)?;
            }
            1 => pos += 8,
            2 => {
                let len = varint(bytes, &mut pos)? as usize;
                payload = bytes.get(pos..pos + len)?;
                pos += len;
            }
            5 => pos += 4,
            _ => return None,
        }
        out.push(Field { number, wire_type, payload, raw: bytes.get(start..pos)? });
    }
    Some(out)
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_bytes(out: &mut Vec<u8>, number: u64, payload: &[u8]) {
    put_varint(out, number << 3 | 2);
    put_varint(out, payload.len() as u64);
    out.extend_from_slice(payload);
}

fn strings(message: &[u8], number: u64) -> Vec<String> {
    fields(message)
        .unwrap_or_default()
        .iter()
        .filter(|f| f.number == number && f.wire_type == 2)
        .map(|f| String::from_utf8_lossy(f.payload).into_owned())
        .collect()
}

/// A graph output `name` of type float tensor [?, ?].
fn float_tensor_output(name: &str) -> Vec<u8> {
    // TensorShapeProto { dim: [{dim_param: "N"}, {dim_param: "C"}] }
    let mut shape = Vec::new();
    for param in ["N", "C"] {
        let mut dim = Vec::new();
        put_bytes(&mut dim, 2, param.as_bytes());
        put_bytes(&mut shape, 1, &dim);
    }
    // TypeProto.Tensor { elem_type: FLOAT (1), shape }
    let mut tensor = vec![0x08, 0x01];
    put_bytes(&mut tensor, 2, &shape);
    let mut type_proto = Vec::new();
    put_bytes(&mut type_proto, 1, &tensor);
    let mut value_info = Vec::new();
    put_bytes(&mut value_info, 1, name.as_bytes());
    put_bytes(&mut value_info, 2, &type_proto);
    value_info
}

/// The model without its ZipMap, or `None` when it has none (or cannot be read).
pub fn without_zipmap(model: &[u8]) -> Option<Vec<u8>> {
    const GRAPH: u64 = 7;
    const NODE: u64 = 1;
    const OUTPUT: u64 = 12;
    let model_fields = fields(model)?;
    let graph = model_fields.iter().find(|f| f.number == GRAPH && f.wire_type == 2)?;
    let graph_fields = fields(graph.payload)?;
    let zipmap = graph_fields
        .iter()
        .find(|f| f.number == NODE && strings(f.payload, 4).first().is_some_and(|op| op == "ZipMap"))?;
    let input = strings(zipmap.payload, 1).into_iter().next()?;
    let output = strings(zipmap.payload, 2).into_iter().next()?;
    let mut new_graph = Vec::with_capacity(graph.payload.len());
    for field in &graph_fields {
        if std::ptr::eq(field.raw, zipmap.raw) {
            continue;
        }
        if field.number == OUTPUT && strings(field.payload, 1).first() == Some(&output) {
            put_bytes(&mut new_graph, OUTPUT, &float_tensor_output(&input));
            continue;
        }
        new_graph.extend_from_slice(field.raw);
    }
    let mut new_model = Vec::with_capacity(model.len());
    for field in &model_fields {
        if std::ptr::eq(field.raw, graph.raw) {
            put_bytes(&mut new_model, GRAPH, &new_graph);
        } else {
            new_model.extend_from_slice(field.raw);
        }
    }
    Some(new_model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_zipmap_gives_way_to_its_probability_tensor() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/fraud_classifier.onnx");
        let model = std::fs::read(path).unwrap();
        let stripped = without_zipmap(&model).expect("the fraud model ends with a ZipMap");
        assert!(stripped.len() < model.len());
        assert!(without_zipmap(&stripped).is_none(), "no ZipMap is left");
        assert!(without_zipmap(b"not a model").is_none());
    }
}
