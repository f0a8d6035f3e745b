//! The rule kinds of `seam.transforms.declared.rules`, natively, on the values a decoder
//! hands on. Each kind answers its clean value, `Fail::Unfixable` exactly where the Python
//! kind raises `Unfixable`, or `Fail::Aside` where this side is not sure to compute what
//! Python computes (non-ASCII text where Python's Unicode tables decide, numbers beyond
//! 64 bits or unusual notations, times outside the zone's table, ...): the record then
//! takes the Python stages. A kind or an option this side does not implement is
//! `Kind::Python`: aside whenever it is applied.

use std::borrow::Cow;
use std::rc::Rc;

use regex::Regex;
use serde_json::Value;

use crate::clock::{self, Choice, Zone};
use crate::doc::{Dec, Doc};

#[derive(Debug, PartialEq, Eq)]
pub enum Fail {
    Unfixable,
    Aside,
}

pub type Out<'a> = Result<Doc<'a>, Fail>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    Reject,
    Absent,
    Default,
    Repair,
}

impl Policy {
    pub fn parse(text: &str) -> Option<Policy> {
        Some(match text {
            "reject" => Policy::Reject,
            "absent" => Policy::Absent,
            "default" => Policy::Default,
            "repair" => Policy::Repair,
            _ => return None,
        })
    }
}

#[derive(Debug)]
pub enum MoneyFrom {
    Amount,
    Cents,
    Text,
}

#[derive(Debug)]
pub enum Kind {
    Text,
    Trim,
    Whitespace {
        lines: bool,
    },
    Case {
        upper: bool,
    },
    EmptyAsAbsent,
    NullIf(Vec<Doc<'static>>),
    NotEmpty,
    Mojibake,
    MaxLength(usize),
    NoControl {
        allow: Vec<char>,
    },
    Pattern(Regex),
    Codes {
        map: Vec<(Doc<'static>, Doc<'static>)>,
        keep: bool,
    },
    Boolean {
        yes: Vec<String>,
        no: Vec<String>,
        null: Doc<'static>,
    },
    Integer,
    Range {
        low: Option<Dec>,
        high: Option<Dec>,
    },
    Decimal {
        scale: Option<u32>,
        half_even: bool,
    },
    Money {
        from: MoneyFrom,
        currency: String,
        scale: u32,
        low: Dec,
        high: Option<Dec>,
        marks: Vec<String>,
    },
    Timestamp {
        zone: Rc<Zone>,
        unit: Option<i64>,
        ambiguous: Choice,
        nonexistent: Choice,
    },
    Date,
    Default(Doc<'static>),
    Lookup {
        table: String,
        field: String,
    },
    Python,
}

#[derive(Debug)]
pub struct Rule {
    pub kind: Kind,
    pub on_fail: Option<Policy>,
    pub takes_null: bool,
}

/// The connector-dependent part of a rule: Debezium's timestamp unit (microseconds).
#[derive(Clone, Copy)]
pub struct Flavour {
    pub unit: i64,
}

// ------------------------------------------------------------------------ Python's str

/// What Python's `str.isspace()` (and so `str.strip()` and the regex `\s`) calls whitespace.
pub fn py_space(c: char) -> bool {
    matches!(
        c,
        '\t'..='\r'
            | '\x1c'..='\x1f'
            | ' '
            | '\u{85}'
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
    )
}

pub fn py_strip(text: &str) -> &str {
    text.trim_matches(py_space)
}

/// `text` with `f` applied to its str, borrowed when `f` borrows.
fn map_text<'a>(text: Cow<'a, str>, f: impl for<'x> Fn(&'x str) -> Cow<'x, str>) -> Cow<'a, str> {
    match text {
        Cow::Borrowed(s) => f(s),
        Cow::Owned(s) => Cow::Owned(f(&s).into_owned()),
    }
}

fn stripped(text: Cow<'_, str>) -> Cow<'_, str> {
    map_text(text, |s| Cow::Borrowed(py_strip(s)))
}

/// Each run of `is_space` characters -> one space.
fn fold(text: &str, is_space: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_run = false;
    for c in text.chars() {
        if is_space(c) {
            if !in_run {
                out.push(' ');
            }
            in_run = true;
        } else {
            out.push(c);
            in_run = false;
        }
    }
    out
}

/// `rules.fold_whitespace`.
fn fold_whitespace(text: &str) -> Cow<'_, str> {
    let plain = !text.contains("  ")
        && !text.chars().any(|c| c != ' ' && py_space(c))
        && !text.starts_with(' ')
        && !text.ends_with(' ');
    if plain {
        return Cow::Borrowed(text);
    }
    Cow::Owned(py_strip(&fold(text, py_space)).to_string())
}

/// `rules.fold_lines`.
fn fold_lines(text: &str) -> Cow<'_, str> {
    // Nothing to fold (the usual case): no CR, tab, NBSP or double space, and no line
    // that starts or ends with whitespace.
    let plain = !text.contains(['\r', '\t', '\u{a0}'])
        && !text.contains("  ")
        && text
            .split('\n')
            .all(|line| py_strip(line).len() == line.len())
        && py_strip(text).len() == text.len();
    if plain {
        return Cow::Borrowed(text);
    }
    let text: Cow<str> = if text.contains('\r') {
        Cow::Owned(text.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        Cow::Borrowed(text)
    };
    let lines: Vec<String> = text
        .split('\n')
        .map(|line| py_strip(&fold(line, |c| matches!(c, ' ' | '\t' | '\u{a0}'))).to_string())
        .collect();
    let joined = lines.join("\n");
    let out = py_strip(&joined);
    if out == text.as_ref() {
        return text;
    }
    Cow::Owned(out.to_string())
}

/// The byte of `c` in Python's cp1252 codec, None where it has none.
fn cp1252(c: char) -> Option<u8> {
    Some(match c {
        '\0'..='\x7f' | '\u{a0}'..='\u{ff}' => c as u32 as u8,
        '\u{20ac}' => 0x80,
        '\u{201a}' => 0x82,
        '\u{192}' => 0x83,
        '\u{201e}' => 0x84,
        '\u{2026}' => 0x85,
        '\u{2020}' => 0x86,
        '\u{2021}' => 0x87,
        '\u{2c6}' => 0x88,
        '\u{2030}' => 0x89,
        '\u{160}' => 0x8a,
        '\u{2039}' => 0x8b,
        '\u{152}' => 0x8c,
        '\u{17d}' => 0x8e,
        '\u{2018}' => 0x91,
        '\u{2019}' => 0x92,
        '\u{201c}' => 0x93,
        '\u{201d}' => 0x94,
        '\u{2022}' => 0x95,
        '\u{2013}' => 0x96,
        '\u{2014}' => 0x97,
        '\u{2dc}' => 0x98,
        '\u{2122}' => 0x99,
        '\u{161}' => 0x9a,
        '\u{203a}' => 0x9b,
        '\u{153}' => 0x9c,
        '\u{17e}' => 0x9e,
        '\u{178}' => 0x9f,
        _ => return None,
    })
}

/// `rules.repair_mojibake`.
fn repair_mojibake(text: &str) -> Cow<'_, str> {
    if text.is_ascii() {
        return Cow::Borrowed(text);
    }
    let bytes: Option<Vec<u8>> = text.chars().map(cp1252).collect();
    match bytes.map(String::from_utf8) {
        Some(Ok(repaired)) => Cow::Owned(repaired),
        _ => Cow::Borrowed(text),
    }
}

// ------------------------------------------------------------------------ Python's ==

/// Python's `a == b` for the values rules make; None when unsure.
pub fn py_eq(a: &Doc, b: &Doc) -> Option<bool> {
    Some(match (a, b) {
        (Doc::Shared(p), _) => return py_eq(&p.doc, b),
        (_, Doc::Shared(p)) => return py_eq(a, &p.doc),
        (Doc::Null, Doc::Null) => true,
        (Doc::Str(x), Doc::Str(y)) => x == y,
        (Doc::Int(x), Doc::Int(y)) => x == y,
        (Doc::Bool(x), Doc::Bool(y)) => x == y,
        (Doc::Bool(x), Doc::Int(y)) | (Doc::Int(y), Doc::Bool(x)) => i64::from(*x) == *y,
        (Doc::Dec(x), Doc::Dec(y)) => dec_cmp(x, y)? == std::cmp::Ordering::Equal,
        (Doc::Dec(x), Doc::Int(y)) | (Doc::Int(y), Doc::Dec(x)) => {
            dec_cmp(
                x,
                &Dec {
                    unscaled: i128::from(*y),
                    scale: 0,
                },
            )? == std::cmp::Ordering::Equal
        }
        (Doc::Dec(x), Doc::Bool(y)) | (Doc::Bool(y), Doc::Dec(x)) => {
            dec_cmp(
                x,
                &Dec {
                    unscaled: i128::from(*y),
                    scale: 0,
                },
            )? == std::cmp::Ordering::Equal
        }
        (Doc::Obj(x), Doc::Obj(y)) => {
            if x.len() != y.len() {
                return Some(false);
            }
            for (k, v) in x {
                match y.iter().find(|(k2, _)| k2 == k) {
                    Some((_, w)) => {
                        if !py_eq(v, w)? {
                            return Some(false);
                        }
                    }
                    None => return Some(false),
                }
            }
            true
        }
        _ => false,
    })
}

/// Python's `bool(value)`.
pub fn truthy(value: &Doc) -> bool {
    match value {
        Doc::Null => false,
        Doc::Bool(b) => *b,
        Doc::Int(n) => *n != 0,
        Doc::Str(s) => !s.is_empty(),
        Doc::Dec(d) => !d.is_zero(),
        Doc::Obj(o) => !o.is_empty(),
        Doc::Shared(p) => truthy(&p.doc),
    }
}

// ------------------------------------------------------------------------ decimals

const MAX_DIGITS: usize = 18;

fn pow10(n: u32) -> Option<i128> {
    10_i128.checked_pow(n)
}

/// Two decimals compared as numbers (None: beyond what i128 holds here).
pub fn dec_cmp(a: &Dec, b: &Dec) -> Option<std::cmp::Ordering> {
    let scale = a.scale.max(b.scale);
    let x = a.unscaled.checked_mul(pow10(scale - a.scale)?)?;
    let y = b.unscaled.checked_mul(pow10(scale - b.scale)?)?;
    Some(x.cmp(&y))
}

/// `Decimal(text)` for the plain notation `[+-]?\d+(\.\d+)?` of at most 18 digits; None
/// for anything else (Python may read it, or refuse it: its call). A negative zero keeps
/// its sign in Python: None too.
pub fn parse_dec(text: &str) -> Option<Dec> {
    let (negative, body) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (units, fraction) = match body.split_once('.') {
        Some((u, f)) => (u, f),
        None => (body, ""),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(units) || (body.contains('.') && !digits(fraction)) {
        return None;
    }
    if units.len() + fraction.len() > MAX_DIGITS {
        return None;
    }
    let mut unscaled: i128 = 0;
    for b in units.bytes().chain(fraction.bytes()) {
        unscaled = unscaled * 10 + i128::from(b - b'0');
    }
    if negative && unscaled == 0 {
        return None;
    }
    Some(Dec {
        unscaled: if negative { -unscaled } else { unscaled },
        scale: fraction.len() as u32,
    })
}

/// `Decimal.quantize` to `scale` places: Err(Unfixable) when inexact and `half_even` is
/// not allowed; Err(Aside) for what this side does not compute.
fn quantize(number: Dec, scale: u32, half_even: bool) -> Result<Dec, Fail> {
    if scale > MAX_DIGITS as u32 {
        return Err(Fail::Aside);
    }
    if number.scale <= scale {
        let factor = pow10(scale - number.scale).ok_or(Fail::Aside)?;
        let unscaled = number.unscaled.checked_mul(factor).ok_or(Fail::Aside)?;
        return Ok(Dec { unscaled, scale });
    }
    let factor = pow10(number.scale - scale).ok_or(Fail::Aside)?;
    let (q, r) = (number.unscaled / factor, number.unscaled % factor);
    if r == 0 {
        return Ok(Dec { unscaled: q, scale });
    }
    if !half_even {
        return Err(Fail::Unfixable);
    }
    let (r2, half) = (r.abs() * 2, factor);
    let up = r2 > half || (r2 == half && q % 2 != 0);
    let magnitude = q.abs() + i128::from(up);
    if magnitude == 0 {
        return Err(Fail::Aside); // Python keeps the sign of a negative zero
    }
    Ok(Dec {
        unscaled: if number.unscaled < 0 {
            -magnitude
        } else {
            magnitude
        },
        scale,
    })
}

/// `rules._decimal`.
fn decimal_of(value: &Doc) -> Result<Dec, Fail> {
    match value {
        Doc::Dec(d) => Ok(*d),
        Doc::Int(n) => Ok(Dec {
            unscaled: i128::from(*n),
            scale: 0,
        }),
        Doc::Str(s) => {
            if !s.is_ascii() {
                return Err(Fail::Aside);
            }
            parse_dec(py_strip(s)).ok_or(Fail::Aside)
        }
        _ => Err(Fail::Unfixable),
    }
}

// ------------------------------------------------------------------------ applying

fn text<'a, 'b>(value: &'b Doc<'a>) -> Result<&'b Cow<'a, str>, Fail> {
    match value {
        Doc::Str(s) => Ok(s),
        _ => Err(Fail::Unfixable),
    }
}

fn take_text(value: Doc<'_>) -> Result<Cow<'_, str>, Fail> {
    match value {
        Doc::Str(s) => Ok(s),
        _ => Err(Fail::Unfixable),
    }
}

fn is_control(c: char, allow: &[char]) -> bool {
    (c < ' ' || c == '\x7f') && !allow.contains(&c)
}

impl Kind {
    /// The kind's `repair` exists (max_length cuts, no_control removes, range clamps).
    pub fn repairs(&self) -> bool {
        matches!(
            self,
            Kind::MaxLength(_) | Kind::NoControl { .. } | Kind::Range { .. }
        )
    }

    /// The rule applied to `value` (never a lookup: the engine holds the tables).
    pub fn apply<'a>(&'a self, value: Doc<'a>, flavour: Flavour) -> Out<'a> {
        match self {
            Kind::Text => text(&value).map(|_| ()).map(|()| value),
            Kind::Trim => Ok(Doc::Str(stripped(take_text(value)?))),
            Kind::Whitespace { lines } => {
                let s = take_text(value)?;
                Ok(Doc::Str(if *lines {
                    map_text(s, fold_lines)
                } else {
                    map_text(s, fold_whitespace)
                }))
            }
            Kind::Case { upper } => {
                let s = take_text(value)?;
                if !s.is_ascii() {
                    return Err(Fail::Aside);
                }
                let same = if *upper {
                    !s.bytes().any(|b| b.is_ascii_lowercase())
                } else {
                    !s.bytes().any(|b| b.is_ascii_uppercase())
                };
                if same {
                    return Ok(Doc::Str(s));
                }
                Ok(Doc::Str(Cow::Owned(if *upper {
                    s.to_ascii_uppercase()
                } else {
                    s.to_ascii_lowercase()
                })))
            }
            Kind::EmptyAsAbsent => match &value {
                Doc::Str(s) if py_strip(s).is_empty() => Ok(Doc::Null),
                _ => Ok(value),
            },
            Kind::NullIf(unknown) => {
                let hit = unknown.iter().any(|u| match (u, &value) {
                    (Doc::Int(a), Doc::Int(b)) => a == b,
                    (Doc::Bool(a), Doc::Bool(b)) => a == b,
                    (Doc::Str(a), Doc::Str(b)) => a == b,
                    _ => false,
                });
                if matches!(value, Doc::Dec(_) | Doc::Obj(_)) && !unknown.is_empty() {
                    return Err(Fail::Aside);
                }
                Ok(if hit { Doc::Null } else { value })
            }
            Kind::NotEmpty => match &value {
                Doc::Null => Err(Fail::Unfixable),
                Doc::Str(s) if s.is_empty() => Err(Fail::Unfixable),
                _ => Ok(value),
            },
            Kind::Mojibake => Ok(Doc::Str(map_text(take_text(value)?, repair_mojibake))),
            Kind::MaxLength(max) => {
                let s = text(&value)?;
                if s.len() > *max && s.chars().count() > *max {
                    return Err(Fail::Unfixable);
                }
                Ok(value)
            }
            Kind::NoControl { allow } => {
                let s = text(&value)?;
                if s.chars().any(|c| is_control(c, allow)) {
                    return Err(Fail::Unfixable);
                }
                Ok(value)
            }
            Kind::Pattern(regex) => {
                let s = text(&value)?;
                if !s.is_ascii() || s.bytes().any(|b| (0x1c..=0x1f).contains(&b)) {
                    return Err(Fail::Aside); // Unicode classes: Python's tables decide
                }
                if regex.is_match(s) {
                    Ok(value)
                } else {
                    Err(Fail::Unfixable)
                }
            }
            Kind::Codes { map, keep } => {
                if matches!(value, Doc::Dec(_)) {
                    return Err(Fail::Aside);
                }
                if !matches!(value, Doc::Obj(_)) {
                    for (code, name) in map {
                        if py_eq(code, &value) == Some(true) {
                            return Ok(name.clone());
                        }
                    }
                }
                if *keep {
                    Ok(value)
                } else {
                    Err(Fail::Unfixable)
                }
            }
            Kind::Boolean { yes, no, null } => match &value {
                Doc::Null => Ok(null.clone()),
                Doc::Bool(_) => Ok(value),
                Doc::Int(0) => Ok(Doc::Bool(false)),
                Doc::Int(1) => Ok(Doc::Bool(true)),
                Doc::Str(s) => {
                    let word = py_strip(s);
                    if !word.is_ascii() {
                        return Err(Fail::Aside);
                    }
                    let word = word.to_ascii_uppercase();
                    if yes.contains(&word) {
                        Ok(Doc::Bool(true))
                    } else if no.contains(&word) {
                        Ok(Doc::Bool(false))
                    } else {
                        Err(Fail::Unfixable)
                    }
                }
                _ => Err(Fail::Unfixable),
            },
            Kind::Integer => match &value {
                Doc::Int(_) => Ok(value),
                Doc::Str(s) => {
                    if !s.is_ascii() {
                        return Err(Fail::Aside);
                    }
                    let t = py_strip(s);
                    let body = t.strip_prefix(['+', '-']).unwrap_or(t);
                    if body.is_empty()
                        || body.len() > 30
                        || !body.bytes().all(|b| b.is_ascii_digit())
                    {
                        return Err(Fail::Unfixable);
                    }
                    t.parse::<i64>().map(Doc::Int).map_err(|_| Fail::Aside)
                }
                Doc::Dec(d) => {
                    let (n, s) = d.normal();
                    if s != 0 {
                        return Err(Fail::Unfixable);
                    }
                    i64::try_from(n).map(Doc::Int).map_err(|_| Fail::Aside)
                }
                _ => Err(Fail::Unfixable),
            },
            Kind::Range { low, high } => {
                let number = match &value {
                    Doc::Int(n) => Dec {
                        unscaled: i128::from(*n),
                        scale: 0,
                    },
                    Doc::Dec(d) => *d,
                    Doc::Str(s) => {
                        if !s.is_ascii() {
                            return Err(Fail::Aside);
                        }
                        parse_dec(py_strip(s)).ok_or(Fail::Aside)?
                    }
                    _ => return Err(Fail::Unfixable),
                };
                let below = match low {
                    Some(l) => dec_cmp(&number, l).ok_or(Fail::Aside)?.is_lt(),
                    None => false,
                };
                let above = match high {
                    Some(h) => dec_cmp(&number, h).ok_or(Fail::Aside)?.is_gt(),
                    None => false,
                };
                if below || above {
                    Err(Fail::Unfixable)
                } else {
                    Ok(value)
                }
            }
            Kind::Decimal { scale, half_even } => {
                let number = decimal_of(&value)?;
                let exact = match scale {
                    None => number,
                    Some(s) => quantize(number, *s, *half_even)?,
                };
                // `decimal_text`: the plain notation, as text (JSON has no exact decimal).
                Ok(Doc::owned(exact.text()))
            }
            Kind::Money {
                from,
                currency,
                scale,
                low,
                high,
                marks,
            } => {
                let amount = match from {
                    MoneyFrom::Cents => match &value {
                        Doc::Int(n) => Dec {
                            unscaled: i128::from(*n),
                            scale: *scale,
                        },
                        _ => return Err(Fail::Unfixable),
                    },
                    MoneyFrom::Amount => decimal_of(&value)?,
                    MoneyFrom::Text => match amount_text(text(&value)?, marks)? {
                        Some(d) => d,
                        None => return Ok(Doc::Null),
                    },
                };
                if dec_cmp(&amount, low).ok_or(Fail::Aside)?.is_lt() {
                    return Err(Fail::Unfixable);
                }
                if let Some(h) = high {
                    if dec_cmp(&amount, h).ok_or(Fail::Aside)?.is_gt() {
                        return Err(Fail::Unfixable);
                    }
                }
                let exact = quantize(amount, *scale, false)?;
                if exact.unscaled == 0 && amount.unscaled < 0 {
                    return Err(Fail::Aside);
                }
                Ok(Doc::Obj(vec![
                    ("amount", Doc::owned(exact.text())),
                    ("currency", Doc::text(currency)),
                ]))
            }
            Kind::Timestamp {
                zone,
                unit,
                ambiguous,
                nonexistent,
            } => {
                let utc = match &value {
                    Doc::Int(n) => {
                        let local = n
                            .checked_mul(unit.unwrap_or(flavour.unit))
                            .ok_or(Fail::Aside)?;
                        match zone.to_utc(local, *ambiguous, *nonexistent) {
                            Some(Ok(us)) => us,
                            Some(Err(())) => return Err(Fail::Unfixable),
                            None => return Err(Fail::Aside),
                        }
                    }
                    Doc::Str(s) => {
                        let (local, offset) = iso_timestamp(s).ok_or(Fail::Aside)?;
                        match offset {
                            Some(off) => local - off * 60_000_000,
                            None => match zone.to_utc(local, *ambiguous, *nonexistent) {
                                Some(Ok(us)) => us,
                                Some(Err(())) => return Err(Fail::Unfixable),
                                None => return Err(Fail::Aside),
                            },
                        }
                    }
                    _ => return Err(Fail::Unfixable),
                };
                // Years 1900..2100: where the zone tables and iso_z agree with Python.
                if !(-2_208_988_800_000_000..4_102_444_800_000_000).contains(&utc) {
                    return Err(Fail::Aside);
                }
                Ok(Doc::owned(clock::iso_z(utc)))
            }
            Kind::Date => match &value {
                Doc::Int(days) => clock::iso_date(*days).map(Doc::owned).ok_or(Fail::Aside),
                Doc::Str(s) => {
                    let b = s.as_bytes();
                    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
                        return Err(Fail::Aside);
                    }
                    let n = |r: std::ops::Range<usize>| -> Option<i64> {
                        let part = &s[r];
                        part.bytes()
                            .all(|c| c.is_ascii_digit())
                            .then(|| part.parse().ok())?
                    };
                    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
                    match (y, m, d) {
                        (Some(y), Some(m), Some(d)) if clock::days_of(y, m, d).is_some() => {
                            Ok(value)
                        }
                        _ => Err(Fail::Aside),
                    }
                }
                _ => Err(Fail::Unfixable),
            },
            Kind::Default(fallback) => Ok(match value {
                Doc::Null => fallback.clone(),
                other => other,
            }),
            Kind::Lookup { .. } | Kind::Python => Err(Fail::Aside),
        }
    }

    /// The kind's repair of `value` (only for kinds that `repairs`).
    pub fn repair<'a>(&self, value: Doc<'a>) -> Out<'a> {
        match self {
            Kind::MaxLength(max) => {
                let s = take_text(value)?;
                Ok(Doc::owned(s.chars().take(*max).collect()))
            }
            Kind::NoControl { allow } => {
                let s = take_text(value)?;
                Ok(Doc::owned(
                    s.chars().filter(|c| !is_control(*c, allow)).collect(),
                ))
            }
            Kind::Range { low, high } => {
                let Doc::Int(n) = value else {
                    return Err(Fail::Aside);
                };
                let number = Dec {
                    unscaled: i128::from(n),
                    scale: 0,
                };
                let whole = |d: &Dec| -> Result<i64, Fail> {
                    let (q, s) = d.normal();
                    if s != 0 {
                        return Err(Fail::Aside);
                    }
                    i64::try_from(q).map_err(|_| Fail::Aside)
                };
                if let Some(l) = low {
                    if dec_cmp(&number, l).ok_or(Fail::Aside)?.is_lt() {
                        return Ok(Doc::Int(whole(l)?));
                    }
                }
                if let Some(h) = high {
                    if dec_cmp(&number, h).ok_or(Fail::Aside)?.is_gt() {
                        return Ok(Doc::Int(whole(h)?));
                    }
                }
                Ok(value)
            }
            _ => Err(Fail::Aside),
        }
    }
}

/// `rules.parse_amount_text` for ASCII amounts: Ok(None) when there is no amount at all.
fn amount_text(text: &str, marks: &[String]) -> Result<Option<Dec>, Fail> {
    // marks.sub("", text): at each position the first mark that matches (case-insensitive
    // for ASCII marks; the plan admits only marks without other case forms otherwise).
    let mut rest = String::with_capacity(text.len());
    let mut i = 0;
    let bytes = text.as_bytes();
    'outer: while i < bytes.len() {
        for mark in marks {
            let m = mark.as_bytes();
            if !m.is_empty()
                && bytes.len() - i >= m.len()
                && bytes[i..i + m.len()].eq_ignore_ascii_case(m)
            {
                i += m.len();
                continue 'outer;
            }
        }
        let c = text[i..].chars().next().expect("a char at a char boundary");
        if !c.is_ascii() {
            return Err(Fail::Aside); // Python's case folding and \d decide
        }
        rest.push(c);
        i += 1;
    }
    let amount = py_strip(&rest);
    if amount.is_empty() {
        return if py_strip(text).is_empty() {
            Ok(None)
        } else {
            Err(Fail::Unfixable)
        };
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let grouped = |s: &str, sep: char| -> bool {
        let mut groups = s.split(sep);
        let first = groups.next().unwrap_or("");
        if !(1..=3).contains(&first.len()) || !digits(first) {
            return false;
        }
        let mut more = false;
        for g in groups {
            if g.len() != 3 || !digits(g) {
                return false;
            }
            more = true;
        }
        more
    };
    // \d{1,3}(?:<group>\d{3})+(?:<decimal>\d{1,2})?
    let thousands = |group: char, decimal: char| -> bool {
        match amount.rsplit_once(decimal) {
            Some((units, fraction)) if grouped(units, group) => {
                (1..=2).contains(&fraction.len()) && digits(fraction)
            }
            _ => grouped(amount, group),
        }
    };
    let plain = match amount.find(['.', ',']) {
        Some(i) => {
            let (units, fraction) = (&amount[..i], &amount[i + 1..]);
            digits(units) && (1..=2).contains(&fraction.len()) && digits(fraction)
        }
        None => digits(amount),
    };
    let number = if plain {
        amount.replace(',', ".")
    } else if thousands(',', '.') && amount.contains('.') {
        amount.replace(',', "")
    } else if thousands('.', ',') && amount.contains(',') {
        amount.replace('.', "").replace(',', ".")
    } else {
        return Err(Fail::Unfixable); // ambiguous or unreadable
    };
    parse_dec(&number).map(Some).ok_or(Fail::Aside)
}

/// `datetime.fromisoformat` of `YYYY-MM-DD[T ]HH:MM:SS[.fff|.ffffff][Z|(+|-)HH:MM]`:
/// (microseconds of the wall-clock time since 1970, the offset in minutes if any).
fn iso_timestamp(text: &str) -> Option<(i64, Option<i64>)> {
    let b = text.as_bytes();
    if b.len() < 19 || !text.is_ascii() {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = &text[r];
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let days = clock::days_of(num(0..4)?, num(5..7)?, num(8..10)?)?;
    let (h, m, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if h > 23 || m > 59 || s > 59 {
        return None;
    }
    let mut rest = &text[19..];
    let mut micros = 0;
    if let Some(f) = rest.strip_prefix('.') {
        let n = f.bytes().take_while(u8::is_ascii_digit).count();
        micros = match n {
            3 => f[..3].parse::<i64>().ok()? * 1000,
            6 => f[..6].parse::<i64>().ok()?,
            _ => return None,
        };
        rest = &f[n..];
    }
    let offset = match rest {
        "" => None,
        "Z" => Some(0),
        _ => {
            let r = rest.as_bytes();
            if r.len() != 6 || r[3] != b':' || !matches!(r[0], b'+' | b'-') {
                return None;
            }
            let oh: i64 = rest[1..3]
                .parse()
                .ok()
                .filter(|_| rest[1..3].bytes().all(|c| c.is_ascii_digit()))?;
            let om: i64 = rest[4..6]
                .parse()
                .ok()
                .filter(|_| rest[4..6].bytes().all(|c| c.is_ascii_digit()))?;
            if oh > 23 || om > 59 {
                return None;
            }
            Some(if r[0] == b'-' {
                -(oh * 60 + om)
            } else {
                oh * 60 + om
            })
        }
    };
    let local = ((days * 86_400 + h * 3600 + m * 60 + s) * 1_000_000) + micros;
    Some((local, offset))
}

// ------------------------------------------------------------------------ the plan

/// A literal of the plan (a YAML scalar): None for a type this side does not handle.
pub fn literal(value: &Value) -> Option<Doc<'static>> {
    Some(match value {
        Value::Null => Doc::Null,
        Value::Bool(b) => Doc::Bool(*b),
        Value::Number(n) => Doc::Int(n.as_i64()?),
        Value::String(s) => Doc::owned(s.clone()),
        _ => return None,
    })
}

fn choice(value: Option<&Value>, default: Choice) -> Option<Choice> {
    Some(match value.and_then(Value::as_str) {
        None => default,
        Some("earlier" | "before_offset") => Choice::Before,
        Some("later" | "after_offset") => Choice::After,
        Some("reject") => Choice::Reject,
        Some(_) => return None,
    })
}

/// The plan's bound text (str of Python's Decimal) -> a decimal.
fn bound(value: Option<&Value>) -> Option<Option<Dec>> {
    match value {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(s)) => parse_dec(s).map(Some),
        _ => None,
    }
}

/// One rule of the plan: {"kind": ..., "on_fail": ..., "takes_null": ..., options...}.
/// A kind or an option this side does not implement becomes `Kind::Python`.
pub fn rule(spec: &Value, zones: &std::collections::HashMap<String, Rc<Zone>>) -> Rule {
    let on_fail = spec
        .get("on_fail")
        .and_then(Value::as_str)
        .and_then(Policy::parse);
    let takes_null = spec
        .get("takes_null")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let kind = kind(spec, zones).unwrap_or(Kind::Python);
    Rule {
        kind,
        on_fail,
        takes_null,
    }
}

fn strings(value: Option<&Value>) -> Option<Vec<String>> {
    value?
        .as_array()?
        .iter()
        .map(|v| v.as_str().map(str::to_string))
        .collect()
}

fn kind(spec: &Value, zones: &std::collections::HashMap<String, Rc<Zone>>) -> Option<Kind> {
    let o = |name: &str| spec.get(name);
    Some(match spec.get("kind")?.as_str()? {
        "text" => Kind::Text,
        "trim" => Kind::Trim,
        "whitespace" => Kind::Whitespace {
            lines: o("mode").and_then(Value::as_str) == Some("lines"),
        },
        "case" => Kind::Case {
            upper: o("to")?.as_str()? == "upper",
        },
        "empty_as_absent" => Kind::EmptyAsAbsent,
        "null_if" => Kind::NullIf(
            o("values")?
                .as_array()?
                .iter()
                .filter_map(literal)
                .collect(),
        ),
        "not_empty" => Kind::NotEmpty,
        "mojibake" => Kind::Mojibake,
        "max_length" => Kind::MaxLength(usize::try_from(o("max")?.as_u64()?).ok()?),
        "no_control" => Kind::NoControl {
            allow: o("allow")
                .and_then(Value::as_str)
                .unwrap_or("")
                .chars()
                .collect(),
        },
        "pattern" => {
            let regex = o("regex")?.as_str()?;
            // The plan admits only patterns whose syntax means the same to both engines.
            Kind::Pattern(Regex::new(&format!(r"\A(?:{regex})\z")).ok()?)
        }
        "codes" => Kind::Codes {
            map: o("map")?
                .as_array()?
                .iter()
                .map(|pair| Some((literal(pair.get(0)?)?, literal(pair.get(1)?)?)))
                .collect::<Option<Vec<_>>>()?,
            keep: o("unmapped").and_then(Value::as_str) == Some("keep"),
        },
        "boolean" => Kind::Boolean {
            yes: strings(o("true"))?,
            no: strings(o("false"))?,
            null: literal(o("null").unwrap_or(&Value::Null))?,
        },
        "integer" => Kind::Integer,
        "range" => Kind::Range {
            low: bound(o("min"))?,
            high: bound(o("max"))?,
        },
        "decimal" => Kind::Decimal {
            scale: match o("scale") {
                None | Some(Value::Null) => None,
                Some(v) => Some(u32::try_from(v.as_u64()?).ok()?),
            },
            half_even: o("rounding").and_then(Value::as_str) == Some("half_even"),
        },
        "money" => {
            let scale = u32::try_from(o("scale")?.as_u64()?).ok()?;
            if scale > 6 {
                return None; // str(Decimal) may use an exponent
            }
            Kind::Money {
                from: match o("from")?.as_str()? {
                    "amount" => MoneyFrom::Amount,
                    "cents" => MoneyFrom::Cents,
                    "text" => MoneyFrom::Text,
                    _ => return None,
                },
                currency: o("currency")?.as_str()?.to_string(),
                scale,
                low: bound(o("min"))??,
                high: bound(o("max"))?,
                marks: strings(o("marks"))?,
            }
        }
        "timestamp" => Kind::Timestamp {
            zone: zones.get(o("zone")?.as_str()?)?.clone(),
            unit: match o("unit").and_then(Value::as_str) {
                None | Some("auto") => None,
                Some("s") => Some(1_000_000),
                Some("ms") => Some(1000),
                Some("us") => Some(1),
                Some(_) => return None,
            },
            ambiguous: choice(o("ambiguous"), Choice::Before)?,
            nonexistent: choice(o("nonexistent"), Choice::Before)?,
        },
        "date" => Kind::Date,
        "default" => Kind::Default(literal(o("value")?)?),
        "lookup" => Kind::Lookup {
            table: o("table")?.as_str()?.to_string(),
            field: o("field")?.as_str()?.to_string(),
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Doc<'_> {
        Doc::text(text)
    }

    fn apply<'a>(kind: &'a Kind, value: Doc<'a>) -> Out<'a> {
        kind.apply(value, Flavour { unit: 1 })
    }

    fn text_of(out: Out) -> String {
        match out {
            Ok(Doc::Str(s)) => s.into_owned(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn texts() {
        assert_eq!(
            text_of(apply(&Kind::Whitespace { lines: false }, s("  a \t b "))),
            "a b"
        );
        assert_eq!(
            text_of(apply(&Kind::Whitespace { lines: true }, s(" a\r\n  b \n"))),
            "a\nb"
        );
        assert_eq!(
            text_of(apply(&Kind::Mojibake, s("Caf\u{c3}\u{a9}"))),
            "Caf\u{e9}"
        );
        assert_eq!(
            apply(&Kind::MaxLength(2), s("abc")).unwrap_err(),
            Fail::Unfixable
        );
        assert_eq!(text_of(Kind::MaxLength(2).repair(s("\u{e9}bc"))), "\u{e9}b");
        assert_eq!(
            apply(&Kind::Case { upper: true }, s("\u{df}")).unwrap_err(),
            Fail::Aside
        );
    }

    #[test]
    fn amounts() {
        let marks = vec!["EUR".to_string(), "\u{20ac}".to_string(), "$".to_string()];
        let t = |text: &str| amount_text(text, &marks).map(|d| d.map(|d| d.text()));
        assert_eq!(t("12.50"), Ok(Some("12.50".into())));
        assert_eq!(t(" 12,5 eur"), Ok(Some("12.5".into())));
        assert_eq!(t("1.234,50 \u{20ac}"), Ok(Some("1234.50".into())));
        assert_eq!(t("$1,234.50"), Ok(Some("1234.50".into())));
        assert_eq!(t("1,234"), Err(Fail::Unfixable));
        assert_eq!(t(""), Ok(None));
        assert_eq!(t("EUR"), Err(Fail::Unfixable));
        assert_eq!(t("12.345"), Err(Fail::Unfixable));
        assert_eq!(t("1,234,567"), Err(Fail::Unfixable));
        assert_eq!(t("1,234,567.5"), Ok(Some("1234567.5".into())));
    }

    #[test]
    fn decimals() {
        let d = |t: &str| parse_dec(t).unwrap();
        assert_eq!(quantize(d("1.005"), 2, true), Ok(d("1.00")));
        assert_eq!(quantize(d("1.015"), 2, true), Ok(d("1.02")));
        assert_eq!(quantize(d("1.015"), 2, false), Err(Fail::Unfixable));
        assert_eq!(
            quantize(d("1.5"), 3, false).map(|x| x.text()),
            Ok("1.500".into())
        );
        assert_eq!(parse_dec("-0.0"), None);
        assert_eq!(py_eq(&Doc::Dec(d("1.50")), &Doc::Dec(d("1.5"))), Some(true));
        assert_eq!(py_eq(&Doc::Bool(true), &Doc::Int(1)), Some(true));
    }

    #[test]
    fn iso_timestamps() {
        assert_eq!(
            iso_timestamp("1970-01-01T00:00:01Z"),
            Some((1_000_000, Some(0)))
        );
        assert_eq!(
            iso_timestamp("1970-01-01 00:00:00.500"),
            Some((500_000, None))
        );
        assert_eq!(
            iso_timestamp("1970-01-01T01:00:00+01:00"),
            Some((3_600_000_000, Some(60)))
        );
        assert_eq!(iso_timestamp("1970-01-01T00:00:00.5"), None);
        assert_eq!(iso_timestamp("1970-02-30T00:00:00"), None);
    }
}
