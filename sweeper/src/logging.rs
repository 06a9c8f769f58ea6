//! The log subscriber: where `filegc`'s log lines go, how they look, and
//! which are written, as [`crate::config::Logging`] decided.
//!
//! JSON lines carry `timestamp`, `level`, `message`, `target` and the
//! event's own fields all at the top level, which is what log collectors
//! such as Railway's read: a nested `fields` object hides the message from
//! them. The sweeper opens no spans, so none are written.

use std::io::{self, IsTerminal};

use tracing::level_filters::LevelFilter;
use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use crate::config::{Colour, LogDestination, LogFilter, LogFormat, LogLevel, Logging};

/// Installs the subscriber `logging` describes, for the rest of the process.
///
/// # Panics
///
/// When a subscriber is installed already: the binary calls this once.
pub fn init(logging: &Logging) {
    let subscriber = match logging.destination {
        LogDestination::Stdout => {
            let colour = coloured(logging.colour, io::stdout().is_terminal());
            subscriber(logging, io::stdout, colour)
        }
        LogDestination::Stderr => {
            let colour = coloured(logging.colour, io::stderr().is_terminal());
            subscriber(logging, io::stderr, colour)
        }
    };
    tracing::subscriber::set_global_default(subscriber).expect("logging is set up only once");
    if let Some(warning) = &logging.warning {
        tracing::warn!("{warning}");
    }
}

/// Whether text gets colour: on a terminal, unless `NO_COLOR` says otherwise.
fn coloured(colour: Colour, terminal: bool) -> bool {
    colour == Colour::OnTerminal && terminal
}

/// A subscriber that writes the lines `logging` describes to `writer`, with
/// colour (text only) when `colour` is true.
pub fn subscriber<W>(
    logging: &Logging,
    writer: W,
    colour: bool,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_writer(writer)
        .with_env_filter(env_filter(&logging.filter));
    match logging.format {
        LogFormat::Text => Box::new(builder.with_ansi(colour).finish()),
        LogFormat::Json => Box::new(
            builder
                .with_ansi(false)
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .finish(),
        ),
    }
}

/// The filter as tracing-subscriber takes it.
fn env_filter(filter: &LogFilter) -> EnvFilter {
    match filter {
        LogFilter::Level(level) => EnvFilter::default().add_directive(level_filter(*level).into()),
        // The configuration checked the directives, so nothing is dropped here.
        LogFilter::Directives { directives, .. } => EnvFilter::builder().parse_lossy(directives),
    }
}

fn level_filter(level: LogLevel) -> LevelFilter {
    match level {
        LogLevel::Error => LevelFilter::ERROR,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Trace => LevelFilter::TRACE,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::Value;

    use super::*;

    /// Log lines kept in memory.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Lines {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// What `log` writes through a subscriber for `format` and `filter`, with colour.
    fn written(format: LogFormat, filter: LogFilter, log: impl FnOnce()) -> String {
        let logging = Logging {
            format,
            filter,
            destination: LogDestination::Stdout,
            colour: Colour::OnTerminal,
            warning: None,
        };
        let lines = Lines::default();
        let writer = lines.clone();
        tracing::subscriber::with_default(subscriber(&logging, move || writer.clone(), true), log);
        lines.text()
    }

    #[test]
    fn json_lines_have_the_message_level_and_fields_at_the_top() {
        let text = written(LogFormat::Json, LogFilter::Level(LogLevel::Info), || {
            tracing::info!(target: "filegc_sweeper::scan", files = 3, alert_level = %"ok", "scan finished");
        });
        let line: Value = serde_json::from_str(text.trim_end()).expect(&text);
        assert_eq!(line["message"], "scan finished", "{line}");
        assert_eq!(line["level"], "INFO", "{line}");
        assert_eq!(line["target"], "filegc_sweeper::scan", "{line}");
        assert_eq!(line["files"], 3, "{line}");
        assert_eq!(line["alert_level"], "ok", "{line}");
        assert!(line["timestamp"].is_string(), "{line}");
        assert!(line.get("fields").is_none(), "{line}");
        assert!(!text.contains('\x1b'), "no colour in JSON: {text:?}");
    }

    #[test]
    fn directives_filter_by_target_and_level() {
        let directives = LogFilter::Directives {
            variable: "FILEGC_LOG",
            directives: "warn,filegc_sweeper::scan=debug".into(),
        };
        let text = written(LogFormat::Text, directives, || {
            tracing::debug!(target: "filegc_sweeper::scan", "walking");
            tracing::info!(target: "filegc_sweeper::run", "connected");
            tracing::warn!(target: "filegc_sweeper::run", "lost the database");
        });
        assert!(text.contains("walking"), "{text}");
        assert!(!text.contains("connected"), "{text}");
        assert!(text.contains("lost the database"), "{text}");
    }

    #[test]
    fn a_level_lets_through_that_level_and_more_severe_ones() {
        let text = written(LogFormat::Text, LogFilter::Level(LogLevel::Warn), || {
            tracing::info!("connected");
            tracing::warn!("lost the database");
        });
        assert!(!text.contains("connected"), "{text}");
        assert!(text.contains("lost the database"), "{text}");
    }

    #[test]
    fn no_color_wins_over_a_terminal() {
        assert!(coloured(Colour::OnTerminal, true));
        assert!(!coloured(Colour::OnTerminal, false));
        assert!(!coloured(Colour::Never, true));
    }
}
