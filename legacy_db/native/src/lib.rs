//! seam's compiled fast path for the built-in catalog chain (decode, clean, enrich, map,
//! validate) on the products table.
//!
//! The Python stages are the reference: this engine produces byte for byte what they
//! produce, for the records it is sure about, and answers None for every other record
//! (any value a Python rule would repair in an unusual way or reject, tombstones, other
//! tables, embedded schemas, TOAST placeholders, schema violations). The worker then runs
//! that record through the Python stages, which write the event or the dead letter with
//! its reason. tests/unit/test_fast_path.py holds the two to the same output.

mod cell;
mod clock;
mod doc;
mod marks;
mod rules;

use std::collections::HashMap;
use std::rc::Rc;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use serde::Deserialize;
use sha1::{Digest, Sha1};

use cell::{present, seen, Cell};
use doc::{Doc, DocJson, Part};
use marks::{Position, SourceFields};
use rules::Unit;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A product row after clean + enrich (the Python stages' clean row with names added).
struct Row {
    product_id: i64,
    sku: String,
    name: String,
    price: Option<i64>,
    category_id: Option<i64>,
    supplier_id: Option<i64>,
    status: &'static str,
    deleted: bool,
    ean: Option<String>,
    description: Option<String>,
    created_at: Option<String>,
    updated_at: Option<String>,
    category_name: Option<String>,
    supplier_name: Option<String>,
}

impl Row {
    fn listed(&self) -> bool {
        !self.deleted && self.status != "delisted"
    }
}

/// The columns of a legacy products row the rules read (a missing column is NULL, as
/// `row.get(column)` makes it in Python; others are ignored).
#[derive(Deserialize)]
struct RawRow<'a> {
    #[serde(borrow, default)]
    prod_id: Cell<'a>,
    #[serde(borrow, default)]
    sku: Cell<'a>,
    #[serde(borrow, default)]
    prod_name: Cell<'a>,
    #[serde(borrow, default)]
    price_txt: Cell<'a>,
    #[serde(borrow, default)]
    price_cents: Cell<'a>,
    #[serde(borrow, default)]
    cat_id: Cell<'a>,
    #[serde(borrow, default)]
    supp_id: Cell<'a>,
    #[serde(borrow, default)]
    status_cd: Cell<'a>,
    #[serde(borrow, default)]
    is_deleted: Cell<'a>,
    #[serde(borrow, default)]
    ean: Cell<'a>,
    #[serde(borrow, default)]
    descr: Cell<'a>,
    #[serde(borrow, default)]
    created_at: Cell<'a>,
    #[serde(borrow, default)]
    updated_at: Cell<'a>,
}

/// The source block's fields that provenance and the table need (present-with-null kept).
#[derive(Deserialize)]
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
#[derive(Deserialize)]
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

/// What one record publishes: its events and the latest-topic write.
struct Outcome {
    key: String,
    events: Vec<(Vec<u8>, &'static str, String, i64)>, // value, type, id, schema version
    state: Option<Vec<u8>>,
    note: Option<&'static str>,
}

#[pyclass(frozen)]
struct Engine {
    validators: HashMap<String, (i64, jsonschema::Validator<DocJson>)>,
    state_validator: Option<jsonschema::Validator<DocJson>>,
    /// Event types whose schema checks `data.product` exactly as the state schema does
    /// (`seam.transforms.stages.validate.state_embedding`): a valid one proves the state.
    embeds_state: Vec<String>,
    unit: Option<Unit>, // None: by connector (PostgreSQL microseconds, others milliseconds)
    namespace: Vec<u8>,
    entity: String,
    currency: String,
    table: String,
    headers: HeaderParts,
}

/// Debezium's placeholder for an unchanged TOASTed value, plain and base64: the decoder
/// turns it into a sentinel and the clean stage takes the old value, Python's case. (A
/// variable-scale decimal struct is an object: no rule here accepts one.)
const PLACEHOLDERS: [&str; 2] = [
    "__debezium_unavailable_value",
    "X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ==",
];

impl RawRow<'_> {
    fn has_placeholder(&self) -> bool {
        [
            &self.prod_id,
            &self.sku,
            &self.prod_name,
            &self.price_txt,
            &self.price_cents,
            &self.cat_id,
            &self.supp_id,
            &self.status_cd,
            &self.is_deleted,
            &self.ean,
            &self.descr,
            &self.created_at,
            &self.updated_at,
        ]
        .iter()
        .any(|cell| matches!(cell, Cell::Str(s) if PLACEHOLDERS.contains(&s.as_ref())))
    }
}

#[pymethods]
impl Engine {
    /// `schemas`: event type -> (version, schema JSON text) of the latest versions;
    /// `state_schema`: the name among them that the latest-topic state must match.
    #[new]
    #[pyo3(signature = (schemas, state_schema, embeds_state, unit, namespace, entity, currency, table))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        schemas: HashMap<String, (i64, String)>,
        state_schema: &str,
        embeds_state: Vec<String>,
        unit: &str,
        namespace: Vec<u8>,
        entity: String,
        currency: String,
        table: String,
    ) -> PyResult<Self> {
        let mut validators = HashMap::new();
        let mut state_validator = None;
        for (name, (version, text)) in schemas {
            let invalid =
                |e: String| pyo3::exceptions::PyValueError::new_err(format!("{name}: {e}"));
            let doc: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
            let compile = || {
                jsonschema::options_for::<DocJson>()
                    .build(&doc)
                    .map_err(|e| invalid(e.to_string()))
            };
            if name == state_schema {
                state_validator = Some(compile()?);
            }
            let validator = compile()?;
            validators.insert(name, (version, validator));
        }
        let unit = match unit {
            "us" => Some(Unit::Micros),
            "ms" => Some(Unit::Millis),
            "auto" => None,
            other => {
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "unknown timestamp unit {other:?}"
                )))
            }
        };
        Ok(Engine {
            validators,
            state_validator,
            embeds_state,
            unit,
            namespace,
            entity,
            currency,
            table,
            headers: HeaderParts::default(),
        })
    }

    /// One raw record -> None (take the Python path) or what the worker publishes, in the
    /// shape of `seam.transforms.outputs.Publication`: ([(key, event JSON, headers)],
    /// (key, state JSON or None for a tombstone), note when there is no event).
    #[allow(clippy::too_many_arguments)]
    fn process<'py>(
        &self,
        py: Python<'py>,
        value: &[u8],
        topic: &str,
        partition: i64,
        offset: i64,
        categories: &Bound<'py, PyDict>,
        suppliers: &Bound<'py, PyDict>,
    ) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let names = reference_names(categories, suppliers);
        match self.run(value, topic, partition, offset, &names) {
            Some((out, _)) => Ok(Some(out.into_python(py, &self.headers)?)),
            None => Ok(None),
        }
    }

    /// Publishes the records of `messages` from index `start` on, in order, with
    /// `producer` (a confluent-kafka Producer): each record's events to `history_topic`
    /// with their headers, its state (or a tombstone) to `latest_topic`. Stops at the
    /// first record that takes the Python path, so that per-key order holds; returns the
    /// index it stopped at (len(messages) when done) and the counts of what it published:
    /// (stop, records, records with events, events, latest writes, {no-event reason: n},
    /// re-delivered records dropped). `marks` is `seam.transforms.redelivery.Marks.table`
    /// ((topic, partition, stream) -> mark): a record whose mark is not above its stream's
    /// is dropped, and the marks move as Python's `Marks.redelivered` moves them.
    #[allow(clippy::too_many_arguments)]
    fn publish<'py>(
        &self,
        py: Python<'py>,
        messages: &Bound<'py, PyList>,
        start: usize,
        producer: &Bound<'py, PyAny>,
        history_topic: &Bound<'py, PyString>,
        latest_topic: &Bound<'py, PyString>,
        categories: &Bound<'py, PyDict>,
        suppliers: &Bound<'py, PyDict>,
        marks: &Bound<'py, PyDict>,
    ) -> PyResult<Published<'py>> {
        let names = reference_names(categories, suppliers);
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
            let topic = msg.call_method0(intern!(py, "topic"))?;
            let partition: i64 = msg.call_method0(intern!(py, "partition"))?.extract()?;
            let Some((out, position)) = self.run(
                bytes.as_bytes(),
                topic.downcast::<PyString>()?.to_str()?,
                partition,
                msg.call_method0(intern!(py, "offset"))?.extract()?,
                &names,
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
                None => break, // marks the fast path cannot compare: Python decides
            }
            let key = PyBytes::new(py, out.key.as_bytes());
            for (body, event_type, event_id, version) in &out.events {
                let headers = self.headers.list(py, event_type, event_id, *version)?;
                sink.send(
                    history_topic,
                    PyBytes::new(py, body).as_any(),
                    &key,
                    Some(&headers),
                )?;
            }
            let state = match &out.state {
                Some(s) => PyBytes::new(py, s).into_any(),
                None => py.None().into_bound(py),
            };
            sink.send(latest_topic, &state, &key, None)?;
            records += 1;
            latest += 1;
            if out.events.is_empty() {
                let reason = out.note.unwrap_or("no event");
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
        Position::Mark(stream, mark) => {
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
            // callback) and 0 (now) are produce's own defaults. A keyword dict per event
            // costs more than the call. The end-to-end test checks the headers arrive.
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

/// Category and supplier names from the enrich stage's reference dicts.
fn reference_names<'a, 'py>(
    categories: &'a Bound<'py, PyDict>,
    suppliers: &'a Bound<'py, PyDict>,
) -> impl Fn(Option<i64>, Option<i64>) -> (Option<String>, Option<String>) + use<'a, 'py> {
    let name = |dict: &Bound<'py, PyDict>, id: Option<i64>| -> Option<String> {
        dict.get_item(id?).ok()??.extract::<String>().ok()
    };
    move |cat, supp| (name(categories, cat), name(suppliers, supp))
}

/// seam.event_type and seam.schema_version of one event type and version.
type HeaderValues = (Py<PyBytes>, Py<PyBytes>);

/// The header values that repeat, made once per event type and schema version.
#[derive(Default)]
struct HeaderParts {
    values: std::sync::Mutex<HashMap<(&'static str, i64), HeaderValues>>,
}

impl HeaderParts {
    fn of(&self, py: Python<'_>, kind: &'static str, version: i64) -> (Py<PyBytes>, Py<PyBytes>) {
        let mut values = self
            .values
            .lock()
            .expect("never poisoned: nothing panics inside");
        let found = values.entry((kind, version)).or_insert_with(|| {
            (
                PyBytes::new(py, kind.as_bytes()).unbind(),
                PyBytes::new(py, version.to_string().as_bytes()).unbind(),
            )
        });
        (found.0.clone_ref(py), found.1.clone_ref(py))
    }

    /// An event's headers: seam.event_type, seam.event_id, seam.schema_version.
    fn list<'py>(
        &self,
        py: Python<'py>,
        kind: &'static str,
        event_id: &str,
        version: i64,
    ) -> PyResult<Bound<'py, PyList>> {
        let (kind, schema_version) = self.of(py, kind, version);
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
                        PyBytes::new(py, event_id.as_bytes()).as_any(),
                    ],
                )?,
                PyTuple::new(
                    py,
                    [
                        intern!(py, "seam.schema_version").as_any(),
                        schema_version.bind(py).as_any(),
                    ],
                )?,
            ],
        )
    }
}

impl Outcome {
    fn into_python<'py>(
        self,
        py: Python<'py>,
        parts: &HeaderParts,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let key = PyBytes::new(py, self.key.as_bytes());
        let history = PyList::empty(py);
        for (body, event_type, event_id, version) in &self.events {
            let headers = parts.list(py, event_type, event_id, *version)?;
            history.append((key.clone(), PyBytes::new(py, body), headers))?;
        }
        let state = self.state.as_deref().map(|s| PyBytes::new(py, s));
        let latest = PyTuple::new(py, [key.into_any(), state.into_pyobject(py)?.into_any()])?;
        PyTuple::new(
            py,
            [
                history.into_any(),
                latest.into_any(),
                self.note.into_pyobject(py)?.into_any(),
            ],
        )
    }
}

type Names<'a> = dyn Fn(Option<i64>, Option<i64>) -> (Option<String>, Option<String>) + 'a;

impl Engine {
    fn run(
        &self,
        value: &[u8],
        topic: &str,
        partition: i64,
        offset: i64,
        names: &Names,
    ) -> Option<(Outcome, Position)> {
        // One UTF-8 check of the whole record, not one per string (serde_json's from_slice).
        let doc: Envelope = serde_json::from_str(std::str::from_utf8(value).ok()?).ok()?;
        if doc.schema || doc.payload {
            return None; // embedded schemas: the decoder's converters apply
        }
        let source = doc.source.as_ref()?;
        if str_of(&source.table)? != self.table {
            return None;
        }
        let connector = str_of(&source.connector);
        let unit = self.unit.unwrap_or(if connector == Some("postgresql") {
            Unit::Micros
        } else {
            Unit::Millis
        });
        let clean = |row: &RawRow| self.clean(row, unit, names);
        let (before, after) = match (&doc.op, &doc.before, &doc.after) {
            (Cell::Str(op), _, Some(new)) if op == "c" || op == "r" => (None, Some(clean(new)?)),
            (Cell::Str(op), Some(old), Some(new)) if op == "u" => {
                (Some(clean(old)?), Some(clean(new)?))
            }
            (Cell::Str(op), Some(old), _) if op == "d" => (Some(clean(old)?), None),
            _ => return None,
        };
        // The new row must have every required field (clean strict): else Python rejects.
        if after.as_ref().is_some_and(|r| r.created_at.is_none()) {
            return None;
        }
        let Cell::Str(op) = &doc.op else {
            return None;
        };
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
                snapshot: &source.snapshot,
            },
        )?;
        let provenance = self.provenance(source, connector, topic, partition, offset)?;
        Some((self.map(before, after, provenance)?, position))
    }

    fn clean(&self, row: &RawRow, unit: Unit, names: &Names) -> Option<Row> {
        if row.has_placeholder() {
            return None;
        }
        let category_id = rules::zero_is_absent(&row.cat_id)?;
        let supplier_id = rules::zero_is_absent(&row.supp_id)?;
        let (category_name, supplier_name) = names(category_id, supplier_id);
        Some(Row {
            product_id: rules::clean_id(&row.prod_id)?,
            sku: rules::clean_sku(&row.sku)?,
            name: rules::clean_name(&row.prod_name, rules::NAME_WIDTH)?,
            price: rules::price_of(&row.price_txt, &row.price_cents)?,
            category_id,
            supplier_id,
            status: rules::clean_status(&row.status_cd)?,
            deleted: rules::clean_deleted_flag(&row.is_deleted)?,
            ean: rules::clean_ean(&row.ean)?,
            description: rules::clean_description(&row.descr, rules::DESCRIPTION_WIDTH)?,
            created_at: rules::to_utc_iso(&row.created_at, unit)?,
            updated_at: rules::to_utc_iso(&row.updated_at, unit)?,
            category_name,
            supplier_name,
        })
    }

    /// `seam.transforms.provenance.provenance`, and the parts of it event ids hang on.
    fn provenance<'a>(
        &self,
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
            Some(ns) if !ns.is_empty() => [ns, ".", &self.table].concat(),
            _ => self.table.clone(),
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

    fn price(&self, cents: Option<i64>) -> Doc<'_> {
        match cents {
            None => Doc::Null,
            Some(c) => Doc::Obj(vec![
                ("amount", Doc::owned(rules::cents_text(c))),
                ("currency", Doc::text(&self.currency)),
            ]),
        }
    }

    /// `seam.legacy_db.stages.map.product_state`.
    fn state<'a>(&'a self, row: &'a Row) -> Doc<'a> {
        let mut state = vec![
            ("product_id", Doc::Int(row.product_id)),
            ("sku", Doc::text(&row.sku)),
            ("name", Doc::text(&row.name)),
            ("status", Doc::text(row.status)),
        ];
        if row.price.is_some() {
            state.push(("price", self.price(row.price)));
        }
        if row.category_id.is_some() {
            state.push(("category", reference(row.category_id, &row.category_name)));
        }
        if row.supplier_id.is_some() {
            state.push(("supplier", reference(row.supplier_id, &row.supplier_name)));
        }
        for (name, value) in [
            ("ean", &row.ean),
            ("description", &row.description),
            ("created_at", &row.created_at),
            ("updated_at", &row.updated_at),
        ] {
            if let Some(v) = value {
                state.push((name, Doc::text(v)));
            }
        }
        Doc::Obj(state)
    }

    /// `seam.legacy_db.stages.map._diff_events`.
    fn differences<'a>(&'a self, old: &'a Row, new: &'a Row) -> Vec<(&'static str, Doc<'a>)> {
        let text = |t: &'a Option<String>| Doc::opt_str(t.as_deref());
        let mut out = Vec::new();
        if old.name != new.name {
            out.push((
                "ProductRenamed",
                Doc::Obj(vec![
                    ("old_name", Doc::text(&old.name)),
                    ("new_name", Doc::text(&new.name)),
                ]),
            ));
        }
        if old.price != new.price {
            out.push((
                "ProductPriceChanged",
                Doc::Obj(vec![
                    ("old_price", self.price(old.price)),
                    ("new_price", self.price(new.price)),
                ]),
            ));
        }
        if old.category_id != new.category_id {
            out.push((
                "ProductRecategorized",
                Doc::Obj(vec![
                    (
                        "old_category",
                        reference(old.category_id, &old.category_name),
                    ),
                    (
                        "new_category",
                        reference(new.category_id, &new.category_name),
                    ),
                ]),
            ));
        }
        if old.supplier_id != new.supplier_id {
            out.push((
                "ProductSupplierChanged",
                Doc::Obj(vec![
                    (
                        "old_supplier",
                        reference(old.supplier_id, &old.supplier_name),
                    ),
                    (
                        "new_supplier",
                        reference(new.supplier_id, &new.supplier_name),
                    ),
                ]),
            ));
        }
        if old.description != new.description {
            out.push((
                "ProductDescriptionChanged",
                Doc::Obj(vec![
                    ("old_description", text(&old.description)),
                    ("new_description", text(&new.description)),
                ]),
            ));
        }
        if old.sku != new.sku || old.ean != new.ean {
            out.push((
                "ProductIdentifiersChanged",
                Doc::Obj(vec![
                    ("old_sku", Doc::text(&old.sku)),
                    ("new_sku", Doc::text(&new.sku)),
                    ("old_ean", text(&old.ean)),
                    ("new_ean", text(&new.ean)),
                ]),
            ));
        }
        if old.status != new.status {
            let previous = Doc::Obj(vec![("previous_status", Doc::text(old.status))]);
            match new.status {
                "discontinued" => out.push(("ProductDiscontinued", previous)),
                "active" => out.push(("ProductReactivated", previous)),
                _ => {}
            }
        }
        out
    }

    /// `seam.legacy_db.stages.map.MapStage.process` + validate + the worker's encoding.
    fn map(&self, before: Option<Row>, after: Option<Row>, prov: Provenance) -> Option<Outcome> {
        let product_id = after.as_ref().or(before.as_ref())?.product_id;
        let key = product_id.to_string();
        let mut events: Vec<(&'static str, Doc)> = Vec::new();
        let mut state: Option<Rc<Part>> = None;
        let mut note = None;
        match (&before, &after) {
            (None, Some(new)) => {
                if new.listed() {
                    let s = self.state(new).share();
                    events.push(("ProductListed", product(&s)));
                    state = Some(s);
                } else {
                    note = Some("unlisted product (soft-deleted or status delisted)");
                }
            }
            (Some(old), None) => {
                if old.listed() {
                    events.push((
                        "ProductDelisted",
                        Doc::Obj(vec![("reason", Doc::text("deleted"))]),
                    ));
                } else {
                    note = Some("delete of an unlisted product");
                }
            }
            (Some(old), Some(new)) => {
                let (was, now) = (old.listed(), new.listed());
                if now {
                    state = Some(self.state(new).share());
                }
                if was && !now {
                    let reason = if new.deleted {
                        "soft_deleted"
                    } else {
                        "status_delisted"
                    };
                    events.push((
                        "ProductDelisted",
                        Doc::Obj(vec![("reason", Doc::text(reason))]),
                    ));
                } else if now && !was {
                    events.push(("ProductRelisted", product(state.as_ref()?)));
                } else if now && was {
                    events = self.differences(old, new);
                    if events.is_empty() {
                        note = Some("no-op update");
                    }
                } else {
                    note = Some("update of an unlisted product");
                }
            }
            (None, None) => return None,
        }
        let proven = events.iter().any(|(kind, _)| {
            matches!(*kind, "ProductListed" | "ProductRelisted")
                && self.embeds_state.iter().any(|t| t == kind)
        });
        if let (Some(s), Some(check), false) = (&state, &self.state_validator, proven) {
            if !check.is_valid(&s.doc) {
                return None; // Python rejects it, with the reason
            }
        }
        let mut encoded = Vec::with_capacity(events.len());
        for (event_type, data) in events {
            let (version, validator) = self.validators.get(event_type)?;
            let id = self.event_id(&prov, &key, event_type);
            let event = Doc::Obj(vec![
                ("event_id", Doc::text(&id)),
                ("event_type", Doc::text(event_type)),
                ("entity", Doc::text(&self.entity)),
                ("product_id", Doc::Int(product_id)),
                ("occurred_at", Doc::opt_str(prov.source_ts.as_deref())),
                ("data", data),
                ("provenance", Doc::Shared(prov.part.clone())),
                ("schema_version", Doc::Int(*version)),
            ]);
            if !validator.is_valid(&event) {
                return None;
            }
            encoded.push((event.json(), event_type, id, *version));
        }
        let state = state.map(|s| Rc::try_unwrap(s).map_or_else(|s| s.json.clone(), |s| s.json));
        Some(Outcome {
            key,
            events: encoded,
            state,
            note,
        })
    }

    /// `seam.legacy_db.stages.map.event_id`: UUIDv5 of db | table | position | key | type.
    fn event_id(&self, prov: &Provenance, key: &str, kind: &str) -> String {
        let mut sha = Sha1::new();
        sha.update(&self.namespace);
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

/// The provenance of one record, written once for all its events.
struct Provenance<'a> {
    part: Rc<Part<'a>>,
    id_prefix: Vec<u8>,    // "<source db>|<table>|"
    position_key: Vec<u8>, // the position as sorted-key JSON
    source_ts: Option<String>,
}

/// `{"product": <the state>}`.
fn product<'a>(state: &Rc<Part<'a>>) -> Doc<'a> {
    Doc::Obj(vec![("product", Doc::Shared(state.clone()))])
}

/// `map._ref`: `{"id": .., "name": ..}`, or `{"id": .., "resolved": false}` when the name
/// is unknown (an orphan, or a row not seen yet).
fn reference(id: Option<i64>, name: &Option<String>) -> Doc<'_> {
    let Some(id) = id else {
        return Doc::Null;
    };
    match name {
        Some(n) => Doc::Obj(vec![("id", Doc::Int(id)), ("name", Doc::text(n))]),
        None => Doc::Obj(vec![("id", Doc::Int(id)), ("resolved", Doc::Bool(false))]),
    }
}

/// `seam.transforms.provenance.source_ts`: the source block's time as ISO 8601 UTC
/// (Some(None): unknown); None (Python path) outside the range where both compute the
/// same instant.
fn source_ts(source: &Source) -> Option<Option<String>> {
    // The first of ts_ns, ts_us, ts_ms that is an integer (Python skips other types; an
    // integer beyond 64 bits is Python's case).
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

#[pymodule]
fn seam_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Engine>()?;
    Ok(())
}
