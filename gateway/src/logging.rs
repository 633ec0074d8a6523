//! Logs through tracing: readable on a terminal (colours, times), and
//! journald-friendly under systemd. When stderr is the journal's stream
//! (`JOURNAL_STREAM` names its device and inode, see systemd.exec(5)), each line
//! starts with its syslog priority `<N>` (sd-daemon(3)) so that `journalctl -p`
//! filters work, and carries no time stamp (the journal adds its own).

use std::fmt;
use std::sync::OnceLock;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// The syslog priority of a level: err 3, warning 4, info 6, debug 7.
pub fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// One journal line: `<priority>target: message key=value...`.
#[derive(Debug)]
pub struct Journald;

impl<S, N> FormatEvent<S, N> for Journald
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        write!(writer, "<{}>{}: ", priority(meta.level()), meta.target())?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Whether stderr is the journal's stream (`JOURNAL_STREAM=<device>:<inode>`).
#[cfg(unix)]
pub fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(stream) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    match std::fs::metadata("/proc/self/fd/2") {
        Ok(m) => m.dev() == dev && m.ino() == ino,
        Err(_) => false,
    }
}

#[cfg(not(unix))]
pub fn stderr_is_journal() -> bool {
    false
}

/// Changes the level of the installed logger (`set_level`).
static LEVEL: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Install the logger: `RUST_LOG` sets the level (default `info`, or the
/// configuration's `log.level` once `set_level` is called).
pub fn init() {
    let from_env = EnvFilter::try_from_default_env().ok();
    let (filter, handle) =
        reload::Layer::new(from_env.unwrap_or_else(|| EnvFilter::new(DEFAULT_LEVEL)));
    let _ = LEVEL.set(handle);
    let registry = tracing_subscriber::registry().with(filter);
    if stderr_is_journal() {
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .event_format(Journald);
        registry.with(layer).init();
    } else {
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
        registry.with(layer).init();
    }
}

/// The level without `RUST_LOG` or `log.level`.
pub const DEFAULT_LEVEL: &str = "info";

/// Use the configuration's `log.level` (checked when the configuration was
/// loaded), unless `RUST_LOG` is set: the environment wins, so that a one-off
/// `RUST_LOG=debug mqgate run ...` works without editing the file.
pub fn set_level(level: &str) {
    if std::env::var_os("RUST_LOG").is_some() {
        return;
    }
    let Some(handle) = LEVEL.get() else {
        return;
    };
    match EnvFilter::builder().parse(level) {
        Ok(filter) => {
            if let Err(e) = handle.reload(filter) {
                tracing::warn!("cannot change the log level: {e}");
            }
        }
        Err(e) => tracing::warn!("log.level {level:?}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn journal_lines_start_with_the_syslog_priority_and_have_no_time() {
        let buf = Buffer::default();
        let out = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || out.clone())
            .with_ansi(false)
            .with_max_level(Level::DEBUG)
            .event_format(Journald)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(source = "gps", "port gone");
            tracing::info!("gateway running");
            tracing::error!("store damaged");
            tracing::debug!("detail");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(
            lines[0].starts_with("<4>mqgate::logging::tests: port gone"),
            "{text}"
        );
        assert!(lines[0].contains("source=\"gps\""), "{text}");
        assert!(lines[1].starts_with("<6>"), "{text}");
        assert!(lines[2].starts_with("<3>"), "{text}");
        assert!(lines[3].starts_with("<7>"), "{text}");
        assert!(!text.contains("Z "), "no time stamps: {text}");
    }
}
