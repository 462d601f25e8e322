//! The log: `tracing` records of the orchestrator's own crates on stderr at the level
//! the user asked for (warnings by default; `ORCHESTRATOR_LOG_LEVEL`, `-v` for info,
//! `-vv` for debug), other crates' only from warnings up; and, once a session is
//! known, every debug record in `orchestrator.log` in its results directory, whatever
//! the stderr level, for the post-mortem.
//!
//! What reaches the log never includes a job's script or the recipe's environment:
//! the scheduler logs its commands without their input, and the state store its
//! events, whose details are states, nodes, paths and health answers.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The prefix of every target of this project's crates (`orchestrator_core::…`,
/// `orchestrator::scheduler`, `orchestrator::state`, …).
const OURS: &str = "orchestrator";

/// The level stderr shows: `ORCHESTRATOR_LOG_LEVEL` (the original tool's names:
/// `DEBUG`, `INFO`, `WARNING`, `ERROR`, and `TRACE`, `OFF`), raised by `-v` (info)
/// and `-vv` (debug); warnings when neither is given.
///
/// # Errors
/// A level name that is none of those, as a message.
pub fn level(from_env: Option<&str>, verbose: u8) -> Result<LevelFilter, String> {
    let base = match from_env.map(|l| l.trim().to_ascii_uppercase()).as_deref() {
        None | Some("") => LevelFilter::WARN,
        Some("TRACE") => LevelFilter::TRACE,
        Some("DEBUG") => LevelFilter::DEBUG,
        Some("INFO") => LevelFilter::INFO,
        Some("WARNING" | "WARN") => LevelFilter::WARN,
        Some("ERROR" | "CRITICAL") => LevelFilter::ERROR,
        Some("OFF") => LevelFilter::OFF,
        Some(other) => {
            return Err(format!(
                "ORCHESTRATOR_LOG_LEVEL={other} is not a log level; use DEBUG, INFO, WARNING or ERROR"
            ));
        }
    };
    let asked = match verbose {
        0 => LevelFilter::OFF,
        1 => LevelFilter::INFO,
        _ => LevelFilter::DEBUG,
    };
    Ok(base.max(asked))
}

/// The session's log file, once there is one.
static SESSION_LOG: Mutex<Option<File>> = Mutex::new(None);

/// Writes to the session's log file, or nowhere before there is one.
#[derive(Debug, Clone, Copy)]
struct SessionLog;

impl Write for SessionLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut file = SESSION_LOG
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match file.as_mut() {
            Some(f) => f.write_all(buf).map(|()| buf.len()),
            None => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let mut file = SESSION_LOG
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        file.as_mut().map_or(Ok(()), File::flush)
    }
}

impl MakeWriter<'_> for SessionLog {
    type Writer = Self;
    fn make_writer(&self) -> Self {
        *self
    }
}

/// Installs the subscriber: stderr at `level`, the session file at debug. Once per
/// process; a second call changes nothing.
pub fn init(level: LevelFilter) {
    let others = level.min(LevelFilter::WARN);
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_filter(Targets::new().with_target(OURS, level).with_default(others));
    let file = tracing_subscriber::fmt::layer()
        .with_writer(SessionLog)
        .with_ansi(false)
        .with_filter(
            Targets::new()
                .with_target(OURS, LevelFilter::DEBUG)
                .with_default(LevelFilter::WARN),
        );
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .try_init();
}

/// From now on, debug records also go to `path` (created private to the user, appended
/// to).
///
/// # Errors
/// The file cannot be created.
pub fn to_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    *SESSION_LOG
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(file);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_level_comes_from_the_environment_and_the_flags_raise_it() {
        assert_eq!(level(None, 0).unwrap(), LevelFilter::WARN);
        assert_eq!(level(Some("DEBUG"), 0).unwrap(), LevelFilter::DEBUG);
        assert_eq!(level(Some("warning"), 0).unwrap(), LevelFilter::WARN);
        assert_eq!(level(Some("ERROR"), 0).unwrap(), LevelFilter::ERROR);
        assert_eq!(level(None, 1).unwrap(), LevelFilter::INFO);
        assert_eq!(level(Some("ERROR"), 2).unwrap(), LevelFilter::DEBUG);
        assert_eq!(level(Some("TRACE"), 1).unwrap(), LevelFilter::TRACE);
        let error = level(Some("LOUD"), 0).unwrap_err();
        assert!(error.contains("LOUD is not a log level"), "{error}");
    }
}
