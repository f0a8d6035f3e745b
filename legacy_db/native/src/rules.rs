//! The catalog's cleaning rules (`seam.legacy_db.rules`) for the values the fast path is
//! sure about. Every function returns None where the Python rule would raise `Unfixable`,
//! or where the value is unusual enough (non-ASCII text, control characters, floats,
//! huge numbers, dates outside 1996..=2037) that only the Python rule may decide: the
//! record then takes the Python path, which writes the dead letter or the repair.

use std::borrow::Cow;

use crate::cell::Cell;
use crate::clock;

/// The legacy columns' limits: INTEGER (`rules.MAX_INT`, ids and cents) and the widths, in
/// characters, that `seam.legacy_db.stages.clean.TABLES` declares. A text is taken only
/// when its raw form has no more BYTES than the width has characters: cleaning never
/// lengthens a name or a description, and a longer text (multi-byte characters, or too
/// long) is Python's to judge. The parity tests probe both sides of each limit.
pub const MAX_INT: i64 = 2_147_483_647;
pub const SKU_WIDTH: usize = 32;
pub const NAME_WIDTH: usize = 200;
pub const DESCRIPTION_WIDTH: usize = 65_535;

/// What Python's `str.isspace()` (and so the regex `\s` and `str.strip()`) calls
/// whitespace.
fn py_space(c: char) -> bool {
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

fn py_strip(text: &str) -> &str {
    text.trim_matches(py_space)
}

/// Control characters left in a clean value: their JSON escapes are the one place where
/// encoders may differ, so such a value is Python's to write.
fn has_control(text: &str, newline_ok: bool) -> bool {
    text.chars()
        .any(|c| (c < ' ' && !(newline_ok && c == '\n')) || c == '\x7f')
}

fn text<'a>(value: &'a Cell) -> Option<&'a str> {
    match value {
        Cell::Str(s) => Some(s),
        _ => None,
    }
}

/// The byte of `c` in Windows-1252, None where that code page has none.
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

/// W9 (`rules.repair_mojibake`): undo one UTF-8-read-as-cp1252 round trip when the whole
/// text survives it.
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

fn positive_int(value: &Cell) -> Option<i64> {
    match value {
        Cell::Int(n) if (1..=MAX_INT).contains(n) => Some(*n),
        _ => None,
    }
}

pub fn clean_id(value: &Cell) -> Option<i64> {
    positive_int(value)
}

/// W6: NULL and 0 -> None.
pub fn zero_is_absent(value: &Cell) -> Option<Option<i64>> {
    match value {
        Cell::Null | Cell::Int(0) => Some(None),
        _ => positive_int(value).map(Some),
    }
}

/// `rules.clean_name`: mojibake repaired, whitespace runs folded, stripped; at most
/// `width` bytes raw.
pub fn clean_name(value: &Cell, width: usize) -> Option<String> {
    let raw = text(value)?;
    if raw.len() > width {
        return None;
    }
    let repaired = repair_mojibake(raw);
    let folded =
        if !repaired.is_ascii() || repaired.contains("  ") || repaired.contains(['\t', '\n', '\r'])
        {
            Cow::Owned(fold(&repaired, py_space))
        } else {
            repaired
        };
    let name = py_strip(&folded);
    (!name.is_empty() && !has_control(name, false)).then(|| name.to_string())
}

/// W5 (`rules.optional_text`): NULL and blank -> None, else stripped.
fn optional_text<'a>(value: &'a Cell) -> Option<Option<&'a str>> {
    match value {
        Cell::Null => Some(None),
        _ => {
            let stripped = py_strip(text(value)?);
            Some((!stripped.is_empty()).then_some(stripped))
        }
    }
}

/// `rules.clean_description`: mojibake repaired, CRLF/CR -> LF, runs of spaces, tabs and
/// NBSPs folded, every line and the whole stripped; blank -> None; at most `width` bytes
/// raw.
pub fn clean_description(value: &Cell, width: usize) -> Option<Option<String>> {
    if text(value).is_some_and(|raw| raw.len() > width) {
        return None;
    }
    let Some(stripped) = optional_text(value)? else {
        return Some(None);
    };
    let mut out = repair_mojibake(stripped);
    if out.contains('\r') {
        out = Cow::Owned(out.replace("\r\n", "\n").replace('\r', "\n"));
    }
    if out.contains("  ") || out.contains(['\t', '\u{a0}', '\n']) {
        let lines: Vec<String> = out
            .split('\n')
            .map(|line| py_strip(&fold(line, |c| matches!(c, ' ' | '\t' | '\u{a0}'))).to_string())
            .collect();
        out = Cow::Owned(py_strip(&lines.join("\n")).to_string());
    }
    if out.is_empty() {
        return Some(None);
    }
    (!has_control(&out, true)).then(|| Some(out.into_owned()))
}

/// An ASCII code after `strip()` (Python's `upper()` of other text is its own business).
fn ascii_code<'a>(value: &'a Cell) -> Option<&'a str> {
    let code = py_strip(text(value)?);
    (code.is_ascii() && !has_control(code, false)).then_some(code)
}

/// `rules.clean_sku` (ASCII only: upper-casing keeps its length, so the limit is exact).
pub fn clean_sku(value: &Cell) -> Option<String> {
    let sku = ascii_code(value)?.to_ascii_uppercase();
    (!sku.is_empty() && sku.len() <= SKU_WIDTH && !sku.contains(py_space)).then_some(sku)
}

pub fn clean_ean(value: &Cell) -> Option<Option<String>> {
    match optional_text(value)? {
        None => Some(None),
        Some(t) if (8..=14).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit()) => {
            Some(Some(t.to_string()))
        }
        Some(_) => None,
    }
}

pub fn clean_status(value: &Cell) -> Option<&'static str> {
    match ascii_code(value)? {
        "A" | "a" => Some("active"),
        "D" | "d" => Some("discontinued"),
        "X" | "x" => Some("delisted"),
        _ => None,
    }
}

pub fn clean_deleted_flag(value: &Cell) -> Option<bool> {
    match value {
        Cell::Null => Some(false),
        _ => match ascii_code(value)? {
            "Y" | "y" => Some(true),
            "N" | "n" | "" => Some(false),
            _ => None,
        },
    }
}

/// Up to this many digits an amount in cents fits an i64 with room to spare (Python's
/// Decimal context holds 28 digits: larger amounts are left to it).
const MAX_DIGITS: usize = 15;

fn digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// Whole units and a fraction of one or two digits -> cents.
fn cents_of(units: &str, fraction: &str) -> Option<i64> {
    if units.len() > MAX_DIGITS || !digits(units) {
        return None;
    }
    let whole: i64 = units.parse().ok()?;
    let part: i64 = match fraction.len() {
        0 => 0,
        1 if digits(fraction) => fraction.parse::<i64>().ok()? * 10,
        2 if digits(fraction) => fraction.parse().ok()?,
        _ => return None,
    };
    Some(whole * 100 + part)
}

/// `\d{1,3}(?:<sep>\d{3})+` -> the digits without separators.
fn grouped(text: &str, sep: char) -> Option<String> {
    let mut groups = text.split(sep);
    let first = groups.next()?;
    if !(1..=3).contains(&first.len()) || !digits(first) {
        return None;
    }
    let mut out = first.to_string();
    let mut more = false;
    for group in groups {
        if group.len() != 3 || !digits(group) {
            return None;
        }
        out.push_str(group);
        more = true;
    }
    more.then_some(out)
}

/// W1: the amount of a price text without its currency marks, in cents; only the three
/// accepted forms (plain, 1,234.50, 1.234,50), everything else is left to Python.
fn amount_cents(text: &str) -> Option<i64> {
    // Plain: \d+(?:[.,]\d{1,2})?
    if let Some(i) = text.find(['.', ',']) {
        let (units, fraction) = (&text[..i], &text[i + 1..]);
        if digits(units) && (1..=2).contains(&fraction.len()) && digits(fraction) {
            return cents_of(units, fraction);
        }
    } else if digits(text) {
        return cents_of(text, "");
    }
    // Thousands with a fraction: 1,234.50 (EN) or 1.234,50 (DE).
    for (group_sep, decimal_sep) in [(',', '.'), ('.', ',')] {
        if let Some(i) = text.rfind(decimal_sep) {
            let (units, fraction) = (&text[..i], &text[i + 1..]);
            if let (Some(units), false) = (grouped(units, group_sep), fraction.is_empty()) {
                return cents_of(&units, fraction);
            }
        }
    }
    None
}

/// W1: price text -> Some(Some(cents)), Some(None) when there is no price.
fn price_text(value: &Cell) -> Option<Option<i64>> {
    let text = match value {
        Cell::Null => return Some(None),
        Cell::Str(s) => s,
        _ => return None,
    };
    // Currency marks removed: (?i)eur|€|\$
    let mut amount = String::with_capacity(text.len());
    let mut rest: &str = text;
    while let Some(c) = rest.chars().next() {
        if rest.len() >= 3 && rest.as_bytes()[..3].eq_ignore_ascii_case(b"eur") {
            rest = &rest[3..];
        } else {
            if c != '€' && c != '$' {
                amount.push(c);
            }
            rest = &rest[c.len_utf8()..];
        }
    }
    let amount = py_strip(&amount);
    if amount.is_empty() {
        // Only currency marks: Unfixable; nothing at all: no price.
        return py_strip(text).is_empty().then_some(None);
    }
    if !amount.is_ascii() {
        return None; // Unicode digits and the like: Python's regexes decide
    }
    amount_cents(amount).map(Some)
}

/// W1 + W2: the price in cents; cents win, a price text holding another amount is left to
/// Python (it rejects the disagreement, as it rejects a price beyond INTEGER cents).
pub fn price_of(price_txt: &Cell, price_cents: &Cell) -> Option<Option<i64>> {
    let cents = match price_cents {
        Cell::Null => None,
        Cell::Int(c) if (0..=MAX_INT).contains(c) => Some(*c),
        _ => return None,
    };
    let text = price_text(price_txt)?;
    match (cents, text) {
        (None, Some(t)) if t > MAX_INT => None,
        (None, text) => Some(text),
        (Some(c), Some(t)) if t != c => None,
        (Some(c), _) => Some(Some(c)),
    }
}

/// Cents as the exact decimal text Python's `str(Decimal(...).quantize(Decimal("0.01")))`
/// writes. Cents are never negative here (`price_of` leaves those to Python).
pub fn cents_text(cents: i64) -> String {
    debug_assert!(cents >= 0);
    let mut text = String::with_capacity(24);
    text.push_str(itoa::Buffer::new().format(cents / 100));
    let rest = (cents % 100) as u8;
    text.extend([
        '.',
        char::from(b'0' + rest / 10),
        char::from(b'0' + rest % 10),
    ]);
    text
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Micros,
    Millis,
}

/// W7: naive local timestamp -> ISO 8601 UTC; NULL -> None. Integers only (a string or an
/// embedded-schema value is Python's to read).
pub fn to_utc_iso(value: &Cell, unit: Unit) -> Option<Option<String>> {
    let raw = match value {
        Cell::Null => return Some(None),
        Cell::Int(n) => *n,
        _ => return None,
    };
    let local = match unit {
        Unit::Micros => raw,
        Unit::Millis => raw.checked_mul(1000)?,
    };
    Some(Some(clock::iso_z(clock::berlin_to_utc(local)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Cell<'_> {
        Cell::Str(Cow::Borrowed(text))
    }

    #[test]
    fn prices() {
        let t = |text: &str| price_text(&s(text));
        assert_eq!(t("12.50"), Some(Some(1250)));
        assert_eq!(t(" 12,5 EUR"), Some(Some(1250)));
        assert_eq!(t("1.234,50 €"), Some(Some(123_450)));
        assert_eq!(t("$1,234.50"), Some(Some(123_450)));
        assert_eq!(t("1,234"), None);
        assert_eq!(t(""), Some(None));
        assert_eq!(t("EUR"), None);
        assert_eq!(t("12.345"), None);
        assert_eq!(t("1,234."), None);
        assert_eq!(cents_text(5), "0.05");
    }

    #[test]
    fn texts() {
        assert_eq!(clean_name(&s("  a   b "), 9), Some("a b".to_string()));
        assert_eq!(clean_name(&s("a\tb"), 9), Some("a b".to_string()));
        assert_eq!(
            clean_name(&s("Caf\u{c3}\u{a9}"), 9),
            Some("Caf\u{e9}".to_string())
        );
        assert_eq!(clean_name(&s("abc"), 2), None);
        assert_eq!(clean_name(&s("Mug\u{7}"), 9), None);
        assert_eq!(clean_sku(&s(" ab-1 ")), Some("AB-1".to_string()));
        assert_eq!(clean_ean(&s("")), Some(None));
        assert_eq!(clean_ean(&s("1234567")), None);
        assert_eq!(
            clean_description(&s(" a\r\n  b "), 8),
            Some(Some("a\nb".to_string()))
        );
        assert_eq!(clean_description(&s(" a\r\n  b "), 7), None);
        assert_eq!(
            clean_sku(&s(&"A".repeat(SKU_WIDTH))),
            Some("A".repeat(SKU_WIDTH))
        );
        assert_eq!(clean_sku(&s(&"A".repeat(SKU_WIDTH + 1))), None);
    }

    #[test]
    fn integer_limits() {
        assert_eq!(clean_id(&Cell::Int(MAX_INT)), Some(MAX_INT));
        assert_eq!(clean_id(&Cell::Int(MAX_INT + 1)), None);
        assert_eq!(zero_is_absent(&Cell::Int(MAX_INT + 1)), None);
        assert_eq!(
            price_of(&Cell::Null, &Cell::Int(MAX_INT)),
            Some(Some(MAX_INT))
        );
        assert_eq!(price_of(&Cell::Null, &Cell::Int(MAX_INT + 1)), None);
        assert_eq!(
            price_of(&s("21474836.47"), &Cell::Null),
            Some(Some(MAX_INT))
        );
        assert_eq!(price_of(&s("21474836.48"), &Cell::Null), None);
    }
}
