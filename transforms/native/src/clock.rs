//! Naive timestamps as Debezium sends them -> ISO 8601 UTC text, the way the `timestamp`
//! rule (`seam.transforms.declared.rules`) and `seam.transforms.provenance.source_ts`
//! write it, in any IANA zone (its offsets as zoneinfo gives them, see `Zone`).

const US_PER_DAY: i64 = 86_400_000_000;

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

/// What to do with a wall-clock time that a clock change makes ambiguous (it happens
/// twice) or nonexistent (it is skipped): the declared `ambiguous` / `nonexistent`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Choice {
    /// `earlier` / `before_offset`: the offset in force before the change (fold=0).
    Before,
    /// `later` / `after_offset`: the offset in force after it (fold=1).
    After,
    Reject,
}

/// A time zone as Python's zoneinfo sees it over a span of instants: its UTC offset
/// there and every change of it (`seam.transforms.declared.compiled` reads them from
/// zoneinfo itself, so both sides use the same rules).
#[derive(Debug)]
pub struct Zone {
    /// The UTC seconds covered: [start, end).
    start: i64,
    end: i64,
    initial: i64,
    /// (UTC second of the change, offset before, offset after), in order.
    changes: Vec<(i64, i64, i64)>,
    /// Per change, its wall-clock second as zoneinfo's fold=0 and fold=1 lists see it.
    wall0: Vec<i64>,
    wall1: Vec<i64>,
}

const US: i64 = 1_000_000;

impl Zone {
    pub fn new(start: i64, end: i64, initial: i64, changes: Vec<(i64, i64, i64)>) -> Zone {
        let wall0 = changes.iter().map(|&(t, b, a)| t + b.max(a)).collect();
        let wall1 = changes.iter().map(|&(t, b, a)| t + b.min(a)).collect();
        Zone {
            start,
            end,
            initial,
            changes,
            wall0,
            wall1,
        }
    }

    fn offset(&self, wall: &[i64], local_s: i64) -> i64 {
        // bisect_right: a time at the change's wall second is after it.
        let i = wall.partition_point(|&w| w <= local_s);
        if i == 0 {
            self.initial
        } else {
            self.changes[i - 1].2
        }
    }

    /// `rules.to_utc` of a naive wall-clock time (microseconds since 1970 read as if UTC):
    /// Some(Ok(UTC microseconds)), Some(Err(())) when the choice is to reject it, None when
    /// it lies outside the span this zone covers (the record takes the Python path).
    pub fn to_utc(
        &self,
        local_us: i64,
        ambiguous: Choice,
        nonexistent: Choice,
    ) -> Option<Result<i64, ()>> {
        let local_s = local_us.div_euclid(US);
        // A day's margin: no offset is that large.
        if local_s < self.start + 86_400 || local_s >= self.end - 86_400 {
            return None;
        }
        let first = self.offset(&self.wall0, local_s);
        let second = self.offset(&self.wall1, local_s);
        if first == second {
            return Some(Ok(local_us - first * US));
        }
        let gap = first < second;
        let choice = if gap { nonexistent } else { ambiguous };
        Some(match choice {
            Choice::Reject => Err(()),
            Choice::Before => Ok(local_us - first * US),
            Choice::After => Ok(local_us - second * US),
        })
    }
}

/// ISO 8601 of a date given as days since 1970-01-01 (years 1..=9999; None otherwise).
pub fn iso_date(days: i64) -> Option<String> {
    if !(-719_162..=2_932_896).contains(&days) {
        return None;
    }
    let (y, m, d) = civil_from_days(days);
    let mut out = Vec::with_capacity(10);
    digits(&mut out, y, 4);
    out.push(b'-');
    digits(&mut out, m, 2);
    out.push(b'-');
    digits(&mut out, d, 2);
    Some(String::from_utf8(out).expect("ASCII digits"))
}

/// Days since 1970-01-01 of a valid civil date, None for an invalid one.
pub fn days_of(y: i64, m: i64, d: i64) -> Option<i64> {
    if !(1..=9999).contains(&y) || !(1..=12).contains(&m) || d < 1 {
        return None;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let len = match m {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    (d <= len).then(|| days_from_civil(y, m, d))
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
    fn a_zone_with_summer_time() {
        // Berlin 2024: +1h, +2h from 01:00 UTC on 31 March, +1h from 01:00 UTC on 27 October.
        let march = days_from_civil(2024, 3, 31) * 86_400 + 3600;
        let october = days_from_civil(2024, 10, 27) * 86_400 + 3600;
        let zone = Zone::new(
            0,
            4_000_000_000,
            3600,
            vec![(march, 3600, 7200), (october, 7200, 3600)],
        );
        let local = |d: i64, h: i64, m: i64| (d * 86_400 + h * 3600 + m * 60) * US;
        let (b, a, r) = (Choice::Before, Choice::After, Choice::Reject);
        let day = days_from_civil(2024, 3, 31);
        // 02:30 does not exist: before_offset reads it as +1h, after_offset as +2h.
        assert_eq!(
            zone.to_utc(local(day, 2, 30), b, b),
            Some(Ok(local(day, 1, 30)))
        );
        assert_eq!(
            zone.to_utc(local(day, 2, 30), b, a),
            Some(Ok(local(day, 0, 30)))
        );
        assert_eq!(zone.to_utc(local(day, 2, 30), b, r), Some(Err(())));
        assert_eq!(
            zone.to_utc(local(day, 3, 0), b, r),
            Some(Ok(local(day, 1, 0)))
        );
        let day = days_from_civil(2024, 10, 27);
        // 02:30 happens twice: earlier is summer time (+2h), later winter time (+1h).
        assert_eq!(
            zone.to_utc(local(day, 2, 30), b, b),
            Some(Ok(local(day, 0, 30)))
        );
        assert_eq!(
            zone.to_utc(local(day, 2, 30), a, b),
            Some(Ok(local(day, 1, 30)))
        );
        assert_eq!(zone.to_utc(local(day, 2, 30), r, b), Some(Err(())));
        assert_eq!(
            zone.to_utc(local(day, 3, 0), r, b),
            Some(Ok(local(day, 2, 0)))
        );
        assert_eq!(zone.to_utc(-US, b, b), None);
    }

    #[test]
    fn dates() {
        assert_eq!(iso_date(0).as_deref(), Some("1970-01-01"));
        assert_eq!(days_of(2024, 2, 29), Some(days_from_civil(2024, 2, 29)));
        assert_eq!(days_of(2023, 2, 29), None);
    }

    #[test]
    fn iso() {
        assert_eq!(iso_z(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso_z(1_500_000), "1970-01-01T00:00:01.500000Z");
        assert_eq!(iso_z(1_795_392_994_807_123), "2026-11-23T00:16:34.807123Z");
    }
}
