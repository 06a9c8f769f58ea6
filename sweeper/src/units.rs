//! Sizes, dates, intervals and counts as people write and read them.
//!
//! Sizes are written by hand rather than with a byte-size crate: the options
//! must reject what they cannot represent (a crate that saturates
//! `99999999999TB` to 16 EiB would silently widen a filter), and the listing
//! must print the old tool's `KB`/`MB`/`GB` labels without ever showing
//! `1000.0 KB`.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use thiserror::Error;

/// Decimal and binary multipliers, by lowercase unit name.
const UNITS: &[(&str, u64)] = &[
    ("", 1),
    ("b", 1),
    ("byte", 1),
    ("bytes", 1),
    ("k", 1_000),
    ("kb", 1_000),
    ("m", 1_000_000),
    ("mb", 1_000_000),
    ("g", 1_000_000_000),
    ("gb", 1_000_000_000),
    ("t", 1_000_000_000_000),
    ("tb", 1_000_000_000_000),
    ("p", 1_000_000_000_000_000),
    ("pb", 1_000_000_000_000_000),
    ("e", 1_000_000_000_000_000_000),
    ("eb", 1_000_000_000_000_000_000),
    ("ki", 1 << 10),
    ("kib", 1 << 10),
    ("mi", 1 << 20),
    ("mib", 1 << 20),
    ("gi", 1 << 30),
    ("gib", 1 << 30),
    ("ti", 1 << 40),
    ("tib", 1 << 40),
    ("pi", 1 << 50),
    ("pib", 1 << 50),
    ("ei", 1 << 60),
    ("eib", 1 << 60),
];

/// The labels `format_size` steps through, each 1000 times the one before.
const DISPLAY_UNITS: &[&str] = &["B", "KB", "MB", "GB", "TB", "PB", "EB"];

/// More decimal places than this cannot matter for a size and could overflow.
const MAX_DECIMAL_PLACES: usize = 9;

/// Why a size option could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SizeError {
    /// Nothing was given.
    #[error("empty size (examples: 500KB, 2MB, 1.5GiB)")]
    Empty,
    /// The text does not begin with a number.
    #[error("\"{input}\" does not start with a number (examples: 500KB, 2MB, 1.5GiB)")]
    NoNumber {
        /// The text as given.
        input: String,
    },
    /// The unit after the number is not one we know.
    #[error("unknown unit \"{unit}\" in \"{input}\" (use B, KB, MB, GB, TB, PB, or KiB, MiB, GiB, TiB, PiB)")]
    UnknownUnit {
        /// The text as given.
        input: String,
        /// The unit part of it.
        unit: String,
    },
    /// The number has more decimal places than a size can use.
    #[error("\"{input}\" has more than {MAX_DECIMAL_PLACES} decimal places")]
    TooPrecise {
        /// The text as given.
        input: String,
    },
    /// The size does not fit in 64 bits.
    #[error("\"{input}\" is larger than the largest size, 16 EiB")]
    TooLarge {
        /// The text as given.
        input: String,
    },
}

/// Reads a size such as `1234`, `500k`, `2MB` or `1.5GiB` as a number of bytes.
///
/// Units are case-insensitive. `K`, `KB`, `M`, `MB`, ... are powers of 1000;
/// `KiB`, `MiB`, ... are powers of 1024. A number without a unit is bytes. A
/// fraction is rounded to the nearest byte.
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let input = text.trim();
    if input.is_empty() {
        return Err(SizeError::Empty);
    }
    let number_end = input
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(input.len());
    let (number, unit) = input.split_at(number_end);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let owned = || input.to_owned();
    if whole.is_empty() || fraction.contains('.') {
        return Err(SizeError::NoNumber { input: owned() });
    }
    if fraction.len() > MAX_DECIMAL_PLACES {
        return Err(SizeError::TooPrecise { input: owned() });
    }
    let unit = unit.trim_start();
    let multiplier = UNITS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(unit))
        .map(|&(_, multiplier)| u128::from(multiplier))
        .ok_or_else(|| SizeError::UnknownUnit {
            input: owned(),
            unit: unit.to_owned(),
        })?;
    let too_large = || SizeError::TooLarge { input: owned() };
    let whole: u128 = whole.parse().map_err(|_| too_large())?;
    let fraction_scale = 10u128.pow(fraction.len() as u32);
    let fraction: u128 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().map_err(|_| too_large())?
    };
    let fraction_bytes = (fraction * multiplier + fraction_scale / 2) / fraction_scale;
    whole
        .checked_mul(multiplier)
        .and_then(|bytes| bytes.checked_add(fraction_bytes))
        .and_then(|bytes| u64::try_from(bytes).ok())
        .ok_or_else(too_large)
}

/// Shows a size the way the old tool did: `512 B`, `2.1 MB`, `45.2 MB`, `2.3 GB`.
///
/// Units are powers of 1000, as `parse_size` reads `KB`/`MB`/`GB`, with one
/// decimal; a value that would round to 1000 moves up to the next unit.
pub fn format_size(bytes: u64) -> String {
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut unit_bytes: u128 = 1;
    for (index, label) in DISPLAY_UNITS.iter().enumerate().skip(1) {
        unit_bytes *= 1000;
        let tenths = (u128::from(bytes) * 10 + unit_bytes / 2) / unit_bytes;
        if tenths < 10_000 || index == DISPLAY_UNITS.len() - 1 {
            return format!("{}.{} {label}", tenths / 10, tenths % 10);
        }
    }
    unreachable!("the last display unit always returns")
}

/// Shows a count with thousands separators, as the old tool's header did: `1,247`.
pub fn format_count(count: u64) -> String {
    let digits = count.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

/// A date or instant given to `--since` or `--until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateSpec {
    /// A whole day, `2024-01-31`, in UTC.
    Day(NaiveDate),
    /// An exact instant, `2024-01-31T12:00:00Z`.
    Instant(DateTime<Utc>),
}

impl DateSpec {
    /// The first instant the spec covers: the day's midnight, or the instant itself.
    pub fn start(self) -> DateTime<Utc> {
        match self {
            DateSpec::Day(day) => day.and_time(NaiveTime::MIN).and_utc(),
            DateSpec::Instant(instant) => instant,
        }
    }

    /// The first instant after the spec: the next midnight, or the instant itself.
    ///
    /// `--until 2024-01-31` thus keeps everything from that whole day.
    pub fn end(self) -> DateTime<Utc> {
        match self {
            DateSpec::Day(day) => day.succ_opt().map_or(DateTime::<Utc>::MAX_UTC, |next| {
                next.and_time(NaiveTime::MIN).and_utc()
            }),
            DateSpec::Instant(instant) => instant,
        }
    }
}

/// Why a date option could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("\"{input}\" is not a date: expected YYYY-MM-DD or an RFC 3339 time such as 2024-01-31T12:00:00Z")]
pub struct DateError {
    /// The text as given.
    pub input: String,
}

/// Reads `2024-01-31` (a day in UTC) or an RFC 3339 time (`2024-01-31T12:00:00+01:00`).
pub fn parse_date(text: &str) -> Result<DateSpec, DateError> {
    let input = text.trim();
    if let Ok(day) = NaiveDate::parse_from_str(input, "%Y-%m-%d") {
        return Ok(DateSpec::Day(day));
    }
    DateTime::parse_from_rfc3339(input)
        .map(|instant| DateSpec::Instant(instant.with_timezone(&Utc)))
        .map_err(|_| DateError {
            input: input.to_owned(),
        })
}

/// Why an interval option could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DurationError {
    /// The text is not a duration humantime understands.
    #[error("\"{input}\" is not an interval: {reason} (examples: 30s, 1m, 1h, 1d)")]
    Unreadable {
        /// The text as given.
        input: String,
        /// What the duration parser objected to.
        reason: String,
    },
    /// A zero interval would make the sweeper spin.
    #[error("\"{input}\" is zero; an interval must be longer than that (examples: 30s, 1m, 1h)")]
    Zero {
        /// The text as given.
        input: String,
    },
}

/// Reads an interval such as `30s`, `1m` (a minute), `1h`, `1d` or `1h30m`.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let input = text.trim();
    match humantime::parse_duration(input) {
        Ok(duration) if duration.is_zero() => Err(DurationError::Zero {
            input: input.to_owned(),
        }),
        Ok(duration) => Ok(duration),
        Err(error) => Err(DurationError::Unreadable {
            input: input.to_owned(),
            reason: error.to_string(),
        }),
    }
}

/// Shows an interval the way `parse_duration` reads it: `1h 30m`.
pub fn format_duration(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sizes_read_with_decimal_and_binary_units() {
        assert_eq!(parse_size("1234"), Ok(1234));
        assert_eq!(parse_size("500k"), Ok(500_000));
        assert_eq!(parse_size("2MB"), Ok(2_000_000));
        assert_eq!(parse_size("2 mb"), Ok(2_000_000));
        assert_eq!(parse_size("1.5GiB"), Ok(1_610_612_736));
        assert_eq!(parse_size("1.5gib"), Ok(1_610_612_736));
        assert_eq!(parse_size("3KiB"), Ok(3072));
        assert_eq!(parse_size("0.5KB"), Ok(500));
        assert_eq!(parse_size("7b"), Ok(7));
        assert_eq!(parse_size(" 10 bytes "), Ok(10));
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
    }

    #[test]
    fn a_fraction_of_a_byte_rounds_to_the_nearest() {
        assert_eq!(parse_size("1.0001KB"), Ok(1000));
        assert_eq!(parse_size("1.0005KB"), Ok(1001));
    }

    #[test]
    fn bad_sizes_say_what_is_wrong() {
        assert_eq!(parse_size(""), Err(SizeError::Empty));
        assert!(matches!(parse_size("MB"), Err(SizeError::NoNumber { .. })));
        assert!(matches!(parse_size("-1"), Err(SizeError::NoNumber { .. })));
        assert!(matches!(
            parse_size("1.2.3MB"),
            Err(SizeError::NoNumber { .. })
        ));
        assert!(matches!(
            parse_size("1.0000000001GB"),
            Err(SizeError::TooPrecise { .. })
        ));
        assert!(matches!(
            parse_size("18446744073709551616"),
            Err(SizeError::TooLarge { .. })
        ));
        assert!(matches!(
            parse_size("99999999999TB"),
            Err(SizeError::TooLarge { .. })
        ));
        let error = parse_size("2XB").unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown unit \"XB\" in \"2XB\" (use B, KB, MB, GB, TB, PB, or KiB, MiB, GiB, TiB, PiB)"
        );
    }

    #[test]
    fn sizes_show_as_the_old_tool_showed_them() {
        assert_eq!(format_size(0), "0 B");
        assert_eq!(format_size(512), "512 B");
        assert_eq!(format_size(999), "999 B");
        assert_eq!(format_size(1000), "1.0 KB");
        assert_eq!(format_size(2_100_000), "2.1 MB");
        assert_eq!(format_size(45_200_000), "45.2 MB");
        assert_eq!(format_size(2_300_000_000), "2.3 GB");
        assert_eq!(format_size(u64::MAX), "18.4 EB");
    }

    #[test]
    fn a_size_never_shows_as_a_thousand_of_a_unit() {
        assert_eq!(format_size(999_949), "999.9 KB");
        assert_eq!(format_size(999_950), "1.0 MB");
        assert_eq!(format_size(999_999_999), "1.0 GB");
    }

    #[test]
    fn counts_get_thousands_separators() {
        assert_eq!(format_count(0), "0");
        assert_eq!(format_count(999), "999");
        assert_eq!(format_count(1247), "1,247");
        assert_eq!(format_count(1_000_000), "1,000,000");
    }

    #[test]
    fn a_day_covers_from_its_midnight_to_the_next() {
        let spec = parse_date("2024-01-31").unwrap();
        assert_eq!(spec.start().to_rfc3339(), "2024-01-31T00:00:00+00:00");
        assert_eq!(spec.end().to_rfc3339(), "2024-02-01T00:00:00+00:00");
    }

    #[test]
    fn an_instant_keeps_its_offset_in_utc() {
        let spec = parse_date("2024-01-31T12:00:00+02:00").unwrap();
        assert_eq!(spec.start().to_rfc3339(), "2024-01-31T10:00:00+00:00");
        assert_eq!(spec.end(), spec.start());
    }

    #[test]
    fn bad_dates_name_the_accepted_forms() {
        for input in ["2024-13-01", "31/01/2024", "yesterday", ""] {
            let error = parse_date(input).unwrap_err();
            assert!(error.to_string().contains("YYYY-MM-DD"), "{error}");
        }
    }

    #[test]
    fn intervals_read_as_humantime_writes_them() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
    }

    #[test]
    fn zero_and_unreadable_intervals_are_refused() {
        assert!(matches!(
            parse_duration("0s"),
            Err(DurationError::Zero { .. })
        ));
        let error = parse_duration("soon").unwrap_err();
        assert!(error.to_string().contains("examples: 30s"), "{error}");
    }

    fn unit() -> impl Strategy<Value = (&'static str, u64)> {
        prop::sample::select(UNITS.to_vec())
    }

    fn random_case(text: &str, flips: &[bool]) -> String {
        text.chars()
            .zip(flips.iter().cycle())
            .map(|(c, &upper)| if upper { c.to_ascii_uppercase() } else { c })
            .collect()
    }

    proptest! {
        #[test]
        fn a_whole_number_with_a_unit_is_that_many_units(
            count in 0u64..1_000_000,
            (name, multiplier) in unit(),
            flips in prop::collection::vec(any::<bool>(), 1..6),
            space in any::<bool>(),
        ) {
            let text = format!("{count}{}{}", if space { " " } else { "" }, random_case(name, &flips));
            match count.checked_mul(multiplier) {
                Some(bytes) => prop_assert_eq!(parse_size(&text), Ok(bytes)),
                None => {
                    let too_large = matches!(parse_size(&text), Err(SizeError::TooLarge { .. }));
                    prop_assert!(too_large, "{} should be too large", text);
                }
            }
        }

        #[test]
        fn a_shown_size_reads_back_within_its_rounding(bytes in any::<u64>()) {
            let shown = format_size(bytes);
            let read = parse_size(&shown).unwrap();
            let unit = DISPLAY_UNITS
                .iter()
                .position(|label| shown.ends_with(&format!(" {label}")))
                .unwrap();
            let half_a_tenth = 1000u128.pow(unit as u32) / 20;
            prop_assert!(u128::from(read.abs_diff(bytes)) <= half_a_tenth, "{} -> {} -> {}", bytes, shown, read);
        }

        #[test]
        fn a_shown_count_reads_back(count in any::<u64>()) {
            prop_assert_eq!(format_count(count).replace(',', "").parse::<u64>(), Ok(count));
        }

        #[test]
        fn a_shown_interval_reads_back(seconds in 1u64..10_000_000_000) {
            let duration = Duration::from_secs(seconds);
            prop_assert_eq!(parse_duration(&format_duration(duration)), Ok(duration));
        }

        #[test]
        fn a_written_day_reads_back(days in 1i32..=3_652_059) {
            let day = NaiveDate::from_num_days_from_ce_opt(days).unwrap();
            prop_assert_eq!(parse_date(&day.to_string()), Ok(DateSpec::Day(day)));
        }

        #[test]
        fn a_written_instant_reads_back(seconds in 0i64..253_402_300_799) {
            let instant = DateTime::from_timestamp(seconds, 0).unwrap();
            prop_assert_eq!(parse_date(&instant.to_rfc3339()), Ok(DateSpec::Instant(instant)));
        }
    }
}
