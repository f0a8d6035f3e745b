//! A JSON document described once and rendered twice: as the bytes the worker publishes
//! (keys in the order the Python stages build their dicts, compact, as orjson writes
//! them) and as a `serde_json::Value` for the schema validators.

use std::rc::Rc;

use serde_json::{Map, Value};

pub enum Doc {
    Null,
    Bool(bool),
    Int(i64),
    Str(String),
    Obj(Vec<(&'static str, Doc)>),
    /// A part rendered before, shared by several documents (provenance, product state).
    Shared(Rc<Rendered>),
}

pub struct Rendered {
    pub json: Vec<u8>,
    pub value: Value,
}

impl Doc {
    pub fn opt_str(text: Option<&str>) -> Doc {
        text.map_or(Doc::Null, |t| Doc::Str(t.to_string()))
    }

    pub fn render(&self) -> Rendered {
        Rendered { json: self.json(), value: self.value() }
    }

    pub fn json(&self) -> Vec<u8> {
        let mut json = Vec::with_capacity(512);
        self.write(&mut json);
        json
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Doc::Null => out.extend_from_slice(b"null"),
            Doc::Bool(true) => out.extend_from_slice(b"true"),
            Doc::Bool(false) => out.extend_from_slice(b"false"),
            Doc::Int(n) => out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
            Doc::Str(s) => write_str(out, s),
            Doc::Obj(fields) => {
                out.push(b'{');
                for (i, (key, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_str(out, key);
                    out.push(b':');
                    value.write(out);
                }
                out.push(b'}');
            }
            Doc::Shared(part) => out.extend_from_slice(&part.json),
        }
    }

    fn value(&self) -> Value {
        match self {
            Doc::Null => Value::Null,
            Doc::Bool(b) => Value::Bool(*b),
            Doc::Int(n) => Value::from(*n),
            Doc::Str(s) => Value::from(s.as_str()),
            Doc::Obj(fields) => Value::Object(
                fields.iter().map(|(k, v)| (k.to_string(), v.value())).collect::<Map<_, _>>(),
            ),
            Doc::Shared(part) => part.value.clone(),
        }
    }
}

/// A JSON string with serde_json's escapes (those of orjson: `\"`, `\\`, the short forms
/// of control characters, `\u00XX` for the others; everything else as UTF-8).
fn write_str(out: &mut Vec<u8>, text: &str) {
    serde_json::to_writer(&mut *out, text).expect("writing to a Vec cannot fail");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_in_order() {
        let doc = Doc::Obj(vec![
            ("b", Doc::Int(1)),
            ("a", Doc::Str("x\"y".into())),
            ("c", Doc::Obj(vec![("z", Doc::Null), ("y", Doc::Bool(true))])),
        ]);
        let r = doc.render();
        assert_eq!(r.json, br#"{"b":1,"a":"x\"y","c":{"z":null,"y":true}}"#);
        assert_eq!(serde_json::from_slice::<Value>(&r.json).unwrap(), r.value);
    }
}
