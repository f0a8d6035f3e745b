//! Naive timestamps as Debezium sends them -> ISO 8601 UTC text, the way
//! `seam.legacy_db.rules.to_utc_iso` and `seam.transforms.provenance.source_ts` write it.
//!
//! Only the years whose Europe/Berlin rules are the EU's (1996..=2037) are handled here;
//! anything else returns None and the record takes the Python path.

const US_PER_DAY: i64 = 86_400_000_000;
const US_PER_HOUR: i64 = 3_600_000_000;

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of days since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// Days since the epoch of the last Sunday of `month` (31 days long) in `year`.
fn last_sunday(year: i64, month: i64) -> i64 {
    let last = days_from_civil(year, month, 31);
    // 1970-01-01 was a Thursday: weekday 0 = Monday.
    let weekday = (last + 3).rem_euclid(7);
    last - (weekday + 1) % 7
}

/// ISO 8601 of microseconds since the epoch, naive, microseconds only when there are any,
/// as Python's `datetime.isoformat()` writes it, with a 'Z'.
fn digits(out: &mut Vec<u8>, mut value: i64, width: usize) {
    let start = out.len();
    out.resize(start + width, b'0');
    for slot in out[start..].iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

pub fn iso_z(us: i64) -> String {
    let days = us.div_euclid(US_PER_DAY);
    let rest = us.rem_euclid(US_PER_DAY);
    let (y, mo, d) = civil_from_days(days);
    let secs = rest / 1_000_000;
    let micros = rest % 1_000_000;
    let mut out = Vec::with_capacity(27);
    if !(0..=9999).contains(&y) {
        return format!("{y}"); // never reached: callers keep to years 1970..=2096
    }
    digits(&mut out, y, 4);
    out.push(b'-');
    digits(&mut out, mo, 2);
    out.push(b'-');
    digits(&mut out, d, 2);
    out.push(b'T');
    digits(&mut out, secs / 3600, 2);
    out.push(b':');
    digits(&mut out, secs / 60 % 60, 2);
    out.push(b':');
    digits(&mut out, secs % 60, 2);
    if micros != 0 {
        out.push(b'.');
        digits(&mut out, micros, 6);
    }
    out.push(b'Z');
    String::from_utf8(out).expect("ASCII digits")
}

/// W7: a naive Europe/Berlin wall-clock time (microseconds since the epoch, read as if UTC)
/// -> microseconds since the epoch in UTC, with zoneinfo's fold=0: the repeated October
/// hour is its first (summer) occurrence, the missing March hour takes the winter offset.
pub fn berlin_to_utc(local_us: i64) -> Option<i64> {
    let (year, _, _) = civil_from_days(local_us.div_euclid(US_PER_DAY));
    if !(1996..=2037).contains(&year) {
        return None;
    }
    // Summer time (UTC+2) from 03:00 local on the last Sunday of March (02:00-02:59 does not
    // exist and reads as UTC+1) until 03:00 local on the last Sunday of October (02:00-02:59
    // happens twice; fold=0 is the first, still UTC+2).
    let start = last_sunday(year, 3) * US_PER_DAY + 3 * US_PER_HOUR;
    let end = last_sunday(year, 10) * US_PER_DAY + 3 * US_PER_HOUR;
    let offset = if (start..end).contains(&local_us) {
        2
    } else {
        1
    };
    Some(local_us - offset * US_PER_HOUR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        for z in [-800_000, -1, 0, 1, 10_957, 19_000, 2_932_896] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
    }

    #[test]
    fn last_sundays() {
        assert_eq!(civil_from_days(last_sunday(2024, 3)), (2024, 3, 31));
        assert_eq!(civil_from_days(last_sunday(2024, 10)), (2024, 10, 27));
        assert_eq!(civil_from_days(last_sunday(2021, 3)), (2021, 3, 28));
    }

    #[test]
    fn iso() {
        assert_eq!(iso_z(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso_z(1_500_000), "1970-01-01T00:00:01.500000Z");
        assert_eq!(iso_z(1_795_392_994_807_123), "2026-11-23T00:16:34.807123Z");
    }
}
