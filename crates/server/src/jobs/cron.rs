//! Cron schedules, five fields, in UTC: `minute hour day-of-month month
//! day-of-week`, each `*`, a value, a range `a-b`, a step `*/n` or `a-b/n`,
//! or a comma list of those; months and weekdays also by name (`jan`,
//! `mon`); weekday 0 and 7 are Sunday. As in Vixie cron, when both the day
//! of the month and the weekday are restricted, a day matching either runs.
//! `@hourly`, `@daily`, `@weekly`, `@monthly` and `@yearly` are shorthands.

use std::fmt;

use model::Timestamp;
use model::time::{NANOS_PER_MINUTE, civil_from_days};

const MINUTES_PER_DAY: i64 = 24 * 60;
/// How far a search looks before deciding a schedule never runs (30 February).
const SEARCH_DAYS: i64 = 5 * 366;

#[derive(Clone, PartialEq, Eq)]
pub struct Cron {
    text: String,
    minutes: u64,
    hours: u32,
    /// Bits 1..=31.
    days: u32,
    /// Bits 1..=12.
    months: u16,
    /// Bits 0..=6, Sunday first.
    weekdays: u8,
    days_restricted: bool,
    weekdays_restricted: bool,
}

impl fmt::Debug for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cron({:?})", self.text)
    }
}

impl fmt::Display for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// The bits set by one field, or why it is wrong.
fn field(text: &str, what: &str, min: u32, max: u32, names: &[&str], offset: u32) -> Result<u64, String> {
    let value = |v: &str| -> Result<u32, String> {
        let lower = v.to_ascii_lowercase();
        if let Some(i) = names.iter().position(|n| *n == lower) {
            return Ok(u32::try_from(i).unwrap_or(0) + offset);
        }
        let n: u32 = v.parse().map_err(|_| format!("{what}: '{v}' is not a number from {min} to {max}"))?;
        if (min..=max).contains(&n) { Ok(n) } else { Err(format!("{what}: {n} is not from {min} to {max}")) }
    };
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s.parse().map_err(|_| format!("{what}: step '{s}' is not a number"))?;
                if step == 0 {
                    return Err(format!("{what}: a step of 0 never moves"));
                }
                (r, step)
            }
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (value(a)?, value(b)?);
            if a > b {
                return Err(format!("{what}: the range {a}-{b} runs backwards"));
            }
            (a, b)
        } else {
            let v = value(range)?;
            // `5/10` means from 5 to the end, every 10.
            (v, if step > 1 { max } else { v })
        };
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

impl Cron {
    pub fn parse(text: &str) -> Result<Self, String> {
        let expanded = match text.trim() {
            "@hourly" => "0 * * * *",
            "@daily" | "@midnight" => "0 0 * * *",
            "@weekly" => "0 0 * * 0",
            "@monthly" => "0 0 1 * *",
            "@yearly" | "@annually" => "0 0 1 1 *",
            other => other,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let [minute, hour, day, month, weekday] = fields.as_slice() else {
            return Err(format!(
                "'{text}' has {} fields; a schedule has 5: minute hour day-of-month month day-of-week (UTC)",
                fields.len()
            ));
        };
        let weekdays = field(weekday, "day of week", 0, 7, &WEEKDAYS, 0)?;
        // 7 is Sunday too.
        let weekdays = (weekdays | (weekdays >> 7)) & 0x7f;
        Ok(Self {
            text: text.trim().to_string(),
            minutes: field(minute, "minute", 0, 59, &[], 0)?,
            hours: u32::try_from(field(hour, "hour", 0, 23, &[], 0)?).unwrap_or(0),
            days: u32::try_from(field(day, "day of month", 1, 31, &[], 0)?).unwrap_or(0),
            months: u16::try_from(field(month, "month", 1, 12, &MONTHS, 1)?).unwrap_or(0),
            weekdays: u8::try_from(weekdays).unwrap_or(0),
            days_restricted: *day != "*",
            weekdays_restricted: *weekday != "*",
        })
    }

    fn day_matches(&self, day: i64) -> bool {
        let (_, month, dom) = civil_from_days(day);
        if self.months & (1 << month) == 0 {
            return false;
        }
        // 1970-01-01 was a Thursday.
        let weekday = (day + 4).rem_euclid(7);
        let by_date = self.days & (1 << dom) != 0;
        let by_weekday = self.weekdays & (1 << weekday) != 0;
        match (self.days_restricted, self.weekdays_restricted) {
            (true, true) => by_date || by_weekday,
            (true, false) => by_date,
            (false, true) => by_weekday,
            (false, false) => true,
        }
    }

    fn minute_matches(&self, minute: i64) -> bool {
        let in_day = minute.rem_euclid(MINUTES_PER_DAY);
        self.hours & (1 << (in_day / 60)) != 0 && self.minutes & (1 << (in_day % 60)) != 0
    }

    /// The first time the schedule fires strictly after `t`; `None` if it
    /// never does (within five years: `0 0 30 2 *`).
    #[must_use]
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        let mut minute = t.as_nanos().div_euclid(NANOS_PER_MINUTE) + 1;
        let limit = minute + SEARCH_DAYS * MINUTES_PER_DAY;
        while minute < limit {
            let day = minute.div_euclid(MINUTES_PER_DAY);
            if !self.day_matches(day) {
                minute = (day + 1) * MINUTES_PER_DAY;
                continue;
            }
            let hour = minute.rem_euclid(MINUTES_PER_DAY) / 60;
            if self.hours & (1 << hour) == 0 {
                minute = day * MINUTES_PER_DAY + (hour + 1) * 60;
                continue;
            }
            if self.minute_matches(minute) {
                return Some(Timestamp::from_nanos(minute * NANOS_PER_MINUTE));
            }
            minute += 1;
        }
        None
    }

    /// The latest time the schedule fired at or before `t`.
    #[must_use]
    pub fn latest_at_or_before(&self, t: Timestamp) -> Option<Timestamp> {
        let mut minute = t.as_nanos().div_euclid(NANOS_PER_MINUTE);
        let limit = minute - SEARCH_DAYS * MINUTES_PER_DAY;
        while minute > limit {
            let day = minute.div_euclid(MINUTES_PER_DAY);
            if !self.day_matches(day) {
                minute = day * MINUTES_PER_DAY - 1;
                continue;
            }
            let hour = minute.rem_euclid(MINUTES_PER_DAY) / 60;
            if self.hours & (1 << hour) == 0 {
                minute = day * MINUTES_PER_DAY + hour * 60 - 1;
                continue;
            }
            if self.minute_matches(minute) {
                return Some(Timestamp::from_nanos(minute * NANOS_PER_MINUTE));
            }
            minute -= 1;
        }
        None
    }

    /// Seconds between two consecutive runs after `t` (for "is a backup late").
    #[must_use]
    pub fn period_after(&self, t: Timestamp) -> Option<i64> {
        let first = self.next_after(t)?;
        let second = self.next_after(first)?;
        Some((second.as_nanos() - first.as_nanos()) / 1_000_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::time::days_from_civil;
    use proptest::prelude::*;

    fn at(y: i64, mo: u32, d: u32, h: i64, mi: i64) -> Timestamp {
        Timestamp::from_nanos((days_from_civil(y, mo, d) * MINUTES_PER_DAY + h * 60 + mi) * NANOS_PER_MINUTE)
    }

    #[test]
    fn named_cases() {
        let cases = [
            ("every five minutes", "*/5 * * * *", at(2026, 12, 1, 10, 7), at(2026, 12, 1, 10, 10)),
            ("daily at 02:00", "0 2 * * *", at(2026, 12, 1, 2, 0), at(2026, 12, 2, 2, 0)),
            ("weekly on Sunday", "@weekly", at(2026, 12, 1, 12, 0), at(2026, 12, 6, 0, 0)),
            ("Sunday as 7", "30 4 * * 7", at(2026, 12, 1, 0, 0), at(2026, 12, 6, 4, 30)),
            ("by name", "0 9 * jan mon-fri", at(2026, 12, 1, 0, 0), at(2027, 1, 1, 9, 0)),
            ("date or weekday", "0 0 15 * mon", at(2026, 12, 8, 0, 0), at(2026, 12, 14, 0, 0)),
            ("list and range", "0,30 8-9 * * *", at(2026, 12, 1, 9, 30), at(2026, 12, 2, 8, 0)),
            ("leap day", "0 0 29 2 *", at(2026, 3, 1, 0, 0), at(2028, 2, 29, 0, 0)),
            ("step from a start", "10/20 * * * *", at(2026, 12, 1, 10, 50), at(2026, 12, 1, 11, 10)),
        ];
        for (name, text, from, expected) in cases {
            let cron = Cron::parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(cron.next_after(from), Some(expected), "{name}");
            assert_eq!(cron.latest_at_or_before(expected), Some(expected), "{name}: a slot is its own latest");
        }
        assert_eq!(Cron::parse("0 0 30 2 *").unwrap().next_after(at(2026, 1, 1, 0, 0)), None, "30 February");
        assert_eq!(Cron::parse("@daily").unwrap().period_after(at(2026, 1, 1, 0, 0)), Some(86_400));
    }

    #[test]
    fn mistakes_are_explained() {
        let cases = [
            ("* * * *", "has 4 fields"),
            ("61 * * * *", "minute: 61 is not from 0 to 59"),
            ("* 24 * * *", "hour: 24"),
            ("*/0 * * * *", "a step of 0"),
            ("* * * foo *", "month: 'foo'"),
            ("* * 5-2 * *", "runs backwards"),
        ];
        for (text, fragment) in cases {
            let err = Cron::parse(text).unwrap_err();
            assert!(err.contains(fragment), "{text}: {err}");
        }
    }

    proptest! {
        /// The next run matches and nothing between matches; the latest at
        /// or before it is itself; checked minute by minute.
        #[test]
        fn next_and_latest_agree_with_a_minute_by_minute_search(
            minute in prop::sample::select(vec!["*", "0", "*/7", "5-20/5", "59", "0,15,30,45"]),
            hour in prop::sample::select(vec!["*", "0", "*/3", "9-17", "23"]),
            dom in prop::sample::select(vec!["*", "1", "15", "28-31"]),
            dow in prop::sample::select(vec!["*", "0", "1-5", "6"]),
            start in 0i64..(3 * 365 * MINUTES_PER_DAY),
        ) {
            let cron = Cron::parse(&format!("{minute} {hour} {dom} * {dow}")).unwrap();
            let from = Timestamp::from_nanos((days_from_civil(2025, 1, 1) * MINUTES_PER_DAY + start) * NANOS_PER_MINUTE + 17);
            let next = cron.next_after(from).unwrap();
            prop_assert!(next > from);
            let mut m = from.as_nanos().div_euclid(NANOS_PER_MINUTE) + 1;
            let target = next.as_nanos() / NANOS_PER_MINUTE;
            prop_assert!(target - m < 40 * MINUTES_PER_DAY, "schedules here run at least monthly");
            while m < target {
                prop_assert!(!(cron.day_matches(m.div_euclid(MINUTES_PER_DAY)) && cron.minute_matches(m)), "missed {m}");
                m += 1;
            }
            prop_assert!(cron.day_matches(target.div_euclid(MINUTES_PER_DAY)) && cron.minute_matches(target));
            prop_assert_eq!(cron.latest_at_or_before(next), Some(next));
            let before = cron.latest_at_or_before(Timestamp::from_nanos(next.as_nanos() - 1)).unwrap();
            prop_assert!(before < next && cron.next_after(before) == Some(next));
        }
    }
}
