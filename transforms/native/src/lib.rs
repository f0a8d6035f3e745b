//! seam's compiled engine: the built-in chain decode, clean, events, validate of ANY
//! declared pipeline, executed from a plan (`seam.transforms.declared.compiled` makes it
//! from the declaration and the validate stage's schemas). Nothing here names a table, a
//! column or an event type.
//!
//! The Python stages are the reference: the engine produces byte for byte what they
//! produce, for the records it is sure about, and answers None for every other record (a
//! value a rule would refuse in the new row, a kind or value it does not handle exactly,
//! tombstones, other tables, embedded schemas, TOAST placeholders, possible key-only
//! deletes, schema violations). The worker then runs that record through the Python
//! stages, which write the event or the dead letter with its reason.
//! tests/unit/test_compiled_engine.py holds the two to the same output.

mod cell;
mod clock;
mod doc;
mod marks;
mod rules;

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyInt, PyList, PyString, PyTuple};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde::Deserialize as DeriveDeserialize;
use serde_json::Value;
use sha1::{Digest, Sha1};

use cell::{present, seen, Cell};
use clock::Zone;
use doc::{Doc, DocJson, Part};
use marks::{Position, SourceFields};
use rules::{py_eq, truthy, Fail, Flavour, Kind, Policy, Rule};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// ------------------------------------------------------------------------ the record

/// A key of a JSON object, borrowed from the record where it has no escapes.
struct Name<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Name<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Name<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Name<'a>, E> {
                Ok(Name(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Name<'a>, E> {
                Ok(Name(Cow::Owned(v.to_string())))
            }
        }
        deserializer.deserialize_str(V(std::marker::PhantomData))
    }
}

/// A row of a Debezium envelope: its columns in the order sent (a later duplicate wins,
/// as in Python's dict).
struct RawRow<'a>(Vec<(Cow<'a, str>, Cell<'a>)>);

impl<'de: 'a, 'a> Deserialize<'de> for RawRow<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = RawRow<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawRow<'a>, A::Error> {
                let mut out = Vec::with_capacity(16);
                while let Some((k, v)) = map.next_entry::<Name<'a>, Cell<'a>>()? {
                    out.push((k.0, v));
                }
                Ok(RawRow(out))
            }
        }
        deserializer.deserialize_map(V(std::marker::PhantomData))
    }
}

/// The source block's fields that provenance, marks and the table need.
#[derive(DeriveDeserialize)]
#[allow(non_snake_case)]
struct Source<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    table: Option<Cell<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    connector: Option<Cell<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    name: Option<Cell<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    db: Option<Cell<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    schema: Option<Cell<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    snapshot: Option<Cell<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    lsn: Option<Cell<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    txId: Option<Cell<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    sequence: Option<Cell<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    file: Option<Cell<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    pos: Option<Cell<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    row: Option<Cell<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    gtid: Option<Cell<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    server_id: Option<Cell<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    ts_ns: Option<Cell<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    ts_us: Option<Cell<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    ts_ms: Option<Cell<'a>>,
}

/// A Debezium envelope without an embedded schema.
#[derive(DeriveDeserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    before: Option<RawRow<'a>>,
    #[serde(borrow, default)]
    after: Option<RawRow<'a>>,
    #[serde(borrow, default)]
    source: Option<Source<'a>>,
    #[serde(borrow, default)]
    op: Cell<'a>,
    #[serde(default, deserialize_with = "seen")]
    schema: bool,
    #[serde(default, deserialize_with = "seen")]
    payload: bool,
}

fn str_of<'a>(cell: &'a Option<Cell>) -> Option<&'a str> {
    match cell {
        Some(Cell::Str(s)) => Some(s),
        _ => None,
    }
}

/// A record's envelope, when this side reads it: UTF-8 JSON (one check of the whole
/// record, not one per string) without an embedded schema (the decoder's converters apply).
fn parse(value: &[u8]) -> Option<Envelope<'_>> {
    let doc: Envelope = serde_json::from_str(std::str::from_utf8(value).ok()?).ok()?;
    if doc.schema || doc.payload {
        return None;
    }
    Some(doc)
}

/// Debezium's placeholder for an unchanged TOASTed value, plain and base64.
const PLACEHOLDERS: [&str; 2] = [
    "__debezium_unavailable_value",
    "X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ==",
];

/// Whether `cell` may be what Debezium fills a key-only delete's other columns with
/// (`seam.streams.values.is_zero_fill`, read generously: a false yes only sends the
/// record to Python).
fn may_be_fill(cell: &Cell) -> bool {
    match cell {
        Cell::Null | Cell::Bool(false) | Cell::Int(0) | Cell::Container => true,
        Cell::Float(f) => *f == 0.0,
        Cell::Str(s) => s.bytes().all(|b| b"-0.1970T:Z+A={}[]".contains(&b)),
        _ => false,
    }
}

// ------------------------------------------------------------------------ the plan

struct Column {
    name: String,
    /// (legacy column index, its rules) per source.
    sources: Vec<(usize, Vec<Rule>)>,
    agree: bool,
    on_fail: Policy,
    default: Doc<'static>,
    required: bool,
}

struct Gone {
    field: usize,
    reason: String,
    values: Option<Vec<Doc<'static>>>,
}

enum Expr {
    State,
    GoneReason,
    Old(usize),
    New(usize),
    Key(usize),
    Text(String),
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Trigger {
    Created,
    Returned,
    Gone,
    Changed,
}

struct Event {
    kind: String,
    on: Trigger,
    fields: Vec<usize>,
    when: Vec<(usize, Vec<Doc<'static>>)>,
    /// (name, expression); None: the default data of the trigger.
    data: Option<Vec<(String, Expr)>>,
    /// Default `changed` data: old_<field>, new_<field>.
    pairs: Vec<(String, String, usize)>,
}

enum HistoryKey {
    Latest,
    KeyField(usize),
    EventType,
    Entity,
    EventId,
    Version,
}

struct Plan {
    table: String,
    /// Legacy columns the rules read, and their index.
    columns: Vec<String>,
    index: HashMap<String, usize>,
    fields: Vec<Column>,
    entity: String,
    key: Vec<usize>,
    key_names: Vec<String>,
    non_key: Vec<usize>,
    state: Vec<usize>,
    gone: Vec<Gone>,
    deleted_reason: String,
    events: Vec<Event>,
    history_key: HistoryKey,
    namespace: Vec<u8>,
}

fn invalid(what: impl fmt::Display) -> PyErr {
    pyo3::exceptions::PyValueError::new_err(format!("compiled plan: {what}"))
}

fn get<'v>(value: &'v Value, name: &str) -> PyResult<&'v Value> {
    value
        .get(name)
        .ok_or_else(|| invalid(format!("missing '{name}'")))
}

fn text(value: &Value, name: &str) -> PyResult<String> {
    get(value, name)?
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| invalid(format!("'{name}' is not a string")))
}

fn list<'v>(value: &'v Value, name: &str) -> PyResult<&'v Vec<Value>> {
    get(value, name)?
        .as_array()
        .ok_or_else(|| invalid(format!("'{name}' is not a list")))
}

fn lit(value: &Value) -> PyResult<Doc<'static>> {
    rules::literal(value).ok_or_else(|| invalid(format!("literal {value} is not supported")))
}

impl Plan {
    fn parse(plan: &Value) -> PyResult<Plan> {
        let mut zones = HashMap::new();
        if let Some(found) = plan.get("zones").and_then(Value::as_object) {
            for (name, z) in found {
                let num = |k: &str| get(z, k)?.as_i64().ok_or_else(|| invalid(k));
                let mut changes = Vec::new();
                for c in list(z, "changes")? {
                    let n = |i: usize| {
                        c.get(i)
                            .and_then(Value::as_i64)
                            .ok_or_else(|| invalid("change"))
                    };
                    changes.push((n(0)?, n(1)?, n(2)?));
                }
                zones.insert(
                    name.clone(),
                    Rc::new(Zone::new(
                        num("start")?,
                        num("end")?,
                        num("initial")?,
                        changes,
                    )),
                );
            }
        }
        let mut columns: Vec<String> = Vec::new();
        let mut index = HashMap::new();
        let mut fields = Vec::new();
        for c in list(plan, "fields")? {
            let mut sources = Vec::new();
            for s in list(c, "sources")? {
                let column = text(s, "column")?;
                let i = *index.entry(column.clone()).or_insert_with(|| {
                    columns.push(column.clone());
                    columns.len() - 1
                });
                let rules = list(s, "rules")?
                    .iter()
                    .map(|r| rules::rule(r, &zones))
                    .collect();
                sources.push((i, rules));
            }
            fields.push(Column {
                name: text(c, "name")?,
                sources,
                agree: text(c, "combine")? == "agree",
                on_fail: Policy::parse(&text(c, "on_fail")?).ok_or_else(|| invalid("on_fail"))?,
                default: lit(get(c, "default")?)?,
                required: get(c, "required")?.as_bool().unwrap_or(false),
            });
        }
        let field_names: Vec<String> = fields.iter().map(|f: &Column| f.name.clone()).collect();
        let field = |name: &str| -> PyResult<usize> {
            field_names
                .iter()
                .position(|f| f == name)
                .ok_or_else(|| invalid(format!("unknown field {name}")))
        };
        let names = |value: &Value, key: &str| -> PyResult<Vec<usize>> {
            list(value, key)?
                .iter()
                .map(|v| field(v.as_str().unwrap_or("")))
                .collect()
        };
        let entity = get(plan, "entity")?;
        let key = names(entity, "key")?;
        let key_names: Vec<String> = key.iter().map(|&i| fields[i].name.clone()).collect();
        let non_key = (0..fields.len()).filter(|i| !key.contains(i)).collect();
        let mut gone = Vec::new();
        for g in list(entity, "gone")? {
            gone.push(Gone {
                field: field(&text(g, "field")?)?,
                reason: text(g, "reason")?,
                values: match get(g, "values")? {
                    Value::Null => None,
                    Value::Array(vs) => Some(vs.iter().map(lit).collect::<PyResult<_>>()?),
                    _ => return Err(invalid("gone values")),
                },
            });
        }
        let mut events = Vec::new();
        for e in list(plan, "events")? {
            let on = match text(e, "on")?.as_str() {
                "created" => Trigger::Created,
                "returned" => Trigger::Returned,
                "gone" => Trigger::Gone,
                "changed" => Trigger::Changed,
                other => return Err(invalid(format!("trigger {other}"))),
            };
            let fields_of = names(e, "fields")?;
            let mut when = Vec::new();
            for w in list(e, "when")? {
                let pair = w.as_array().ok_or_else(|| invalid("when"))?;
                let f = field(pair.first().and_then(Value::as_str).unwrap_or(""))?;
                let values = pair
                    .get(1)
                    .and_then(Value::as_array)
                    .ok_or_else(|| invalid("when values"))?
                    .iter()
                    .map(lit)
                    .collect::<PyResult<_>>()?;
                when.push((f, values));
            }
            let data = match get(e, "data")? {
                Value::Null => None,
                Value::Array(pairs) => {
                    let mut out = Vec::new();
                    for p in pairs {
                        let name = p
                            .get(0)
                            .and_then(Value::as_str)
                            .ok_or_else(|| invalid("data"))?;
                        let expr = p
                            .get(1)
                            .and_then(Value::as_str)
                            .ok_or_else(|| invalid("data"))?;
                        let parsed = if expr == "state" {
                            Expr::State
                        } else if expr == "gone_reason" {
                            Expr::GoneReason
                        } else if let Some(t) = expr.strip_prefix('=') {
                            Expr::Text(t.to_string())
                        } else if let Some(f) = expr.strip_prefix("old.") {
                            Expr::Old(field(f)?)
                        } else if let Some(f) = expr.strip_prefix("new.") {
                            Expr::New(field(f)?)
                        } else if let Some(f) = expr.strip_prefix("key.") {
                            Expr::Key(
                                key_names
                                    .iter()
                                    .position(|k| k == f)
                                    .ok_or_else(|| invalid(format!("key field {f}")))?,
                            )
                        } else {
                            return Err(invalid(format!("expression {expr}")));
                        };
                        out.push((name.to_string(), parsed));
                    }
                    Some(out)
                }
                _ => return Err(invalid("data")),
            };
            let pairs = fields_of
                .iter()
                .map(|&i| {
                    (
                        format!("old_{}", fields[i].name),
                        format!("new_{}", fields[i].name),
                        i,
                    )
                })
                .collect();
            events.push(Event {
                kind: text(e, "type")?,
                on,
                fields: fields_of,
                when,
                data,
                pairs,
            });
        }
        let history_key = match get(plan, "history_key")? {
            Value::Null => HistoryKey::Latest,
            Value::String(s) => match s.as_str() {
                "event_type" => HistoryKey::EventType,
                "entity" => HistoryKey::Entity,
                "event_id" => HistoryKey::EventId,
                "schema_version" => HistoryKey::Version,
                name => match key_names.iter().position(|k| k == name) {
                    Some(i) => HistoryKey::KeyField(i),
                    None => return Err(invalid(format!("history key {name}"))),
                },
            },
            _ => return Err(invalid("history_key")),
        };
        let namespace = list(plan, "namespace")?
            .iter()
            .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(|| invalid("namespace"))?;
        Ok(Plan {
            table: text(plan, "table")?,
            columns,
            index,
            fields,
            entity: text(entity, "name")?,
            key,
            key_names,
            non_key,
            state: names(entity, "state")?,
            gone,
            deleted_reason: text(entity, "deleted_reason")?,
            events,
            history_key,
            namespace,
        })
    }
}

// ------------------------------------------------------------------------ the engine

/// What one record publishes: its events and the latest-topic write.
struct Outcome {
    key: String,
    /// (history key, event JSON, type, id) per event.
    events: Vec<(String, Vec<u8>, usize, String)>,
    state: Option<Vec<u8>>,
    note: Option<String>,
}

type Row<'a> = Vec<Doc<'a>>;

#[pyclass(frozen)]
struct Engine {
    plan: Plan,
    /// Per event of the plan: its schema's latest (version, validator); None: no schema.
    validators: Vec<Option<(i64, jsonschema::Validator<DocJson>)>>,
    state_validator: Option<jsonschema::Validator<DocJson>>,
    /// Per event: the `data` property that its schema checks exactly as the state schema
    /// does (`seam.transforms.stages.validate.state_embedding`): holding the state, a
    /// valid event proves it.
    embeds_state: Vec<Option<String>>,
    /// The rows of the tables that lookups read (`References.rows`, kept current by Python).
    tables: HashMap<String, Py<PyDict>>,
    /// Per event: its headers' type and version values.
    headers: Vec<(Py<PyBytes>, Py<PyBytes>)>,
    /// `seam.transforms.own_writes.OwnOrigin`: the GTID domain of seam's writer and the
    /// ledger's transaction ids (its `tx_ids`, kept current by Python).
    own_domain: Option<i64>,
    own_tx_ids: Option<Py<PyDict>>,
}

// The engine runs under the GIL only (pyclass frozen, never sent across threads).
unsafe impl Send for Engine {}
unsafe impl Sync for Engine {}

#[pymethods]
impl Engine {
    /// `plan`: the JSON of `seam.transforms.declared.compiled.plan_of`; `schemas`: event
    /// type -> (version, schema JSON) of the latest versions; `state_schema`: the name
    /// among them the latest-topic state must match (None: unchecked); `embeds_state`:
    /// event type -> data property (see `embeds_state`); `tables`: table -> its rows by key;
    /// `own_domain`, `own_tx_ids`: how seam's own writes are recognised (`OwnOrigin`).
    #[new]
    #[pyo3(signature = (plan, schemas, state_schema, embeds_state, tables, own_domain=None, own_tx_ids=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        plan: &str,
        schemas: HashMap<String, (i64, String)>,
        state_schema: Option<&str>,
        embeds_state: HashMap<String, String>,
        tables: HashMap<String, Py<PyDict>>,
        own_domain: Option<i64>,
        own_tx_ids: Option<Py<PyDict>>,
    ) -> PyResult<Self> {
        let plan: Value = serde_json::from_str(plan).map_err(invalid)?;
        let plan = Plan::parse(&plan)?;
        let compile = |name: &str, text: &str| -> PyResult<jsonschema::Validator<DocJson>> {
            let doc: Value =
                serde_json::from_str(text).map_err(|e| invalid(format!("{name}: {e}")))?;
            jsonschema::options_for::<DocJson>()
                .build(&doc)
                .map_err(|e| invalid(format!("{name}: {e}")))
        };
        let mut validators = Vec::new();
        let mut headers = Vec::new();
        for event in &plan.events {
            validators.push(match schemas.get(&event.kind) {
                Some((version, text)) => Some((*version, compile(&event.kind, text)?)),
                None => None,
            });
            let version = schemas.get(&event.kind).map_or(0, |v| v.0);
            headers.push((
                PyBytes::new(py, event.kind.as_bytes()).unbind(),
                PyBytes::new(py, version.to_string().as_bytes()).unbind(),
            ));
        }
        let state_validator = match state_schema {
            Some(name) => match schemas.get(name) {
                Some((_, text)) => Some(compile(name, text)?),
                None => return Err(invalid(format!("no schema {name}"))),
            },
            None => None,
        };
        let embeds_state = plan
            .events
            .iter()
            .map(|e| embeds_state.get(&e.kind).cloned())
            .collect();
        Ok(Engine {
            plan,
            validators,
            state_validator,
            embeds_state,
            tables,
            headers,
            own_domain,
            own_tx_ids,
        })
    }

    /// One raw record -> None (take the Python path) or what the worker publishes, in the
    /// shape of `seam.transforms.outputs.Publication`.
    fn process<'py>(
        &self,
        py: Python<'py>,
        key: Option<&[u8]>,
        value: &[u8],
        topic: &str,
        partition: i64,
        offset: i64,
    ) -> PyResult<Option<Bound<'py, PyTuple>>> {
        match self.run(py, key, value, topic, partition, offset) {
            Some((out, _, _)) => Ok(Some(self.into_python(py, out)?)),
            None => Ok(None),
        }
    }

    /// Publishes the records of `messages` from index `start` on, in order, with
    /// `producer` (a confluent-kafka Producer): each record's events to `history_topic`
    /// with their headers, its state (or a tombstone) to `latest_topic`, both with the
    /// source headers (`seam.transforms.outputs.source_headers`). Stops at the
    /// first record that takes the Python path, so that per-key order holds; returns the
    /// index it stopped at (len(messages) when done) and the counts of what it published:
    /// (stop, records, records with events, events, latest writes, {no-event reason: n},
    /// re-delivered records dropped). `marks` is `seam.transforms.redelivery.Marks.table`:
    /// a record whose mark is not above its stream's is dropped, and the marks move as
    /// Python's `Marks.redelivered` moves them.
    #[allow(clippy::too_many_arguments)]
    fn publish<'py>(
        &self,
        py: Python<'py>,
        messages: &Bound<'py, PyList>,
        start: usize,
        producer: &Bound<'py, PyAny>,
        history_topic: &Bound<'py, PyString>,
        latest_topic: &Bound<'py, PyString>,
        marks: &Bound<'py, PyDict>,
    ) -> PyResult<Published<'py>> {
        let sink = Sink {
            produce: producer.getattr(intern!(py, "produce"))?,
            poll: producer.getattr(intern!(py, "poll"))?,
        };
        let no_event = PyDict::new(py);
        let (mut records, mut with_events, mut events, mut latest) = (0, 0, 0, 0);
        let mut redelivered = 0;
        let mut index = start;
        while index < messages.len() {
            let msg = messages.get_item(index)?;
            let value = msg.call_method0(intern!(py, "value"))?;
            let Ok(bytes) = value.downcast::<PyBytes>() else {
                break; // a tombstone
            };
            let key = msg.call_method0(intern!(py, "key"))?;
            let key = key.downcast::<PyBytes>().ok().map(|k| k.as_bytes());
            let topic = msg.call_method0(intern!(py, "topic"))?;
            let partition: i64 = msg.call_method0(intern!(py, "partition"))?.extract()?;
            let Some((out, position, source)) = self.run(
                py,
                key,
                bytes.as_bytes(),
                topic.downcast::<PyString>()?.to_str()?,
                partition,
                msg.call_method0(intern!(py, "offset"))?.extract()?,
            ) else {
                break;
            };
            match mark(marks, &topic, partition, position)? {
                Some(true) => {
                    redelivered += 1;
                    index += 1;
                    continue;
                }
                Some(false) => {}
                None => break, // marks the engine cannot compare: Python decides
            }
            let latest_key = PyBytes::new(py, out.key.as_bytes());
            let source = source.tuples(py)?;
            for (history_key, body, event, id) in &out.events {
                let headers = self.header_list(py, *event, id)?;
                for header in &source {
                    headers.append(header)?;
                }
                let k = if history_key == &out.key {
                    latest_key.clone()
                } else {
                    PyBytes::new(py, history_key.as_bytes())
                };
                sink.send(
                    history_topic,
                    PyBytes::new(py, body).as_any(),
                    &k,
                    Some(&headers),
                )?;
            }
            let state = match &out.state {
                Some(s) => PyBytes::new(py, s).into_any(),
                None => py.None().into_bound(py),
            };
            let headers = if source.is_empty() {
                None
            } else {
                Some(PyList::new(py, &source)?)
            };
            sink.send(latest_topic, &state, &latest_key, headers.as_ref())?;
            records += 1;
            latest += 1;
            if out.events.is_empty() {
                let reason = out.note.as_deref().unwrap_or("no event");
                let seen: u64 = match no_event.get_item(reason)? {
                    Some(n) => n.extract()?,
                    None => 0,
                };
                no_event.set_item(reason, seen + 1)?;
            } else {
                with_events += 1;
                events += out.events.len() as u64;
            }
            index += 1;
        }
        Ok((
            index,
            records,
            with_events,
            events,
            latest,
            no_event,
            redelivered,
        ))
    }

    /// The built-in decode and clean of one record, for the Python stages that follow
    /// them: (old row, new row), each None or a dict of field -> clean value in declared
    /// order, of the very types the Python clean stage gives (None, bool, int, str, dicts of
    /// them). None (the record takes the Python stages whole) where the engine is not sure,
    /// and where a value followed its policy (absent, default) or a row Python would clean
    /// is one this side does not read: Python notes those in `item.extra`.
    fn front<'py>(
        &self,
        py: Python<'py>,
        key: Option<&[u8]>,
        value: &[u8],
    ) -> PyResult<Option<Rows<'py>>> {
        let Some(doc) = parse(value) else {
            return Ok(None);
        };
        let mut problems = false;
        let Some((op, before, after)) = self.rows(py, key, &doc, &mut problems) else {
            return Ok(None);
        };
        // Python's clean stage cleans whatever rows the record carries.
        let extra = match op {
            "d" => doc.after.is_some(),
            "u" => false,
            _ => doc.before.is_some(),
        };
        if problems || extra {
            return Ok(None);
        }
        let (Some(before), Some(after)) = (self.row_dict(py, before)?, self.row_dict(py, after)?)
        else {
            return Ok(None);
        };
        Ok(Some((before, after)))
    }

    /// The built-in events and validate, and the worker's encoding, of one record whose
    /// clean rows a Python stage handed on (`before`, `after`: the item's; the record's op,
    /// source and provenance are read from `value`, as the Python stages read them from
    /// its decoded change). What `process` returns, or None: the Python stages go on with
    /// the item (a value of another type than None, bool, int in 64 bits, str or a dict of
    /// them, a row that is not a dict, or any case `process` leaves to Python).
    #[allow(clippy::too_many_arguments)]
    fn back<'py>(
        &self,
        py: Python<'py>,
        key: Option<&[u8]>,
        value: &[u8],
        topic: &str,
        partition: i64,
        offset: i64,
        before: &Bound<'py, PyAny>,
        after: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let Some(doc) = parse(value) else {
            return Ok(None);
        };
        let Some((op, _flavour)) = self.gate(key, &doc) else {
            return Ok(None);
        };
        let (Some(old), Some(new)) = (self.owned_row(before)?, self.owned_row(after)?) else {
            return Ok(None);
        };
        fn row(owned: &Option<Vec<Owned>>) -> Option<Row<'_>> {
            owned
                .as_ref()
                .map(|values| values.iter().map(Owned::doc).collect())
        }
        let Some(source) = doc.source.as_ref() else {
            return Ok(None);
        };
        let connector = str_of(&source.connector);
        let Some(provenance) = self.provenance(source, connector, topic, partition, offset) else {
            return Ok(None);
        };
        match self.events(op, row(&old), row(&new), provenance) {
            Some(out) => Ok(Some(self.into_python(py, out)?)),
            None => Ok(None),
        }
    }
}

/// A front's clean rows: (old row, new row), each a dict or None.
type Rows<'py> = (Option<Bound<'py, PyDict>>, Option<Bound<'py, PyDict>>);

/// A value a Python stage handed on, owned (the clean rows' types only).
enum Owned {
    Null,
    Bool(bool),
    Int(i64),
    Str(String),
    Obj(Vec<(String, Owned)>),
}

impl Owned {
    /// `value` if it is exactly None, a bool, an int in 64 bits, a str, or a dict of str
    /// keys to such values; None for anything else (a subclass too: its `==` may differ).
    fn of(value: &Bound<'_, PyAny>) -> PyResult<Option<Owned>> {
        if value.is_none() {
            return Ok(Some(Owned::Null));
        }
        if let Ok(b) = value.downcast_exact::<PyBool>() {
            return Ok(Some(Owned::Bool(b.is_true())));
        }
        if value.downcast_exact::<PyInt>().is_ok() {
            return Ok(value.extract::<i64>().ok().map(Owned::Int));
        }
        if let Ok(s) = value.downcast_exact::<PyString>() {
            return Ok(s.to_str().ok().map(|s| Owned::Str(s.to_string())));
        }
        if let Ok(d) = value.downcast_exact::<PyDict>() {
            let mut fields = Vec::with_capacity(d.len());
            for (k, v) in d.iter() {
                let Ok(k) = k.downcast_exact::<PyString>() else {
                    return Ok(None);
                };
                let (Ok(k), Some(v)) = (k.to_str(), Owned::of(&v)?) else {
                    return Ok(None);
                };
                fields.push((k.to_string(), v));
            }
            return Ok(Some(Owned::Obj(fields)));
        }
        Ok(None)
    }

    fn doc(&self) -> Doc<'_> {
        match self {
            Owned::Null => Doc::Null,
            Owned::Bool(b) => Doc::Bool(*b),
            Owned::Int(n) => Doc::Int(*n),
            Owned::Str(s) => Doc::text(s),
            Owned::Obj(fields) => {
                Doc::Obj(fields.iter().map(|(k, v)| (k.as_str(), v.doc())).collect())
            }
        }
    }
}

/// A clean value as the Python object the clean stage makes of it (None: a value it makes
/// otherwise, a decimal).
fn python_of<'py>(py: Python<'py>, doc: &Doc) -> PyResult<Option<Bound<'py, PyAny>>> {
    Ok(Some(match doc {
        Doc::Null => py.None().into_bound(py),
        Doc::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Doc::Int(n) => n.into_pyobject(py)?.into_any(),
        Doc::Str(s) => PyString::new(py, s).into_any(),
        Doc::Obj(fields) => {
            let d = PyDict::new(py);
            for (k, v) in fields {
                let Some(v) = python_of(py, v)? else {
                    return Ok(None);
                };
                d.set_item(k, v)?;
            }
            d.into_any()
        }
        Doc::Shared(part) => return python_of(py, &part.doc),
        Doc::Dec(_) => return Ok(None),
    }))
}

/// The no-event reason of a change seam's own writer made (`own_writes.OWN_WRITE`).
const OWN_WRITE: &str = "own_write";

/// `seam.transforms.own_writes.gtid_domain`: the domain of `d-s-n`, all three decimal.
fn gtid_domain(gtid: &str) -> Option<i64> {
    let parts: Vec<&str> = gtid.split('-').collect();
    if parts.len() != 3
        || !parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    // Beyond i64: Python's int is no declared domain either.
    parts[0].parse().ok()
}

/// `Marks.redelivered` for a record at `position`: Some(true) when it was already
/// published, Some(false) when the marks moved (or had nothing to do), None when a stored
/// mark is not one this side can compare (the record then takes the Python path).
fn mark<'py>(
    marks: &Bound<'py, PyDict>,
    topic: &Bound<'py, PyAny>,
    partition: i64,
    position: Position,
) -> PyResult<Option<bool>> {
    let py = marks.py();
    match position {
        Position::Unmarked => Ok(Some(false)),
        Position::StartsOver(prefix) => {
            let mut gone = Vec::new();
            for key in marks.keys() {
                let Ok((t, p, stream)) = key.extract::<(Bound<PyAny>, i64, String)>() else {
                    continue;
                };
                if p == partition && t.eq(topic)? && stream.starts_with(&prefix) {
                    gone.push(key);
                }
            }
            for key in gone {
                marks.del_item(key)?;
            }
            Ok(Some(false))
        }
        Position::Mark(stream, mark, gtid) => {
            let key = PyTuple::new(
                py,
                [
                    topic.clone(),
                    partition.into_pyobject(py)?.into_any(),
                    PyString::new(py, &stream).into_any(),
                ],
            )?;
            if let Some(high) = marks.get_item(&key)? {
                let Ok(high) = high.extract::<Vec<i64>>() else {
                    return Ok(None);
                };
                if mark <= high {
                    return Ok(Some(true));
                }
            }
            marks.set_item(key, PyTuple::new(py, mark)?)?;
            if let Some((stream, seq)) = gtid {
                let key = PyTuple::new(
                    py,
                    [
                        topic.clone(),
                        partition.into_pyobject(py)?.into_any(),
                        PyString::new(py, &stream).into_any(),
                    ],
                )?;
                marks.set_item(key, PyTuple::new(py, [seq])?)?;
            }
            Ok(Some(false))
        }
    }
}

/// What `publish` returns: (stop, records, records with events, events, latest writes,
/// {no-event reason: n}, re-delivered records dropped).
type Published<'py> = (usize, u64, u64, u64, u64, Bound<'py, PyDict>, u64);

/// A producer's `produce`, retried after `poll` while its queue is full (BufferError), as
/// the worker's own `_produce` does.
struct Sink<'py> {
    produce: Bound<'py, PyAny>,
    poll: Bound<'py, PyAny>,
}

impl<'py> Sink<'py> {
    fn send(
        &self,
        topic: &Bound<'py, PyString>,
        value: &Bound<'py, PyAny>,
        key: &Bound<'py, PyBytes>,
        headers: Option<&Bound<'py, PyList>>,
    ) -> PyResult<()> {
        let py = topic.py();
        loop {
            // Positional: produce(topic, value, key, partition, on_delivery, callback,
            // timestamp, headers); -1 (any partition), None (the producer's default
            // callback) and 0 (now) are produce's own defaults.
            let sent = match headers {
                Some(h) => self
                    .produce
                    .call1((topic, value, key, -1, py.None(), py.None(), 0, h)),
                None => self.produce.call1((topic, value, key)),
            };
            match sent {
                Ok(_) => return Ok(()),
                Err(e) if e.is_instance_of::<pyo3::exceptions::PyBufferError>(py) => {
                    self.poll.call1((0.05,))?;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// `seam.transforms.outputs.source_headers`: the source time in milliseconds and the
/// change's position as `?after=` takes it, each when the source block has it.
struct SourceHeaders {
    ts_ms: Option<i64>,
    position: Option<String>,
}

impl SourceHeaders {
    /// Those of `source`; None (the Python path) for a value beyond i64, which Python
    /// writes and this side does not.
    fn of(source: &Source, connector: Option<&str>) -> Option<Self> {
        let mut ts_ms = None;
        for (cell, per_ms) in [
            (&source.ts_ns, 1_000_000_i64),
            (&source.ts_us, 1000),
            (&source.ts_ms, 1),
        ] {
            match cell {
                Some(Cell::Int(n)) => {
                    ts_ms = Some(n.div_euclid(per_ms)); // Python's floor division
                    break;
                }
                Some(Cell::BigInt) => return None,
                _ => continue,
            }
        }
        let position = if connector == Some("postgresql") {
            match &source.lsn {
                Some(Cell::Int(n)) if *n >= 0 => {
                    Some(format!("lsn:{:X}/{:X}", n >> 32, n & 0xFFFF_FFFF))
                }
                Some(Cell::BigInt) => return None,
                _ => None,
            }
        } else {
            match (&source.file, &source.pos) {
                (Some(Cell::Str(file)), Some(Cell::Int(pos))) if !file.is_empty() => {
                    Some(format!("binlog:{file}:{pos}"))
                }
                (Some(Cell::Str(_)), Some(Cell::BigInt)) => return None,
                _ => None,
            }
        };
        Some(SourceHeaders { ts_ms, position })
    }

    /// The headers as confluent-kafka takes them: (name, bytes) tuples.
    fn tuples<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyTuple>>> {
        let mut out = Vec::with_capacity(2);
        if let Some(ms) = self.ts_ms {
            out.push(PyTuple::new(
                py,
                [
                    intern!(py, "seam-source-ts-ms").as_any(),
                    PyBytes::new(py, ms.to_string().as_bytes()).as_any(),
                ],
            )?);
        }
        if let Some(position) = &self.position {
            out.push(PyTuple::new(
                py,
                [
                    intern!(py, "seam-source-position").as_any(),
                    PyBytes::new(py, position.as_bytes()).as_any(),
                ],
            )?);
        }
        Ok(out)
    }
}

/// The provenance of one record, written once for all its events.
struct Provenance<'a> {
    part: Rc<Part<'a>>,
    id_prefix: Vec<u8>,    // "<source db>|<table>|"
    position_key: Vec<u8>, // the position as sorted-key JSON
    source_ts: Option<String>,
}

/// Python's `str()` of a key value (None: one this side does not write).
fn key_str(value: &Doc) -> Option<String> {
    match value {
        Doc::Int(n) => Some(n.to_string()),
        Doc::Str(s) => Some(s.to_string()),
        Doc::Bool(true) => Some("True".into()),
        Doc::Bool(false) => Some("False".into()),
        _ => None,
    }
}

impl Engine {
    /// A clean row as the Python clean stage makes it (Some(None): no row; None: a value
    /// it makes otherwise).
    fn row_dict<'py>(
        &self,
        py: Python<'py>,
        row: Option<Row>,
    ) -> PyResult<Option<Option<Bound<'py, PyDict>>>> {
        let Some(row) = row else {
            return Ok(Some(None));
        };
        let d = PyDict::new(py);
        for (column, value) in self.plan.fields.iter().zip(&row) {
            let Some(value) = python_of(py, value)? else {
                return Ok(None);
            };
            d.set_item(&column.name, value)?;
        }
        Ok(Some(Some(d)))
    }

    /// The declared fields of a row a Python stage handed on, as `row.get(name)` reads
    /// them (Some(None): no row; None: not a dict, or a value of another type).
    fn owned_row(&self, row: &Bound<'_, PyAny>) -> PyResult<Option<Option<Vec<Owned>>>> {
        if row.is_none() {
            return Ok(Some(None));
        }
        let Ok(row) = row.downcast_exact::<PyDict>() else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(self.plan.fields.len());
        for column in &self.plan.fields {
            let value = match row.get_item(&column.name)? {
                None => Owned::Null,
                Some(v) => match Owned::of(&v)? {
                    Some(v) => v,
                    None => return Ok(None),
                },
            };
            out.push(value);
        }
        Ok(Some(Some(out)))
    }

    fn header_list<'py>(
        &self,
        py: Python<'py>,
        event: usize,
        id: &str,
    ) -> PyResult<Bound<'py, PyList>> {
        let (kind, version) = &self.headers[event];
        PyList::new(
            py,
            [
                PyTuple::new(
                    py,
                    [
                        intern!(py, "seam.event_type").as_any(),
                        kind.bind(py).as_any(),
                    ],
                )?,
                PyTuple::new(
                    py,
                    [
                        intern!(py, "seam.event_id").as_any(),
                        PyBytes::new(py, id.as_bytes()).as_any(),
                    ],
                )?,
                PyTuple::new(
                    py,
                    [
                        intern!(py, "seam.schema_version").as_any(),
                        version.bind(py).as_any(),
                    ],
                )?,
            ],
        )
    }

    fn into_python<'py>(&self, py: Python<'py>, out: Outcome) -> PyResult<Bound<'py, PyTuple>> {
        let history = PyList::empty(py);
        for (key, body, event, id) in &out.events {
            let headers = self.header_list(py, *event, id)?;
            history.append((
                PyBytes::new(py, key.as_bytes()),
                PyBytes::new(py, body),
                headers,
            ))?;
        }
        let key = PyBytes::new(py, out.key.as_bytes());
        let state = out.state.as_deref().map(|s| PyBytes::new(py, s));
        let latest = PyTuple::new(py, [key.into_any(), state.into_pyobject(py)?.into_any()])?;
        PyTuple::new(
            py,
            [
                history.into_any(),
                latest.into_any(),
                out.note.into_pyobject(py)?.into_any(),
            ],
        )
    }

    fn run<'a>(
        &'a self,
        py: Python<'_>,
        key: Option<&[u8]>,
        value: &'a [u8],
        topic: &'a str,
        partition: i64,
        offset: i64,
    ) -> Option<(Outcome, Position, SourceHeaders)> {
        let doc = parse(value)?;
        let (op, before, after) = self.rows(py, key, &doc, &mut false)?;
        let source = doc.source.as_ref()?;
        let position = marks::position(
            op,
            &SourceFields {
                connector: &source.connector,
                name: &source.name,
                db: &source.db,
                server_id: &source.server_id,
                sequence: &source.sequence,
                file: &source.file,
                pos: &source.pos,
                row: &source.row,
                gtid: &source.gtid,
                snapshot: &source.snapshot,
            },
        )?;
        let connector = str_of(&source.connector);
        let headers = SourceHeaders::of(source, connector)?;
        let own = self.own(py, source)?;
        let provenance = self.provenance(source, connector, topic, partition, offset)?;
        let mut out = self.events(op, before, after, provenance)?;
        if own {
            // seam's writer made this change and the new side published its event: the
            // state only (`seam.transforms.handling.RecordHandler.publish`).
            out.events.clear();
            out.note = Some(OWN_WRITE.to_string());
        }
        Some((out, position, headers))
    }

    /// `seam.transforms.own_writes.OwnOrigin.is_own` for a change with `source`; None (the
    /// Python path decides) for a GTID that is not ASCII (Python's digits are Unicode's).
    fn own(&self, py: Python<'_>, source: &Source) -> Option<bool> {
        if let (Some(ids), Some(Cell::Int(tx_id))) = (&self.own_tx_ids, &source.txId) {
            let ids = ids.bind(py);
            if !ids.is_empty() && ids.contains(*tx_id).ok()? {
                return Some(true);
            }
        }
        let Some(domain) = self.own_domain else {
            return Some(false);
        };
        match &source.gtid {
            Some(Cell::Str(gtid)) if !gtid.is_ascii() => None,
            Some(Cell::Str(gtid)) => Some(gtid_domain(gtid) == Some(domain)),
            _ => Some(false),
        }
    }

    /// The record's operation and connector flavour, when this side runs its change: one
    /// of the entity's table, a create, read, update or delete, not a PostgreSQL delete
    /// whose old row may carry only the key.
    fn gate<'a>(&self, key: Option<&[u8]>, doc: &'a Envelope<'a>) -> Option<(&'a str, Flavour)> {
        let source = doc.source.as_ref()?;
        if str_of(&source.table)? != self.plan.table {
            return None;
        }
        let Cell::Str(op) = &doc.op else {
            return None;
        };
        let op: &str = op;
        if !matches!(op, "c" | "r" | "u" | "d") {
            return None;
        }
        let connector = str_of(&source.connector);
        let flavour = Flavour {
            unit: if connector == Some("postgresql") {
                1
            } else {
                1000
            },
        };
        if op == "d"
            && connector == Some("postgresql")
            && self.maybe_key_only(key, doc.before.as_ref()?)?
        {
            return None;
        }
        Some((op, flavour))
    }

    /// The built-in decode and clean: the record's operation and its clean old and new
    /// rows (`CleanStage`). `problems` is set when a value followed a policy other than
    /// refusing the record (absent, default; any in the old row), which Python notes in
    /// `item.extra`.
    fn rows<'a>(
        &'a self,
        py: Python<'_>,
        key: Option<&[u8]>,
        doc: &'a Envelope<'a>,
        problems: &mut bool,
    ) -> Option<(&'a str, Option<Row<'a>>, Option<Row<'a>>)> {
        let (op, flavour) = self.gate(key, doc)?;
        let (before, after) = match (op, &doc.before, &doc.after) {
            ("c" | "r", _, Some(new)) => (
                None,
                Some(self.clean(py, new, true, flavour, None, problems)?),
            ),
            ("u", Some(old), Some(new)) => {
                let new_row = self.clean(py, new, true, flavour, None, problems)?;
                let old = self.clean(py, old, false, flavour, Some((new, &new_row)), problems)?;
                (Some(old), Some(new_row))
            }
            ("d", Some(old), _) => (
                Some(self.clean(py, old, false, flavour, None, problems)?),
                None,
            ),
            _ => return None,
        };
        Some((op, before, after))
    }

    /// Whether a PostgreSQL delete's old row may carry only the key (the decoder then
    /// makes its other columns unavailable): Python's case.
    fn maybe_key_only(&self, key: Option<&[u8]>, before: &RawRow) -> Option<bool> {
        let Some(key) = key else {
            return Some(false);
        };
        let Ok(key) = serde_json::from_slice::<RawRow>(key) else {
            return Some(false); // not a JSON object: no key, nothing made unavailable
        };
        let names: Vec<&str> = key.0.iter().map(|(k, _)| k.as_ref()).collect();
        if names.len() == 2 && names.contains(&"schema") && names.contains(&"payload") {
            return None; // a key with its schema: Python reads it
        }
        if names.is_empty() || names.iter().any(|n| !before.0.iter().any(|(c, _)| c == n)) {
            return Some(false);
        }
        let mut others = before
            .0
            .iter()
            .filter(|(c, _)| !names.contains(&c.as_ref()))
            .peekable();
        if others.peek().is_none() {
            return Some(false);
        }
        Some(others.all(|(_, v)| may_be_fill(v)))
    }

    /// The legacy columns the rules read, in the plan's order.
    fn cells<'a>(&self, raw: &'a RawRow<'a>) -> Vec<Option<&'a Cell<'a>>> {
        let plan = &self.plan;
        let mut cells: Vec<Option<&'a Cell<'a>>> = vec![None; plan.columns.len()];
        for (name, cell) in &raw.0 {
            if let Some(&i) = plan.index.get(name.as_ref()) {
                cells[i] = Some(cell);
            }
        }
        cells
    }

    /// `TablePlan.clean`: the clean row, or None (Python's case: a rejected new row, a
    /// value this side does not handle exactly). `like`: the raw and clean new row of an
    /// update (cleaned strictly, so with no rejected field), for its old row: a field made
    /// from the very same legacy values is taken from it rather than computed again
    /// (Python's `like`: rules are functions of their values, lookups stay the same
    /// within a record).
    fn clean<'a>(
        &'a self,
        py: Python<'_>,
        raw: &'a RawRow<'a>,
        strict: bool,
        flavour: Flavour,
        like: Option<(&'a RawRow<'a>, &Row<'a>)>,
        problems: &mut bool,
    ) -> Option<Row<'a>> {
        let plan = &self.plan;
        let cells = self.cells(raw);
        let like = like.map(|(raw, row)| (self.cells(raw), row));
        let mut out = Vec::with_capacity(plan.fields.len());
        for (f, column) in plan.fields.iter().enumerate() {
            if let Some((other, row)) = &like {
                if !strict && column.sources.iter().all(|(i, _)| cells[*i] == other[*i]) {
                    out.push(row[f].clone());
                    continue;
                }
            }
            let value = match self.column(py, column, &cells, flavour)? {
                Ok(v) if v.is_null() => column.default.clone(),
                Ok(v) => v,
                Err(policy) => {
                    if policy == Policy::Reject && strict {
                        return None;
                    }
                    *problems = true;
                    if policy == Policy::Default {
                        column.default.clone()
                    } else {
                        Doc::Null
                    }
                }
            };
            if strict && column.required && value.is_null() {
                return None;
            }
            if matches!(value, Doc::Dec(_)) {
                // Python validates its Decimal as a number (and publishes it as text):
                // whether a schema accepts it is Python's to tell.
                return None;
            }
            out.push(value);
        }
        Some(out)
    }

    /// One field's value: Ok, or Err(the policy of the rule that failed); None: aside.
    fn column<'a>(
        &'a self,
        py: Python<'_>,
        column: &'a Column,
        cells: &[Option<&'a Cell<'a>>],
        flavour: Flavour,
    ) -> Option<Result<Doc<'a>, Policy>> {
        let mut known: Vec<Doc<'a>> = Vec::new();
        for (i, rules) in &column.sources {
            let value = match cells[*i] {
                None | Some(Cell::Null) => Doc::Null,
                Some(Cell::Bool(b)) => Doc::Bool(*b),
                Some(Cell::Int(n)) => Doc::Int(*n),
                Some(Cell::Str(s)) => {
                    if PLACEHOLDERS.contains(&s.as_ref()) {
                        return None; // an unchanged TOASTed value: the decoder's care
                    }
                    Doc::text(s)
                }
                Some(_) => return None, // floats, huge integers, structs: Python's
            };
            match self.chain(py, rules, value, column.on_fail, flavour)? {
                Err(policy) => return Some(Err(policy)),
                Ok(Doc::Null) => {}
                Ok(v) if !column.agree => return Some(Ok(v)),
                Ok(v) => known.push(v),
            }
        }
        let Some(first) = known.first() else {
            return Some(Ok(Doc::Null));
        };
        for other in &known[1..] {
            if !py_eq(other, first)? {
                return Some(Err(column.on_fail));
            }
        }
        Some(Ok(known.swap_remove(0)))
    }

    /// `clean._chain`: Ok(value) or Err(policy); None: aside.
    fn chain<'a>(
        &'a self,
        py: Python<'_>,
        rules: &'a [Rule],
        mut value: Doc<'a>,
        policy: Policy,
        flavour: Flavour,
    ) -> Option<Result<Doc<'a>, Policy>> {
        for rule in rules {
            if value.is_null() && !rule.takes_null {
                continue;
            }
            let kept = rule.kind.repairs().then(|| value.clone());
            let result = match &rule.kind {
                Kind::Lookup { table, field } => self.lookup(py, table, field, value),
                kind => kind.apply(value, flavour),
            };
            match result {
                Ok(v) => value = v,
                Err(Fail::Aside) => return None,
                Err(Fail::Unfixable) => {
                    let chosen = rule.on_fail.unwrap_or(policy);
                    if chosen == Policy::Repair {
                        if let Some(original) = kept {
                            match rule.kind.repair(original) {
                                Ok(v) => {
                                    value = v;
                                    continue;
                                }
                                Err(Fail::Aside) => return None,
                                Err(Fail::Unfixable) => return Some(Err(Policy::Reject)),
                            }
                        }
                        return Some(Err(Policy::Absent)); // no repair: as absent
                    }
                    return Some(Err(chosen));
                }
            }
        }
        Some(Ok(value))
    }

    /// `References.lookup`: {id, <field>} from the table's rows, {id, resolved: false}
    /// when the row or its field is unknown.
    fn lookup<'a>(
        &'a self,
        py: Python<'_>,
        table: &str,
        field: &'a str,
        value: Doc<'a>,
    ) -> rules::Out<'a> {
        let rows = self.tables.get(table).ok_or(Fail::Aside)?.bind(py);
        let id = match &value {
            Doc::Int(n) => n.into_pyobject(py).map_err(|_| Fail::Aside)?.into_any(),
            Doc::Str(s) => PyString::new(py, s).into_any(),
            Doc::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
            _ => return Err(Fail::Aside),
        };
        let name = match rows.get_item(id).map_err(|_| Fail::Aside)? {
            None => Doc::Null,
            Some(row) => {
                let row = row.downcast::<PyDict>().map_err(|_| Fail::Aside)?;
                match row.get_item(field).map_err(|_| Fail::Aside)? {
                    None => Doc::Null,
                    Some(v) if v.is_none() => Doc::Null,
                    Some(v) => {
                        if let Ok(s) = v.downcast_exact::<PyString>() {
                            Doc::owned(s.to_str().map_err(|_| Fail::Aside)?.to_string())
                        } else if let Ok(b) = v.downcast_exact::<PyBool>() {
                            Doc::Bool(b.is_true())
                        } else if v.downcast_exact::<PyInt>().is_ok() {
                            Doc::Int(v.extract().map_err(|_| Fail::Aside)?)
                        } else {
                            return Err(Fail::Aside);
                        }
                    }
                }
            }
        };
        Ok(Doc::Obj(if name.is_null() {
            vec![("id", value), ("resolved", Doc::Bool(false))]
        } else {
            vec![("id", value), (field, name)]
        }))
    }

    /// `EntityDecl.gone_reason` of a live row: None when it is live.
    fn gone_reason<'a>(&'a self, row: &Row) -> Option<Option<&'a str>> {
        for gone in &self.plan.gone {
            let value = &row[gone.field];
            let holds = match &gone.values {
                None => truthy(value),
                Some(values) => {
                    let mut found = false;
                    for v in values {
                        if py_eq(value, v)? {
                            found = true;
                            break;
                        }
                    }
                    found
                }
            };
            if holds {
                return Some(Some(&gone.reason));
            }
        }
        Some(None)
    }

    /// `EntityPlan.process` + validate + the worker's encoding.
    fn events<'a>(
        &'a self,
        op: &str,
        before: Option<Row<'a>>,
        after: Option<Row<'a>>,
        prov: Provenance<'a>,
    ) -> Option<Outcome> {
        let plan = &self.plan;
        // The entity's key: from the new row, else the old one (else Python's case).
        let key: Vec<Doc<'a>> = [after.as_ref(), before.as_ref()]
            .into_iter()
            .flatten()
            .map(|row| plan.key.iter().map(|&i| row[i].clone()).collect::<Vec<_>>())
            .find(|values| values.iter().all(|v| !v.is_null()))?;
        let mut todo: Vec<(usize, Option<&'a str>)> = Vec::new();
        let mut state: Option<Rc<Part<'a>>> = None;
        let mut note: Option<String> = None;
        let triggered = |on: Trigger| {
            plan.events
                .iter()
                .enumerate()
                .filter(move |(_, e)| e.on == on)
                .map(|(i, _)| i)
        };
        let entity = &plan.entity;
        match op {
            "c" | "r" => {
                let new = after.as_ref()?;
                match self.gone_reason(new)? {
                    None => {
                        state = Some(self.state_of(new).share());
                        todo.extend(triggered(Trigger::Created).map(|i| (i, None)));
                    }
                    Some(reason) => note = Some(format!("created {entity} is gone ({reason})")),
                }
            }
            "d" => {
                let old = before.as_ref()?;
                let unknown = plan.non_key.iter().all(|&i| old[i].is_null());
                if unknown || self.gone_reason(old)?.is_none() {
                    todo.extend(
                        triggered(Trigger::Gone).map(|i| (i, Some(plan.deleted_reason.as_str()))),
                    );
                } else {
                    note = Some(format!("delete of a gone {entity}"));
                }
            }
            _ => {
                let (old, new) = (before.as_ref()?, after.as_ref()?);
                let (was, now) = (self.gone_reason(old)?, self.gone_reason(new)?);
                if now.is_none() {
                    state = Some(self.state_of(new).share());
                }
                match (was, now) {
                    (None, Some(reason)) => {
                        todo.extend(triggered(Trigger::Gone).map(|i| (i, Some(reason))))
                    }
                    (Some(_), None) => todo.extend(triggered(Trigger::Returned).map(|i| (i, None))),
                    (None, None) => {
                        for i in triggered(Trigger::Changed) {
                            if self.changed(&plan.events[i], old, new)? {
                                todo.push((i, None));
                            }
                        }
                        if todo.is_empty() {
                            note = Some("no-op update".into());
                        }
                    }
                    (Some(_), Some(_)) => note = Some(format!("update of a gone {entity}")),
                }
            }
        }
        let latest_key = if key.len() == 1 {
            key_str(&key[0])?
        } else {
            // orjson.dumps(list(values)): only texts and integers here.
            if !key.iter().all(|k| matches!(k, Doc::Int(_) | Doc::Str(_))) {
                return None;
            }
            let mut out = Vec::from(*b"[");
            for (i, k) in key.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(&k.json());
            }
            out.push(b']');
            String::from_utf8(out).ok()?
        };
        if todo.is_empty() && note.is_none() {
            note = Some("no event declared for this change".into());
        }
        let mut proven = false;
        let mut encoded = Vec::with_capacity(todo.len());
        for (event_index, reason) in todo {
            let event = &plan.events[event_index];
            let data = self.data(
                event,
                before.as_ref(),
                after.as_ref(),
                state.as_ref(),
                reason,
                &key,
            );
            let (version, validator) = self.validators[event_index].as_ref()?;
            let id = self.event_id(&prov, &latest_key, &event.kind);
            let mut fields = vec![
                ("event_id", Doc::text(&id)),
                ("event_type", Doc::text(&event.kind)),
                ("entity", Doc::text(entity)),
            ];
            for (name, value) in plan.key_names.iter().zip(&key) {
                fields.push((name.as_str(), value.clone()));
            }
            fields.push(("occurred_at", Doc::opt_str(prov.source_ts.as_deref())));
            fields.push(("data", data));
            fields.push(("provenance", Doc::Shared(prov.part.clone())));
            fields.push(("schema_version", Doc::Int(*version)));
            let doc = Doc::Obj(fields);
            if !validator.is_valid(&doc) {
                return None; // Python rejects it, with the reason
            }
            if let (Some(property), Some(s)) = (&self.embeds_state[event_index], &state) {
                proven |= embedded(&doc, property).is_some_and(|p| Rc::ptr_eq(p, s));
            }
            let history_key = match plan.history_key {
                HistoryKey::Latest => latest_key.clone(),
                HistoryKey::KeyField(i) => key_str(&key[i])?,
                HistoryKey::EventType => event.kind.clone(),
                HistoryKey::Entity => entity.clone(),
                HistoryKey::EventId => id.clone(),
                HistoryKey::Version => version.to_string(),
            };
            encoded.push((history_key, doc.json(), event_index, id));
        }
        if let (Some(s), Some(check), false) = (&state, &self.state_validator, proven) {
            if !check.is_valid(&s.doc) {
                return None;
            }
        }
        drop(key);
        let state = state.map(|s| Rc::try_unwrap(s).map_or_else(|s| s.json.clone(), |s| s.json));
        Some(Outcome {
            key: latest_key,
            events: encoded,
            state,
            note,
        })
    }

    fn state_of<'a>(&'a self, row: &Row<'a>) -> Doc<'a> {
        Doc::Obj(
            self.plan
                .state
                .iter()
                .filter(|&&i| !row[i].is_null())
                .map(|&i| (self.plan.fields[i].name.as_str(), row[i].clone()))
                .collect(),
        )
    }

    /// `entity._changed`: one of the fields differs, and each `when` holds.
    fn changed(&self, event: &Event, old: &Row, new: &Row) -> Option<bool> {
        let mut differs = false;
        for &f in &event.fields {
            if !py_eq(&old[f], &new[f])? {
                differs = true;
                break;
            }
        }
        if !differs {
            return Some(false);
        }
        for (f, values) in &event.when {
            let mut found = false;
            for v in values {
                if py_eq(&new[*f], v)? {
                    found = true;
                    break;
                }
            }
            if !found {
                return Some(false);
            }
        }
        Some(true)
    }

    /// `entity._data`.
    fn data<'a>(
        &'a self,
        event: &'a Event,
        before: Option<&Row<'a>>,
        after: Option<&Row<'a>>,
        state: Option<&Rc<Part<'a>>>,
        reason: Option<&'a str>,
        key: &[Doc<'a>],
    ) -> Doc<'a> {
        let of = |row: Option<&Row<'a>>, i: usize| row.map_or(Doc::Null, |r| r[i].clone());
        let Some(exprs) = &event.data else {
            if event.on != Trigger::Changed {
                return Doc::Obj(Vec::new());
            }
            let mut out: Vec<(&'a str, Doc<'a>)> = Vec::new();
            for (old_name, new_name, i) in &event.pairs {
                for (name, value) in [(old_name, of(before, *i)), (new_name, of(after, *i))] {
                    match out.iter_mut().find(|(k, _)| *k == name.as_str()) {
                        Some(slot) => slot.1 = value,
                        None => out.push((name.as_str(), value)),
                    }
                }
            }
            return Doc::Obj(out);
        };
        let mut out: Vec<(&'a str, Doc<'a>)> = Vec::with_capacity(exprs.len());
        for (name, expr) in exprs {
            let value = match expr {
                Expr::State => state.map_or(Doc::Null, |s| Doc::Shared(s.clone())),
                Expr::GoneReason => Doc::opt_str(reason),
                Expr::Old(i) => of(before, *i),
                Expr::New(i) => of(after, *i),
                Expr::Key(i) => key[*i].clone(),
                Expr::Text(t) => Doc::text(t),
            };
            out.push((name.as_str(), value));
        }
        Doc::Obj(out)
    }

    /// `seam.transforms.provenance.provenance`, and the parts of it event ids hang on.
    fn provenance<'a>(
        &'a self,
        source: &'a Source<'a>,
        connector: Option<&'a str>,
        topic: &'a str,
        partition: i64,
        offset: i64,
    ) -> Option<Provenance<'a>> {
        let fields: [(&'static str, &'a Option<Cell<'a>>); 5] =
            if source.lsn.is_some() || source.txId.is_some() {
                [
                    ("lsn", &source.lsn),
                    ("tx_id", &source.txId),
                    ("sequence", &source.sequence),
                    ("", &None),
                    ("", &None),
                ]
            } else {
                [
                    ("binlog_file", &source.file),
                    ("binlog_pos", &source.pos),
                    ("binlog_row", &source.row),
                    ("gtid", &source.gtid),
                    ("server_id", &source.server_id),
                ]
            };
        let mut position = Vec::new();
        for (name, cell) in fields {
            match cell {
                Some(Cell::Str(s)) => position.push((name, Doc::text(s))),
                Some(Cell::Int(n)) => position.push((name, Doc::Int(*n))),
                Some(Cell::BigInt) => return None,
                _ => {}
            }
        }
        if position.is_empty() {
            return None; // event ids then hang on topic/partition/offset: Python's case
        }
        // orjson.dumps(position, option=OPT_SORT_KEYS), for the event ids.
        let mut sorted: Vec<_> = position.iter().map(|(k, v)| (*k, v)).collect();
        sorted.sort_by_key(|(k, _)| *k);
        let mut position_key = vec![b'{'];
        for (i, (k, v)) in sorted.into_iter().enumerate() {
            if i > 0 {
                position_key.push(b',');
            }
            position_key.push(b'"');
            position_key.extend_from_slice(k.as_bytes());
            position_key.extend_from_slice(b"\":");
            position_key.extend_from_slice(&v.json());
        }
        position_key.push(b'}');
        // TableRef.qualified: namespace = schema if the key is there, else db.
        let namespace = if source.schema.is_some() {
            &source.schema
        } else {
            &source.db
        };
        let table = match str_of(namespace) {
            Some(ns) if !ns.is_empty() => [ns, ".", &self.plan.table].concat(),
            _ => self.plan.table.clone(),
        };
        // `snapshot not in (None, False, "false")`, with Python's 0 == False.
        let snapshot = match &source.snapshot {
            None | Some(Cell::Null) | Some(Cell::Bool(false)) | Some(Cell::Int(0)) => false,
            Some(Cell::Float(f)) => *f != 0.0,
            Some(Cell::Str(s)) => s != "false",
            Some(_) => true,
        };
        let source_ts = source_ts(source)?;
        let db = str_of(&source.db);
        let doc = Doc::Obj(vec![
            ("source_db", Doc::opt_str(db)),
            ("connector", Doc::opt_str(connector)),
            ("server_name", Doc::opt_str(str_of(&source.name))),
            ("table", Doc::owned(table.clone())),
            ("position", Doc::Obj(position)),
            ("source_ts", source_ts.clone().map_or(Doc::Null, Doc::owned)),
            ("snapshot", Doc::Bool(snapshot)),
            ("topic", Doc::text(topic)),
            ("partition", Doc::Int(partition)),
            ("offset", Doc::Int(offset)),
        ]);
        Some(Provenance {
            part: doc.share(),
            // str(provenance.get("source_db")): None reads "None".
            id_prefix: [db.unwrap_or("None"), "|", &table, "|"]
                .concat()
                .into_bytes(),
            position_key,
            source_ts,
        })
    }

    /// `envelope.event_id`: UUIDv5 of db | table | position | key | type.
    fn event_id(&self, prov: &Provenance, key: &str, kind: &str) -> String {
        let mut sha = Sha1::new();
        sha.update(&self.plan.namespace);
        sha.update(&prov.id_prefix);
        sha.update(&prov.position_key);
        sha.update(b"|");
        sha.update(key.as_bytes());
        sha.update(b"|");
        sha.update(kind.as_bytes());
        let mut d: [u8; 20] = sha.finalize().into();
        d[6] = (d[6] & 0x0F) | 0x50;
        d[8] = (d[8] & 0x3F) | 0x80;
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(36);
        for (i, b) in d[..16].iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                out.push('-');
            }
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
        }
        out
    }
}

/// The shared part an event's `data.<property>` holds, if it holds one.
fn embedded<'d, 'a>(event: &'d Doc<'a>, property: &str) -> Option<&'d Rc<Part<'a>>> {
    let Doc::Obj(fields) = event else { return None };
    let (_, data) = fields.iter().find(|(k, _)| *k == "data")?;
    let Doc::Obj(data) = data else { return None };
    match data.iter().find(|(k, _)| *k == property)? {
        (_, Doc::Shared(part)) => Some(part),
        _ => None,
    }
}

/// `seam.transforms.provenance.source_ts`: the source block's time as ISO 8601 UTC
/// (Some(None): unknown); None (Python path) outside the range where both compute the
/// same instant.
fn source_ts(source: &Source) -> Option<Option<String>> {
    let mut ns = None;
    for (cell, scale) in [
        (&source.ts_ns, 1_i128),
        (&source.ts_us, 1000),
        (&source.ts_ms, 1_000_000),
    ] {
        match cell {
            Some(Cell::Int(n)) => {
                ns = Some(i128::from(*n) * scale);
                break;
            }
            Some(Cell::BigInt) => return None,
            _ => continue,
        }
    }
    let Some(ns) = ns else {
        return Some(None);
    };
    let us = ns.div_euclid(1000);
    if !(0..4_000_000_000_000_000).contains(&us) {
        return None;
    }
    Some(Some(clock::iso_z(us as i64)))
}

impl Doc<'_> {
    fn is_null(&self) -> bool {
        matches!(self, Doc::Null)
    }
}

#[pymodule]
fn seam_engine(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Engine>()?;
    Ok(())
}
