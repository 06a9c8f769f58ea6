//! Where `filegc` logs and how: JSON lines on stdout for `filegc run` on
//! Railway or with `FILEGC_LOG_FORMAT=json`, readable text for people, the
//! `FILEGC_LOG` filter, and `NO_COLOR` on a terminal.

use std::process::Command;
use std::time::Duration;

use filegc_tests::eventually;
use filegc_tests::sweeper::{describe_output, stderr, Running};
use filegc_tests::test_env::{run_command_on_terminal, TestEnv};
use serde_json::Value;

/// How long anything the run does may take before a test gives up on it.
const DEADLINE: Duration = Duration::from_secs(10);

/// A `filegc run` that does nothing on its own for an hour.
const QUIET_RUN: [&str; 5] = ["run", "--sweep-interval", "1h", "--scan-interval", "1h"];

/// Each line of `text` as JSON; fails the test on a line that is not a JSON object.
fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}\n{text}"));
            assert!(value.is_object(), "not a JSON object: {line:?}");
            value
        })
        .collect()
}

/// The first line whose top-level `message` is `message`.
fn line_saying<'a>(lines: &'a [Value], message: &str) -> &'a Value {
    lines
        .iter()
        .find(|line| line["message"] == message)
        .unwrap_or_else(|| panic!("no line with the message {message:?} in {lines:#?}"))
}

/// Starts `command` and waits until its stdout holds `text`.
fn start_until(command: Command, text: &str) -> Running {
    let mut running = Running::spawn(command);
    let seen = eventually(DEADLINE, || {
        assert!(running.is_running(), "filegc exited:\n{}", running.log());
        running.stdout().contains(text)
    });
    assert!(seen, "stdout never said {text:?}:\n{}", running.log());
    running
}

#[test]
fn run_on_railway_logs_json_lines_with_top_level_fields_on_stdout() {
    let env = TestEnv::new();
    env.write("user_1_1700000000.jpg", "x");
    let mut command = env.command(&QUIET_RUN);
    command.env("RAILWAY_ENVIRONMENT", "production");
    let mut running = start_until(command, "scan finished");
    running.signal(libc::SIGTERM);
    assert_eq!(running.exit_status(DEADLINE).code(), Some(0));

    assert_eq!(
        running.stderr(),
        "",
        "nothing on stderr, which Railway shows as errors"
    );
    let lines = json_lines(&running.stdout());
    for line in &lines {
        for key in ["timestamp", "level", "message", "target"] {
            assert!(line[key].is_string(), "no top-level {key:?} in {line}");
        }
        assert!(
            line.get("fields").is_none(),
            "fields are not nested: {line}"
        );
    }
    let listening = line_saying(&lines, "connected; listening for deletions");
    assert_eq!(listening["level"], "INFO");
    assert_eq!(listening["target"], "filegc_sweeper::run");
    let scanned = line_saying(&lines, "scan finished");
    assert_eq!(
        scanned["files"], 1,
        "the event's fields are top-level: {scanned}"
    );
    assert_eq!(scanned["alert_level"], "ok", "{scanned}");
}

#[test]
fn filegc_log_format_json_chooses_json_lines_off_railway() {
    let env = TestEnv::new();
    let mut command = env.command(&QUIET_RUN);
    command.env("FILEGC_LOG_FORMAT", "json");
    let mut running = start_until(command, "connected; listening for deletions");
    running.signal(libc::SIGTERM);
    assert_eq!(running.exit_status(DEADLINE).code(), Some(0));
    let lines = json_lines(&running.stdout());
    assert_eq!(
        line_saying(&lines, "connected; listening for deletions")["level"],
        "INFO"
    );
}

#[test]
fn the_log_format_flag_wins_over_railway() {
    let env = TestEnv::new();
    let mut command = env.command(&["--log-format", "text"]);
    command
        .args(QUIET_RUN)
        .env("RAILWAY_ENVIRONMENT", "production");
    let mut running = start_until(command, "connected; listening for deletions");
    running.signal(libc::SIGTERM);
    assert_eq!(running.exit_status(DEADLINE).code(), Some(0));
    let stdout = running.stdout();
    assert!(stdout.contains(" INFO "), "{stdout}");
    assert!(!stdout.starts_with('{'), "{stdout}");
}

#[test]
fn commands_keep_output_on_stdout_and_text_logs_on_stderr_on_railway() {
    let env = TestEnv::new();
    env.write("user_1_1700000000.jpg", "x");
    let output = env
        .command(&["scan"])
        .env("RAILWAY_ENVIRONMENT", "production")
        .output()
        .expect("running filegc");
    assert!(output.status.success(), "{}", describe_output(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with("Scanned 1 files"), "{stdout}");
    assert!(!stdout.contains("scan finished"), "{stdout}");
    let logs = stderr(&output);
    assert!(logs.contains("scan finished"), "{logs}");
    assert!(
        !logs.starts_with('{'),
        "people in `railway ssh` read text: {logs}"
    );
}

#[test]
fn commands_log_json_on_stderr_with_filegc_log_format_json() {
    let env = TestEnv::new();
    let output = env
        .command(&["scan"])
        .env("FILEGC_LOG_FORMAT", "json")
        .output()
        .expect("running filegc");
    assert!(output.status.success(), "{}", describe_output(&output));
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("Scanned 0 files"));
    let lines = json_lines(&stderr(&output));
    assert_eq!(line_saying(&lines, "scan finished")["files"], 0);
}

#[test]
fn an_invalid_filegc_log_format_names_the_variable_and_the_accepted_values() {
    let env = TestEnv::new();
    let output = env
        .command(&["scan"])
        .env("FILEGC_LOG_FORMAT", "xml")
        .output()
        .expect("running filegc");
    assert_eq!(
        output.status.code(),
        Some(2),
        "{}",
        describe_output(&output)
    );
    let message = stderr(&output);
    for word in ["FILEGC_LOG_FORMAT", "\"xml\"", "json", "text"] {
        assert!(message.contains(word), "{word} missing from: {message}");
    }
}

#[test]
fn filegc_log_filters_by_target_and_level() {
    let env = TestEnv::new();
    let mut command = env.command(&QUIET_RUN);
    command
        .env("FILEGC_LOG", "warn,filegc_sweeper::scan=info")
        .env("RUST_LOG", "trace");
    let mut running = start_until(command, "scan finished");
    running.signal(libc::SIGTERM);
    assert_eq!(running.exit_status(DEADLINE).code(), Some(0));
    let log = running.log();
    assert!(
        !log.contains("connected; listening for deletions"),
        "an info line of filegc_sweeper::run passed the filter:\n{log}"
    );
    assert!(
        !log.contains("DEBUG"),
        "RUST_LOG applies only without FILEGC_LOG:\n{log}"
    );
}

#[test]
fn rust_log_filters_when_filegc_log_is_not_set() {
    let env = TestEnv::new();
    let output = env
        .command(&["scan"])
        .env("RUST_LOG", "warn")
        .output()
        .expect("running filegc");
    assert!(output.status.success(), "{}", describe_output(&output));
    assert!(
        !stderr(&output).contains("scan finished"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn an_invalid_filegc_log_names_the_variable() {
    let env = TestEnv::new();
    let output = env
        .command(&["scan"])
        .env("FILEGC_LOG", "filegc_sweeper=loud")
        .output()
        .expect("running filegc");
    assert_eq!(
        output.status.code(),
        Some(2),
        "{}",
        describe_output(&output)
    );
    assert!(
        stderr(&output).contains("FILEGC_LOG"),
        "{}",
        stderr(&output)
    );
}

/// `filegc run` with an application that exits at once, on a terminal: its logs are the screen.
fn run_on_terminal(env: &TestEnv, no_color: Option<&str>) -> String {
    let mut command = env.command(&["run", "--", "true"]);
    match no_color {
        Some(value) => command.env("NO_COLOR", value),
        None => command.env_remove("NO_COLOR"),
    };
    let output = run_command_on_terminal(&command, b"");
    assert!(output.status.success(), "{}", describe_output(&output));
    let screen = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(screen.contains("application exited"), "{screen}");
    screen
}

#[test]
fn no_color_turns_colour_off_on_a_terminal() {
    let env = TestEnv::new();
    let coloured = run_on_terminal(&env, None);
    assert!(
        coloured.contains("\x1b["),
        "a terminal gets colour: {coloured:?}"
    );
    let plain = run_on_terminal(&env, Some("1"));
    assert!(!plain.contains('\x1b'), "NO_COLOR=1: {plain:?}");
    assert!(!plain.contains('{'), "people read text: {plain:?}");
    let empty = run_on_terminal(&env, Some(""));
    assert!(
        empty.contains("\x1b["),
        "an empty NO_COLOR is not set: {empty:?}"
    );
}
