//! A JSON document built once: written as the bytes the worker publishes (keys in the
//! order the Python stages build their dicts, compact, as orjson writes them; an exact
//! decimal as the text `seam.changes.json_default` writes), and
//! validated as it is by the schema validators (`DocJson` makes it a representation the
//! jsonschema crate walks, like its own `serde_json::Value`).

use std::borrow::Cow;
use std::rc::Rc;

use jsonschema::json::{cmp, Array, Json, JsonNumber, Node, NodeIdentity, Object};
use jsonschema::JsonType;
use serde_json::{Map, Number, Value};

/// Texts are borrowed from the record and the plan where they can be.
#[derive(Default, Clone, Debug)]
pub enum Doc<'a> {
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    Str(Cow<'a, str>),
    /// Python's `Decimal`: a JSON string of its plain text.
    Dec(Dec),
    Obj(Vec<(&'a str, Doc<'a>)>),
    /// A part written once and shared by several documents (provenance, the entity state).
    Shared(Rc<Part<'a>>),
}

/// An exact decimal: `unscaled` * 10^-`scale` (Python's Decimal with exponent -scale).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dec {
    pub unscaled: i128,
    pub scale: u32,
}

impl Dec {
    /// `format(Decimal, "f")`: trailing zeros kept, no exponent.
    pub fn text(&self) -> String {
        let digits = self.unscaled.unsigned_abs().to_string();
        let scale = self.scale as usize;
        let mut out = String::with_capacity(digits.len() + scale + 3);
        if self.unscaled < 0 {
            out.push('-');
        }
        if scale == 0 {
            out.push_str(&digits);
        } else if digits.len() > scale {
            out.push_str(&digits[..digits.len() - scale]);
            out.push('.');
            out.push_str(&digits[digits.len() - scale..]);
        } else {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', scale - digits.len()));
            out.push_str(&digits);
        }
        out
    }

    /// The same number with trailing zeros of the fraction dropped (for comparisons).
    pub fn normal(&self) -> (i128, u32) {
        let (mut n, mut s) = (self.unscaled, self.scale);
        while s > 0 && n % 10 == 0 {
            n /= 10;
            s -= 1;
        }
        (n, s)
    }

    pub fn is_zero(&self) -> bool {
        self.unscaled == 0
    }
}

#[derive(Debug)]
pub struct Part<'a> {
    pub doc: Doc<'a>,
    pub json: Vec<u8>,
}

impl<'a> Doc<'a> {
    pub fn text(text: &'a str) -> Doc<'a> {
        Doc::Str(Cow::Borrowed(text))
    }

    pub fn owned(text: String) -> Doc<'a> {
        Doc::Str(Cow::Owned(text))
    }

    pub fn opt_str(text: Option<&'a str>) -> Doc<'a> {
        text.map_or(Doc::Null, Doc::text)
    }

    pub fn share(self) -> Rc<Part<'a>> {
        let json = self.json();
        Rc::new(Part { doc: self, json })
    }

    /// The document itself, through a shared part.
    fn resolved(&self) -> &Doc<'a> {
        match self {
            Doc::Shared(part) => part.doc.resolved(),
            doc => doc,
        }
    }

    pub fn json(&self) -> Vec<u8> {
        let mut json = Vec::with_capacity(2048); // an event: ~1.5 KB
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
            Doc::Dec(d) => write_str(out, &d.text()),
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
            Doc::Str(s) => Value::from(s.as_ref()),
            Doc::Dec(d) => Value::from(d.text()),
            Doc::Obj(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.value()))
                    .collect::<Map<_, _>>(),
            ),
            Doc::Shared(part) => part.doc.value(),
        }
    }
}

/// `Doc` as a JSON representation the validators walk.
pub struct DocJson;

impl Json for DocJson {
    type Node<'a> = &'a Doc<'a>;
    type PreparedKey = String;
    type StringBuffer = Doc<'static>;

    fn prepare_key(key: &str) -> String {
        key.to_owned()
    }

    fn with_string_node<T>(
        buffer: &mut Doc<'static>,
        string: &str,
        f: impl for<'x> FnOnce(&'x Doc<'x>) -> T,
    ) -> T {
        *buffer = Doc::owned(string.to_owned());
        f(buffer)
    }
}

pub struct DocNumber(i64);

impl JsonNumber for DocNumber {
    fn as_u64(&self) -> Option<u64> {
        u64::try_from(self.0).ok()
    }
    fn as_i64(&self) -> Option<i64> {
        Some(self.0)
    }
    fn as_f64(&self) -> Option<f64> {
        Some(self.0 as f64)
    }
    fn as_str(&self) -> Cow<'_, str> {
        Cow::Owned(self.0.to_string())
    }
    fn to_number(&self) -> Cow<'_, Number> {
        Cow::Owned(Number::from(self.0))
    }
    fn is_integer(&self) -> bool {
        true
    }
    fn is_written_as_integer(&self) -> bool {
        true
    }
}

#[derive(Clone, Copy)]
pub struct DocObject<'a>(&'a [(&'a str, Doc<'a>)]);

pub struct Members<'a>(std::slice::Iter<'a, (&'a str, Doc<'a>)>);

impl<'a> Iterator for Members<'a> {
    type Item = (&'a str, &'a Doc<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(key, value)| (*key, value))
    }
}

impl<'a> Object<'a, DocJson> for DocObject<'a> {
    type Node = &'a Doc<'a>;
    type MemberName = &'a str;
    type MembersIter = Members<'a>;

    fn len(&self) -> usize {
        self.0.len()
    }
    fn get(&self, key: &String) -> Option<&'a Doc<'a>> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    fn members(&self) -> Members<'a> {
        Members(self.0.iter())
    }
}

/// Documents hold no arrays; the type completes the representation.
#[derive(Clone, Copy)]
pub struct DocArray<'a>(&'a [Doc<'a>]);

impl<'a> Array<'a, DocJson> for DocArray<'a> {
    type Node = &'a Doc<'a>;
    type ElementsIter = std::slice::Iter<'a, Doc<'a>>;

    fn len(&self) -> usize {
        self.0.len()
    }
    fn elements(&self) -> std::slice::Iter<'a, Doc<'a>> {
        self.0.iter()
    }
}

impl<'a> Node<'a, DocJson> for &'a Doc<'a> {
    type Object = DocObject<'a>;
    type Array = DocArray<'a>;
    type Number = DocNumber;

    fn as_object(&self) -> Option<DocObject<'a>> {
        match self.resolved() {
            Doc::Obj(fields) => Some(DocObject(fields)),
            _ => None,
        }
    }
    fn as_array(&self) -> Option<DocArray<'a>> {
        None
    }
    fn as_string(&self) -> Option<Cow<'a, str>> {
        match self.resolved() {
            Doc::Str(s) => Some(Cow::Borrowed(s.as_ref())),
            Doc::Dec(d) => Some(Cow::Owned(d.text())),
            _ => None,
        }
    }
    fn as_number(&self) -> Option<DocNumber> {
        match self.resolved() {
            Doc::Int(n) => Some(DocNumber(*n)),
            _ => None,
        }
    }
    fn as_boolean(&self) -> Option<bool> {
        match self.resolved() {
            Doc::Bool(b) => Some(*b),
            _ => None,
        }
    }
    fn is_null(&self) -> bool {
        matches!(self.resolved(), Doc::Null)
    }
    fn json_type(&self) -> JsonType {
        match self.resolved() {
            Doc::Null => JsonType::Null,
            Doc::Bool(_) => JsonType::Boolean,
            Doc::Int(_) => JsonType::Number,
            Doc::Str(_) | Doc::Dec(_) => JsonType::String,
            Doc::Obj(_) => JsonType::Object,
            Doc::Shared(_) => unreachable!("resolved"),
        }
    }
    fn equals_value(&self, expected: &Value) -> bool {
        // `const` and `enum` (event type, entity, version, status, currency) on the hot path:
        // scalars compare without building a Value.
        match (self.resolved(), expected) {
            (Doc::Null, _) => expected.is_null(),
            (Doc::Bool(b), _) => expected.as_bool() == Some(*b),
            (Doc::Str(s), _) => expected.as_str() == Some(s.as_ref()),
            (Doc::Dec(d), _) => expected.as_str() == Some(d.text().as_str()),
            (Doc::Int(n), Value::Number(e)) => {
                e.as_i64() == Some(*n) || e.as_f64() == Some(*n as f64)
            }
            (Doc::Int(_), _) => false,
            (doc, _) => cmp::equal(&doc.value(), expected),
        }
    }
    fn to_value(&self) -> Cow<'a, Value> {
        Cow::Owned(self.value())
    }
    fn identity(&self) -> Option<NodeIdentity> {
        Some(NodeIdentity::new(
            std::ptr::from_ref::<Doc>(self.resolved()) as usize,
        ))
    }
}

/// A JSON string with serde_json's escapes (those of orjson: `\"`, `\\`, the short forms
/// of control characters, `\u00XX` for the others; everything else as UTF-8).
fn write_str(out: &mut Vec<u8>, text: &str) {
    if !needs_escape(text.as_bytes()) {
        // Nothing to escape (the usual case): the text as it is, quoted.
        out.reserve(text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(&mut *out, text).expect("writing to a Vec cannot fail");
    }
}

/// Whether `bytes` hold a control character, `"` or `\\`: eight bytes at a time (the
/// check runs over every text of every event written; byte by byte it was the costliest
/// part of writing them).
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // `x` has a zero byte exactly when `has_zero(x) != 0` (the classic bit trick: a
    // borrow only starts at a byte that underflows).
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let x = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        // Control characters: a byte below 0x20 (a byte >= 0x80 never counts: `!x`).
        let control = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
        if control
            | has_zero(x ^ (ONES * u64::from(b'"')))
            | has_zero(x ^ (ONES * u64::from(b'\\')))
            != 0
        {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_in_order() {
        let doc = Doc::Obj(vec![
            ("b", Doc::Int(1)),
            ("a", Doc::text("x\"y")),
            (
                "c",
                Doc::Obj(vec![("z", Doc::Null), ("y", Doc::Bool(true))]),
            ),
        ]);
        let json = doc.json();
        assert_eq!(json, br#"{"b":1,"a":"x\"y","c":{"z":null,"y":true}}"#);
        assert_eq!(serde_json::from_slice::<Value>(&json).unwrap(), doc.value());
    }

    #[test]
    fn escapes_found_wherever_they_are() {
        let plain = |b: u8| b >= 0x20 && b != b'"' && b != b'\\';
        for len in 0..20 {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut text = vec![b'a'; len];
                    text[at] = b;
                    assert_eq!(needs_escape(&text), !plain(b), "{b:#x} at {at} of {len}");
                }
            }
        }
        assert!(!needs_escape("Ideal für Café und Küche €".as_bytes()));
    }

    #[test]
    fn decimals_as_python_writes_them() {
        let d = |unscaled, scale| Dec { unscaled, scale }.text();
        assert_eq!(d(1250, 2), "12.50");
        assert_eq!(d(5, 3), "0.005");
        assert_eq!(d(0, 2), "0.00");
        assert_eq!(d(-5, 1), "-0.5");
        assert_eq!(d(7, 0), "7");
        assert_eq!(
            Dec {
                unscaled: 1200,
                scale: 3
            }
            .normal(),
            (12, 1)
        );
    }
}
