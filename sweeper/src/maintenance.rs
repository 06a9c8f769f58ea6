//! The maintenance policies of `filegc run`, as decisions on plain values.
//!
//! The database's settings say what to do and when; [`Policies::from_settings`]
//! reads them. The rest answers the run's questions without any I/O: may a
//! scheduled cleanup start at this time of day ([`Window`]), is it due
//! ([`cleanup_due`]), did the alert level change ([`level_change`]). The run
//! ([`crate::run`]) asks the database and the volume, and acts.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, NaiveTime, Timelike, Utc};
use reqwest::Url;
use thiserror::Error;

use crate::db::{Cleanup, SettingValue};
use crate::webhook::{PayloadShape, Webhook};

/// The settings the policies are read from.
pub const SETTINGS: [&str; 7] = [
    "orphan_cleanup_interval",
    "retention_days",
    "retention_include_referenced",
    "maintenance_window",
    "alert_webhook_url",
    "alert_webhook_format",
    "emergency_cleanup",
];

/// What `filegc run` does besides sweeping and scanning, as the settings say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policies {
    /// How often the scheduled cleanups run; `None` when `orphan_cleanup_interval` is 0.
    pub cleanup_interval: Option<Duration>,
    /// The age limit of the retention cleanup; `None` when `retention_days` is off.
    pub retention: Option<Retention>,
    /// When the scheduled cleanups may start.
    pub window: Window,
    /// Where changes of the alert level are posted, and in which shape; `None` when off.
    pub webhook: Option<Webhook>,
    /// Whether reaching the emergency level empties the trash and deletes the eligible orphans.
    pub emergency_cleanup: bool,
}

/// The retention cleanup's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Managed images older than this many days go.
    pub days: u32,
    /// Whether images that rows still reference go too.
    pub include_referenced: bool,
}

/// A cleanup the run schedules on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// `filegc.cleanup_orphans`, without force.
    Orphans,
    /// `filegc.cleanup_older_than`, without force.
    Retention(Retention),
}

impl Job {
    /// The kind its runs are recorded under in `filegc.runs`.
    pub fn kind(self) -> &'static str {
        match self {
            Job::Orphans => "orphan_cleanup",
            Job::Retention(_) => "retention_cleanup",
        }
    }

    /// The database's cleanup that carries it out.
    pub fn cleanup(self) -> Cleanup {
        match self {
            Job::Orphans => Cleanup::Orphans,
            Job::Retention(retention) => Cleanup::OlderThan {
                days: retention.days,
                include_referenced: retention.include_referenced,
            },
        }
    }
}

impl Policies {
    /// Reads the policies from the values of [`SETTINGS`].
    pub fn from_settings(values: &[SettingValue]) -> Result<Policies, PolicyError> {
        let value = |name: &'static str| {
            values
                .iter()
                .find(|setting| setting.name == name)
                .ok_or(PolicyError::Missing { name })
        };
        let invalid = |setting: &SettingValue, problem: &str| PolicyError::Invalid {
            name: setting.name.clone(),
            value: setting.value.clone(),
            problem: problem.to_owned(),
        };
        let interval = value("orphan_cleanup_interval")?;
        let seconds = interval
            .seconds
            .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
            .ok_or_else(|| invalid(interval, "not an interval of 0 or more"))?;
        let cleanup_interval =
            (seconds > 0.0).then(|| Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX));
        let days = value("retention_days")?;
        let include = value("retention_include_referenced")?;
        let include_referenced = parse_bool(&include.value)
            .ok_or_else(|| invalid(include, "takes true, false, on or off"))?;
        let retention = parse_days_or_off(&days.value)
            .ok_or_else(|| invalid(days, "takes a whole number of days of at least 1, or off"))?
            .map(|days| Retention {
                days,
                include_referenced,
            });
        let window = value("maintenance_window")?;
        let url = value("alert_webhook_url")?;
        let format = value("alert_webhook_format")?;
        let webhook =
            match parse_webhook_url(&url.value).map_err(|problem| invalid(url, &problem))? {
                Some(url) => Some(Webhook {
                    shape: PayloadShape::parse(&format.value, &url)
                        .map_err(|problem| invalid(format, &problem))?,
                    url,
                }),
                None => None,
            };
        let emergency = value("emergency_cleanup")?;
        Ok(Policies {
            cleanup_interval,
            retention,
            window: Window::parse(&window.value).map_err(|problem| invalid(window, &problem))?,
            webhook,
            emergency_cleanup: parse_bool(&emergency.value)
                .ok_or_else(|| invalid(emergency, "takes true, false, on or off"))?,
        })
    }

    /// The scheduled cleanups, in the order they run: orphans first, then retention when set.
    pub fn jobs(&self) -> impl Iterator<Item = Job> {
        std::iter::once(Job::Orphans).chain(self.retention.map(Job::Retention))
    }
}

/// Why the settings could not be read into policies.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum PolicyError {
    /// The database does not have the setting.
    #[error(
        "the database has no setting {name} (update filegc there: ALTER EXTENSION filegc UPDATE)"
    )]
    Missing {
        /// The setting.
        name: &'static str,
    },
    /// The setting's value cannot be used.
    #[error("setting {name} is {value:?}, which this sweeper cannot use: it {problem}")]
    Invalid {
        /// The setting.
        name: String,
        /// Its value.
        value: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// When (in UTC) the scheduled cleanups may start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// At any time.
    Any,
    /// From `start` (included) to `end` (excluded), in minutes after midnight; past midnight when `end < start`.
    Between {
        /// The first minute of the window.
        start: u16,
        /// The first minute after it.
        end: u16,
    },
}

impl Window {
    /// Reads `any` or `HH:MM-HH:MM` (24-hour, UTC), as `filegc.validate_setting` accepts them.
    pub fn parse(text: &str) -> Result<Window, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("any") {
            return Ok(Window::Any);
        }
        let form = "takes any or a time range HH:MM-HH:MM in UTC, such as 02:00-05:00";
        let (start, end) = text.split_once('-').ok_or_else(|| form.to_owned())?;
        let start = parse_clock(start.trim()).ok_or_else(|| form.to_owned())?;
        let end = parse_clock(end.trim()).ok_or_else(|| form.to_owned())?;
        if start == end {
            return Err("starts when it ends, so it is empty (any allows every time)".into());
        }
        Ok(Window::Between { start, end })
    }

    /// Whether `time` (UTC) lies inside the window.
    pub fn contains(self, time: NaiveTime) -> bool {
        let Window::Between { start, end } = self else {
            return true;
        };
        // Hour and minute are below 24 and 60, so this fits.
        let minute = (time.hour() * 60 + time.minute()) as u16;
        if start < end {
            start <= minute && minute < end
        } else {
            minute >= start || minute < end
        }
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Window::Any => f.write_str("any"),
            Window::Between { start, end } => write!(
                f,
                "{:02}:{:02}-{:02}:{:02}",
                start / 60,
                start % 60,
                end / 60,
                end % 60
            ),
        }
    }
}

/// `HH:MM` with two digits each, as minutes after midnight.
fn parse_clock(text: &str) -> Option<u16> {
    let (hours, minutes) = text.split_once(':')?;
    let two_digits = |part: &str| {
        (part.len() == 2 && part.bytes().all(|b| b.is_ascii_digit()))
            .then(|| part.parse::<u16>().ok())
            .flatten()
    };
    let (hours, minutes) = (two_digits(hours)?, two_digits(minutes)?);
    (hours < 24 && minutes < 60).then_some(hours * 60 + minutes)
}

/// Whether a scheduled cleanup last recorded at `last` is due again at `now`.
pub fn cleanup_due(last: Option<DateTime<Utc>>, now: DateTime<Utc>, every: Duration) -> bool {
    let Some(last) = last else {
        return true;
    };
    match chrono::Duration::from_std(every) {
        Ok(every) => now.signed_duration_since(last) >= every,
        // Longer than chrono can count: never again.
        Err(_) => false,
    }
}

/// A boolean setting: true, false, on or off, in any case.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "on" => Some(true),
        "false" | "off" => Some(false),
        _ => None,
    }
}

/// `off`, or a whole number of days of at least 1; `None` when it is neither.
pub fn parse_days_or_off(text: &str) -> Option<Option<u32>> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("off") {
        return Some(None);
    }
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // cleanup_older_than takes an integer.
    let days = text
        .parse::<u32>()
        .ok()
        .filter(|days| *days >= 1 && i32::try_from(*days).is_ok())?;
    Some(Some(days))
}

/// `off`, or an http:// or https:// URL with a host.
pub fn parse_webhook_url(text: &str) -> Result<Option<Url>, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let url = Url::parse(text).map_err(|error| format!("is not a URL ({error})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err("takes an http:// or https:// URL, or off".into());
    }
    Ok(Some(url))
}

/// The alert levels `filegc.storage_stats` reports, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AlertLevel {
    /// Below every threshold, and `unknown` before the first capacity report.
    Ok,
    /// At or above `alert_warning_pct`.
    Warning,
    /// At or above `alert_critical_pct`.
    Critical,
    /// At or above `alert_emergency_pct`.
    Emergency,
}

impl AlertLevel {
    /// The level a report names; anything unknown counts as ok.
    pub fn of(level: &str) -> AlertLevel {
        match level {
            "warning" => AlertLevel::Warning,
            "critical" => AlertLevel::Critical,
            "emergency" => AlertLevel::Emergency,
            _ => AlertLevel::Ok,
        }
    }
}

/// Which way the alert level moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LevelChange {
    /// It rose: the volume filled past a threshold.
    Rose,
    /// It fell: space was freed.
    Fell,
}

/// How the alert level moved from `previous` to `current`; `None` when it stayed.
pub fn level_change(previous: &str, current: &str) -> Option<LevelChange> {
    let (previous, current) = (AlertLevel::of(previous), AlertLevel::of(current));
    match current.cmp(&previous) {
        std::cmp::Ordering::Greater => Some(LevelChange::Rose),
        std::cmp::Ordering::Less => Some(LevelChange::Fell),
        std::cmp::Ordering::Equal => None,
    }
}

/// Whether the move from `previous` to `current` reached the emergency level.
pub fn entered_emergency(previous: &str, current: &str) -> bool {
    AlertLevel::of(current) == AlertLevel::Emergency
        && AlertLevel::of(previous) < AlertLevel::Emergency
}

/// The share of the volume in use, in percent with one decimal as `storage_stats` shows it.
pub fn used_pct(used_bytes: u64, total_bytes: u64) -> Option<f64> {
    if total_bytes == 0 {
        return None;
    }
    let pct = 100.0 * used_bytes as f64 / total_bytes as f64;
    Some((pct * 10.0).round() / 10.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Minutes in a day.
    const DAY_MINUTES: u16 = 24 * 60;

    /// Whether `minute` lies in the window from `start` to `end`, counted as the distance from `start` around the clock.
    fn around_the_clock(start: u16, end: u16, minute: u16) -> bool {
        let from_start = (minute + DAY_MINUTES - start) % DAY_MINUTES;
        let length = (end + DAY_MINUTES - start) % DAY_MINUTES;
        from_start < length
    }

    fn at(hour: u32, minute: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(hour, minute, 0).unwrap()
    }

    fn utc(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339).unwrap().to_utc()
    }

    fn setting(name: &str, value: &str, seconds: Option<f64>) -> SettingValue {
        SettingValue {
            name: name.into(),
            value: value.into(),
            seconds,
        }
    }

    fn defaults() -> Vec<SettingValue> {
        vec![
            setting("orphan_cleanup_interval", "1 day", Some(86_400.0)),
            setting("retention_days", "off", None),
            setting("retention_include_referenced", "false", None),
            setting("maintenance_window", "any", None),
            setting("alert_webhook_url", "off", None),
            setting("alert_webhook_format", "auto", None),
            setting("emergency_cleanup", "true", None),
        ]
    }

    fn with(name: &str, value: &str, seconds: Option<f64>) -> Vec<SettingValue> {
        let mut values = defaults();
        values.retain(|setting| setting.name != name);
        values.push(setting(name, value, seconds));
        values
    }

    #[test]
    fn the_defaults_clean_orphans_daily_at_any_time_and_nothing_else() {
        let policies = Policies::from_settings(&defaults()).unwrap();
        assert_eq!(
            policies,
            Policies {
                cleanup_interval: Some(Duration::from_secs(86_400)),
                retention: None,
                window: Window::Any,
                webhook: None,
                emergency_cleanup: true,
            }
        );
        assert_eq!(policies.jobs().collect::<Vec<_>>(), [Job::Orphans]);
    }

    #[test]
    fn retention_runs_after_the_orphans_with_its_own_record() {
        let mut values = with("retention_days", "90", None);
        values.retain(|setting| setting.name != "retention_include_referenced");
        values.push(setting("retention_include_referenced", "On", None));
        let policies = Policies::from_settings(&values).unwrap();
        let retention = Retention {
            days: 90,
            include_referenced: true,
        };
        assert_eq!(
            policies.jobs().collect::<Vec<_>>(),
            [Job::Orphans, Job::Retention(retention)]
        );
        assert_eq!(Job::Orphans.kind(), "orphan_cleanup");
        assert_eq!(Job::Retention(retention).kind(), "retention_cleanup");
        assert!(matches!(
            Job::Retention(retention).cleanup(),
            Cleanup::OlderThan {
                days: 90,
                include_referenced: true
            }
        ));
    }

    #[test]
    fn an_interval_of_zero_turns_the_scheduled_cleanups_off() {
        let policies =
            Policies::from_settings(&with("orphan_cleanup_interval", "0", Some(0.0))).unwrap();
        assert_eq!(policies.cleanup_interval, None);
        let small =
            Policies::from_settings(&with("orphan_cleanup_interval", "1 second", Some(1.0)))
                .unwrap();
        assert_eq!(small.cleanup_interval, Some(Duration::from_secs(1)));
    }

    #[test]
    fn a_missing_or_unusable_setting_is_named() {
        let mut values = defaults();
        values.retain(|setting| setting.name != "maintenance_window");
        assert_eq!(
            Policies::from_settings(&values),
            Err(PolicyError::Missing {
                name: "maintenance_window"
            })
        );
        let error = Policies::from_settings(&with("emergency_cleanup", "maybe", None)).unwrap_err();
        assert!(error.to_string().contains("emergency_cleanup"), "{error}");
        let error = Policies::from_settings(&with("alert_webhook_url", "ftp://example.com/", None))
            .unwrap_err();
        assert!(error.to_string().contains("http://"), "{error}");
        let mut slack_as_xml = with(
            "alert_webhook_url",
            "https://hooks.slack.com/services/x",
            None,
        );
        slack_as_xml.retain(|setting| setting.name != "alert_webhook_format");
        slack_as_xml.push(setting("alert_webhook_format", "xml", None));
        let error = Policies::from_settings(&slack_as_xml).unwrap_err();
        assert!(
            error.to_string().contains("alert_webhook_format"),
            "{error}"
        );
    }

    #[test]
    fn a_slack_webhook_url_gets_slack_bodies() {
        let policies = Policies::from_settings(&with(
            "alert_webhook_url",
            "https://hooks.slack.com/services/x",
            None,
        ))
        .unwrap();
        assert_eq!(
            policies.webhook.map(|webhook| webhook.shape),
            Some(PayloadShape::Slack)
        );
    }

    #[test]
    fn booleans_read_true_false_on_and_off() {
        for (text, value) in [
            ("true", true),
            ("ON", true),
            (" on ", true),
            ("false", false),
            ("Off", false),
        ] {
            assert_eq!(parse_bool(text), Some(value), "{text}");
        }
        for text in ["", "yes", "1", "t", "truly"] {
            assert_eq!(parse_bool(text), None, "{text}");
        }
    }

    #[test]
    fn retention_days_are_off_or_a_positive_whole_number() {
        assert_eq!(parse_days_or_off("off"), Some(None));
        assert_eq!(parse_days_or_off("OFF"), Some(None));
        assert_eq!(parse_days_or_off("90"), Some(Some(90)));
        assert_eq!(parse_days_or_off(" 007 "), Some(Some(7)));
        for text in ["0", "-1", "+5", "1.5", "", "ninety", "99999999999"] {
            assert_eq!(parse_days_or_off(text), None, "{text}");
        }
    }

    #[test]
    fn webhook_urls_are_http_or_https_with_a_host() {
        assert_eq!(parse_webhook_url("off"), Ok(None));
        for text in [
            "http://127.0.0.1:9000/alerts",
            "https://hooks.example.com/services/T000/B000/XXX",
            "HTTPS://example.com",
        ] {
            assert!(matches!(parse_webhook_url(text), Ok(Some(_))), "{text}");
        }
        for text in [
            "",
            "example.com/hook",
            "ftp://example.com/",
            "file:///etc/passwd",
            "http://",
        ] {
            assert!(parse_webhook_url(text).is_err(), "{text}");
        }
    }

    #[test]
    fn windows_read_any_or_a_range_of_two_clock_times() {
        assert_eq!(Window::parse("any"), Ok(Window::Any));
        assert_eq!(Window::parse(" ANY "), Ok(Window::Any));
        assert_eq!(
            Window::parse("02:00-05:00"),
            Ok(Window::Between {
                start: 120,
                end: 300
            })
        );
        assert_eq!(
            Window::parse("22:00 - 04:30"),
            Ok(Window::Between {
                start: 1320,
                end: 270
            })
        );
        for text in [
            "",
            "02:00",
            "2:00-5:00",
            "24:00-01:00",
            "01:60-02:00",
            "02:00-05:00-06:00",
            "night",
            "02.00-05.00",
        ] {
            assert!(Window::parse(text).is_err(), "{text}");
        }
        let empty = Window::parse("03:00-03:00").unwrap_err();
        assert!(empty.contains("empty"), "{empty}");
    }

    #[test]
    fn a_window_includes_its_start_and_excludes_its_end() {
        let night = Window::parse("02:00-05:00").unwrap();
        assert!(!night.contains(at(1, 59)));
        assert!(night.contains(at(2, 0)));
        assert!(night.contains(at(4, 59)));
        assert!(!night.contains(at(5, 0)));
        assert!(!night.contains(at(14, 0)));
    }

    #[test]
    fn a_window_wraps_midnight() {
        let late = Window::parse("22:00-04:00").unwrap();
        for (hour, minute) in [(22, 0), (23, 59), (0, 0), (3, 59)] {
            assert!(late.contains(at(hour, minute)), "{hour}:{minute}");
        }
        for (hour, minute) in [(4, 0), (12, 0), (21, 59)] {
            assert!(!late.contains(at(hour, minute)), "{hour}:{minute}");
        }
        assert!(Window::Any.contains(at(13, 37)));
    }

    #[test]
    fn a_cleanup_is_due_first_and_then_once_the_interval_passed() {
        let day = Duration::from_secs(86_400);
        let now = utc("2026-11-26T03:00:00Z");
        assert!(cleanup_due(None, now, day));
        assert!(!cleanup_due(Some(utc("2026-11-25T03:00:01Z")), now, day));
        assert!(cleanup_due(Some(utc("2026-11-25T03:00:00Z")), now, day));
        assert!(cleanup_due(Some(utc("2026-11-01T00:00:00Z")), now, day));
        // A record from the future (a clock set back) waits rather than repeats.
        assert!(!cleanup_due(Some(utc("2026-11-27T00:00:00Z")), now, day));
        assert!(!cleanup_due(
            Some(utc("2026-11-25T00:00:00Z")),
            now,
            Duration::MAX
        ));
    }

    #[test]
    fn levels_rise_and_fall_in_order() {
        let levels = ["ok", "warning", "critical", "emergency"];
        for pair in levels.windows(2) {
            assert!(
                AlertLevel::of(pair[0]) < AlertLevel::of(pair[1]),
                "{pair:?}"
            );
            assert_eq!(level_change(pair[0], pair[1]), Some(LevelChange::Rose));
            assert_eq!(level_change(pair[1], pair[0]), Some(LevelChange::Fell));
        }
        assert_eq!(level_change("ok", "ok"), None);
        assert_eq!(level_change("ok", "unknown"), None);
        assert_eq!(
            level_change("unknown", "emergency"),
            Some(LevelChange::Rose)
        );
    }

    #[test]
    fn only_a_move_into_emergency_starts_the_emergency_cleanup() {
        assert!(entered_emergency("ok", "emergency"));
        assert!(entered_emergency("critical", "emergency"));
        assert!(!entered_emergency("emergency", "emergency"));
        assert!(!entered_emergency("ok", "critical"));
        assert!(!entered_emergency("emergency", "ok"));
    }

    #[test]
    fn used_pct_rounds_to_one_decimal_like_storage_stats() {
        assert_eq!(used_pct(0, 0), None);
        assert_eq!(used_pct(82, 100), Some(82.0));
        assert_eq!(used_pct(4_402_341_478, 5_368_709_120), Some(82.0));
        assert_eq!(used_pct(1, 3), Some(33.3));
        assert_eq!(used_pct(2, 3), Some(66.7));
    }

    proptest! {
        #[test]
        fn a_written_window_reads_back(start in 0..DAY_MINUTES, end in 0..DAY_MINUTES) {
            prop_assume!(start != end);
            let window = Window::Between { start, end };
            prop_assert_eq!(Window::parse(&window.to_string()), Ok(window));
        }

        #[test]
        fn a_window_holds_the_minutes_from_its_start_to_its_end_around_the_clock(
            start in 0..DAY_MINUTES,
            end in 0..DAY_MINUTES,
            minute in 0..DAY_MINUTES,
            second in 0u32..60,
        ) {
            prop_assume!(start != end);
            let time = NaiveTime::from_hms_opt(u32::from(minute / 60), u32::from(minute % 60), second).unwrap();
            prop_assert_eq!(
                Window::Between { start, end }.contains(time),
                around_the_clock(start, end, minute)
            );
        }

        #[test]
        fn a_window_and_its_complement_share_no_minute(
            start in 0..DAY_MINUTES,
            end in 0..DAY_MINUTES,
            minute in 0..DAY_MINUTES,
        ) {
            prop_assume!(start != end);
            let time = NaiveTime::from_hms_opt(u32::from(minute / 60), u32::from(minute % 60), 0).unwrap();
            let inside = Window::Between { start, end }.contains(time);
            let outside = Window::Between { start: end, end: start }.contains(time);
            prop_assert!(inside != outside);
        }

        #[test]
        fn parsing_never_panics_and_accepts_only_what_it_can_write(text in "\\PC{0,20}") {
            if let Ok(window) = Window::parse(&text) {
                prop_assert_eq!(Window::parse(&window.to_string()), Ok(window));
            }
        }
    }
}
