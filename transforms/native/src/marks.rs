//! `seam.transforms.redelivery`: a change's mark in its source stream, for dropping the
//! changes Debezium delivers twice. The Python module is the reference; this answers only
//! for the canonical shapes Debezium writes and steps aside (None) for any other, so that
//! the Python path decides those records.

use crate::cell::Cell;

/// What a handled record does to the high-water marks.
#[derive(Debug, PartialEq)]
pub enum Position {
    /// No mark (a snapshot read that does not start over, a record without a position).
    Unmarked,
    /// (stream, mark, GTID mark): dropped unless the mark is above the stream's high-water
    /// mark. A kept binlog change with a GTID also sets its GTID stream's mark (sequence).
    Mark(String, Vec<i64>, Option<(String, i64)>),
    /// A snapshot read: the marks of the streams with this prefix are forgotten.
    StartsOver(String),
}

/// The source block's fields a mark is made of.
pub struct SourceFields<'s, 'a> {
    pub connector: &'s Option<Cell<'a>>,
    pub name: &'s Option<Cell<'a>>,
    pub db: &'s Option<Cell<'a>>,
    pub server_id: &'s Option<Cell<'a>>,
    pub sequence: &'s Option<Cell<'a>>,
    pub file: &'s Option<Cell<'a>>,
    pub pos: &'s Option<Cell<'a>>,
    pub row: &'s Option<Cell<'a>>,
    pub gtid: &'s Option<Cell<'a>>,
    pub snapshot: &'s Option<Cell<'a>>,
}

/// Python's `str()` of a value the fast path is sure about: a text, or a missing/null
/// value ("None"); None for anything else (the record takes the Python path).
fn text<'s>(cell: &'s Option<Cell>) -> Option<&'s str> {
    match cell {
        Some(Cell::Str(s)) => Some(s),
        None | Some(Cell::Null) => Some("None"),
        _ => None,
    }
}

/// `ChangeEvent.snapshot` as the marks see it: (is a snapshot, is an incremental one).
fn snapshot(cell: &Option<Cell>) -> Option<(bool, bool)> {
    match cell {
        None | Some(Cell::Null) | Some(Cell::Bool(false)) | Some(Cell::Int(0)) => {
            Some((false, false))
        }
        Some(Cell::Str(s)) if s == "false" => Some((false, false)),
        Some(Cell::Str(s)) => Some((true, s == "incremental")),
        Some(Cell::Bool(true)) | Some(Cell::Int(_)) => Some((true, false)),
        _ => None, // floats and containers: left to Python's rules
    }
}

fn digits(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `["<lsn>","<lsn>"]` or `[null,"<lsn>"]`, exactly as Debezium writes it.
fn sequence(text: &str) -> Option<(i64, i64)> {
    let inner = text.strip_prefix('[')?.strip_suffix(']')?;
    let (first, second) = inner.split_once(',')?;
    let quoted = |s: &str| s.strip_prefix('"')?.strip_suffix('"').and_then(digits);
    let last_commit = if first == "null" { 0 } else { quoted(first)? };
    Some((last_commit, quoted(second)?))
}

/// `seam.transforms.redelivery.gtid_parts`: (domain, sequence) of a MariaDB GTID
/// `0-1-42` (the domain as Python's `str(int(...))` writes it) or a MySQL `uuid:42` /
/// `uuid:1-42` (the uuid in lower case); Some(None) for any other text; None (step
/// aside) for a sequence beyond i64, which Python keeps.
fn gtid_parts(text: &str) -> Option<Option<(String, i64)>> {
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let sequence = |s: &str| s.parse::<i64>().ok();
    let parts: Vec<&str> = text.split('-').collect();
    if parts.len() == 3 && parts.iter().all(|p| all_digits(p)) {
        let domain = parts[0].trim_start_matches('0');
        let domain = if domain.is_empty() { "0" } else { domain };
        return Some(Some((domain.to_string(), sequence(parts[2])?)));
    }
    let Some((uuid, numbers)) = text.split_once(':') else {
        return Some(None);
    };
    let groups: Vec<&str> = uuid.split('-').collect();
    let shaped = groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()));
    let last = match numbers.split_once('-') {
        Some((first, last)) if all_digits(first) => last,
        Some(_) => return Some(None),
        None => numbers,
    };
    if !shaped || !all_digits(last) {
        return Some(None);
    }
    Some(Some((uuid.to_ascii_lowercase(), sequence(last)?)))
}

/// The record's position, or None to step aside. `op` is "c", "u", "d" or "r".
pub fn position(op: &str, source: &SourceFields) -> Option<Position> {
    let (is_snapshot, incremental) = snapshot(source.snapshot)?;
    let connector = text(source.connector)?;
    let name = text(source.name)?;
    if op == "r" {
        return Some(if is_snapshot && !incremental {
            Position::StartsOver(format!("{connector}|{name}|"))
        } else {
            Position::Unmarked
        });
    }
    if is_snapshot {
        return Some(Position::Unmarked);
    }
    let rank = if op == "d" { 0 } else { 1 };
    if connector == "postgresql" {
        let (last_commit, lsn) = match source.sequence {
            Some(Cell::Str(s)) => sequence(s)?,
            None | Some(Cell::Null) => return Some(Position::Unmarked),
            _ => return None,
        };
        let stream = format!("postgresql|{name}|{}", text(source.db)?);
        return Some(Position::Mark(stream, vec![last_commit, lsn, rank], None));
    }
    let (Some(Cell::Str(file)), Some(Cell::Int(pos))) = (source.file, source.pos) else {
        return None; // Python may still find a mark (or none): its call
    };
    let number = file.rsplit_once('.').and_then(|(_, n)| digits(n))?;
    let row = match source.row {
        Some(Cell::Int(r)) => *r,
        None | Some(Cell::Null) => 0,
        _ => return None,
    };
    let server_id = match source.server_id {
        Some(Cell::Int(n)) => n.to_string(),
        None | Some(Cell::Null) => "None".to_string(),
        _ => return None,
    };
    let gtid = match source.gtid {
        Some(Cell::Str(text)) => gtid_parts(text)?
            .map(|(domain, seq)| (format!("{connector}|{name}|gtid:{domain}"), seq)),
        _ => None,
    };
    let stream = format!("{connector}|{name}|{server_id}");
    Some(Position::Mark(stream, vec![number, *pos, row, rank], gtid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn s(v: &str) -> Option<Cell<'_>> {
        Some(Cell::Str(Cow::Borrowed(v)))
    }

    #[test]
    fn sequences_in_debeziums_shape_only() {
        assert_eq!(sequence(r#"["10","20"]"#), Some((10, 20)));
        assert_eq!(sequence(r#"[null,"20"]"#), Some((0, 20)));
        assert_eq!(sequence(r#"["10", "20"]"#), None);
        assert_eq!(sequence(r#"["10",null]"#), None);
        assert_eq!(sequence(r#"["-1","20"]"#), None);
        assert_eq!(sequence(r#"["99999999999999999999","20"]"#), None);
    }

    #[test]
    fn postgres_and_binlog_marks() {
        let none = None;
        let pg = SourceFields {
            connector: &s("postgresql"),
            name: &s("cat"),
            db: &s("shop"),
            server_id: &none,
            sequence: &s(r#"["5","7"]"#),
            file: &none,
            pos: &none,
            row: &none,
            gtid: &none,
            snapshot: &s("false"),
        };
        assert_eq!(
            position("d", &pg),
            Some(Position::Mark(
                "postgresql|cat|shop".into(),
                vec![5, 7, 0],
                None
            ))
        );
        let (bin, pos, zero, one) = (
            s("seam-bin.000012"),
            Some(Cell::Int(99)),
            Some(Cell::Int(0)),
            Some(Cell::Int(1)),
        );
        let maria = SourceFields {
            connector: &s("mariadb"),
            name: &s("cat"),
            db: &s("shop"),
            server_id: &one,
            sequence: &none,
            file: &bin,
            pos: &pos,
            row: &zero,
            gtid: &none,
            snapshot: &s("false"),
        };
        assert_eq!(
            position("u", &maria),
            Some(Position::Mark(
                "mariadb|cat|1".into(),
                vec![12, 99, 0, 1],
                None
            ))
        );
        assert_eq!(
            position(
                "r",
                &SourceFields {
                    snapshot: &s("last"),
                    ..maria
                }
            ),
            Some(Position::StartsOver("mariadb|cat|".into()))
        );
        let gtid = s("00-1-4242");
        assert_eq!(
            position(
                "u",
                &SourceFields {
                    gtid: &gtid,
                    ..maria
                }
            ),
            Some(Position::Mark(
                "mariadb|cat|1".into(),
                vec![12, 99, 0, 1],
                Some(("mariadb|cat|gtid:0".into(), 4242))
            ))
        );
    }

    #[test]
    fn gtids_as_python_reads_them() {
        assert_eq!(gtid_parts("0-1-42"), Some(Some(("0".into(), 42))));
        assert_eq!(
            gtid_parts("3E11FA47-71CA-11E1-9E33-C80AA9429562:1-77"),
            Some(Some(("3e11fa47-71ca-11e1-9e33-c80aa9429562".into(), 77)))
        );
        assert_eq!(gtid_parts("0-1-"), Some(None));
        assert_eq!(gtid_parts("0-1-2-3"), Some(None));
        assert_eq!(
            gtid_parts("3e11fa47-71ca-11e1-9e33-c80aa9429562:x-7"),
            Some(None)
        );
        assert_eq!(gtid_parts("0-1-99999999999999999999"), None);
    }
}
