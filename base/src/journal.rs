//! Logs to journald: a `tracing` layer that hands each event to `systemd-journal-logger`.
//!
//! Under systemd, stderr text would reach the journal too, but as lines journald can only
//! store as they are: every line at the unit's default priority, the fields buried in the
//! text. Sent natively, each event is one journal record:
//!
//! - `PRIORITY` from the level, as `systemd-journal-logger` maps `log`'s levels: ERROR 3
//!   (err), WARN 4 (warning), INFO 5 (notice), DEBUG 6 (info), TRACE 7 (debug). The same
//!   table as `tracing-journald`'s; `journalctl -p warning` shows warnings and errors.
//! - `MESSAGE`: what the stderr subscriber prints after the level and target: the spans
//!   the event is in (`sensor{id=tank kind="modbus"}:`), the message, the other fields as
//!   `key=value`, all formatted by `tracing-subscriber`'s own [`DefaultFields`].
//! - Each field also as a journal field of its own: an event's `device` as `DEVICE`, a
//!   span's as the span's name and the field's (`sensor`'s `id` as `SENSOR_ID`), so
//!   `journalctl -u simpul-agent SENSOR_ID=tank` finds one sensor's lines. Journal field
//!   names are upper-case ASCII letters, digits and `_`; the crate upper-cases and replaces
//!   the rest with `_` (and prefixes `ESCAPED_` to a name that starts with `_` or a digit,
//!   so no field poses as one of journald's trusted `_` fields). A field whose name would
//!   be one the crate writes itself (`PRIORITY`, `MESSAGE`, `TARGET`, ...) stays in the
//!   message text only.
//! - `TARGET`, `CODE_MODULE`, `CODE_FILE`, `CODE_LINE` from the event's metadata (for a
//!   `log` record turned into an event, the record's own), `SYSLOG_PID`, and
//!   `SYSLOG_IDENTIFIER`: the running executable's file name (`simpul-agent`), the crate's
//!   default, which `journalctl -t` matches.
//!
//! A record too big for one datagram goes as a sealed memfd (the crate does that); a send
//! that fails is dropped, as a line on a full stderr would be.

use std::fmt::Write as _;

use log::Log;
use systemd_journal_logger::JournalLog;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::{DefaultFields, Writer};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// Where a daemon's logs go; see [`choose`].
#[derive(Debug)]
pub enum Destination<J> {
    /// Stderr is the journal stream and journald answered: records to journald.
    Journal(J),
    /// Not under systemd (a terminal, tests, a pipe): text on stderr.
    Stderr,
    /// Stderr is the journal stream, but journald's socket did not answer: text on stderr,
    /// which journald still stores line by line.
    JournalUnreachable(std::io::Error),
}

/// Journald if stderr is the journal stream (`connected`, see
/// [`systemd_journal_logger::connected_to_journal`]) and `open` can reach it; stderr
/// otherwise. `open` is called only when connected.
pub fn choose<J>(connected: bool, open: impl FnOnce() -> std::io::Result<J>) -> Destination<J> {
    if !connected {
        return Destination::Stderr;
    }
    match open() {
        Ok(journal) => Destination::Journal(journal),
        Err(e) => Destination::JournalUnreachable(e),
    }
}

/// A layer that sends every event it sees to journald as one record (see the module doc).
/// Filter it as any layer (`EnvFilter`); it sends all it is given.
pub struct JournalLayer<L = JournalLog> {
    sink: L,
    fields: DefaultFields,
}

impl<L> std::fmt::Debug for JournalLayer<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalLayer").finish_non_exhaustive()
    }
}

impl JournalLayer<JournalLog> {
    /// Connects to journald's socket (`/run/systemd/journal/socket`); an error if nothing
    /// listens there. Records carry `SYSLOG_IDENTIFIER=identifier`: the daemon's name,
    /// not the file name it runs from (an update trial runs `agent.new`).
    pub fn new(identifier: &str) -> std::io::Result<JournalLayer> {
        Ok(JournalLayer::with_sink(JournalLog::new()?.with_syslog_identifier(identifier.to_owned())))
    }
}

impl<L: Log> JournalLayer<L> {
    /// A layer that hands its records to `sink` (tests capture them).
    pub fn with_sink(sink: L) -> JournalLayer<L> {
        JournalLayer { sink, fields: DefaultFields::new() }
    }
}

/// A span's fields, kept in its extensions: as text for the message prefix, as journal
/// fields named after the span.
#[derive(Debug, Default)]
struct SpanFields {
    text: String,
    pairs: Vec<(String, String)>,
}

impl<S, L> Layer<S> for JournalLayer<L>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    L: Log + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut own = SpanFields::default();
        let _ = self.fields.format_fields(Writer::new(&mut own.text), attrs);
        let mut fields = Fields::named_after(attrs.metadata().name());
        attrs.record(&mut fields);
        own.pairs = fields.pairs;
        span.extensions_mut().insert(own);
    }

    fn on_record(&self, id: &Id, values: &tracing::span::Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::named_after(span.name());
        values.record(&mut fields);
        let mut text = String::new();
        let _ = self.fields.format_fields(Writer::new(&mut text), values);
        let mut ext = span.extensions_mut();
        if let Some(own) = ext.get_mut::<SpanFields>() {
            if !own.text.is_empty() && !text.is_empty() {
                own.text.push(' ');
            }
            own.text.push_str(&text);
            own.pairs.extend(fields.pairs);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        // As the fmt layer prints them: `outer{a=1}:inner{b=2}: message key=value`.
        let mut message = String::new();
        let mut pairs = Vec::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                message.push_str(span.name());
                if let Some(own) = span.extensions().get::<SpanFields>() {
                    if !own.text.is_empty() {
                        let _ = write!(message, "{{{}}}", own.text);
                    }
                    pairs.extend(own.pairs.iter().cloned());
                }
                message.push(':');
            }
            if !message.is_empty() {
                message.push(' ');
            }
        }
        let _ = self.fields.format_fields(Writer::new(&mut message), event);
        let mut fields = Fields::default();
        event.record(&mut fields);
        pairs.extend(fields.pairs);

        let meta = event.metadata();
        let from_log = fields.log;
        let entry = Entry {
            level: log_level(*meta.level()),
            target: from_log.target.unwrap_or_else(|| meta.target().to_owned()),
            module: from_log.module.or_else(|| meta.module_path().map(str::to_owned)),
            file: from_log.file.or_else(|| meta.file().map(str::to_owned)),
            line: from_log.line.or(meta.line()),
            message,
            fields: pairs,
        };
        entry.send(&self.sink);
    }
}

/// `tracing`'s level as `log`'s (which `systemd-journal-logger` turns into `PRIORITY`).
pub fn log_level(level: tracing::Level) -> log::Level {
    match level {
        tracing::Level::ERROR => log::Level::Error,
        tracing::Level::WARN => log::Level::Warn,
        tracing::Level::INFO => log::Level::Info,
        tracing::Level::DEBUG => log::Level::Debug,
        _ => log::Level::Trace,
    }
}

/// One journal record, before it becomes a [`log::Record`].
#[derive(Debug)]
struct Entry {
    level: log::Level,
    target: String,
    module: Option<String>,
    file: Option<String>,
    line: Option<u32>,
    message: String,
    fields: Vec<(String, String)>,
}

impl Entry {
    fn send(&self, sink: &impl Log) {
        sink.log(
            &log::Record::builder()
                .level(self.level)
                .target(&self.target)
                .module_path(self.module.as_deref())
                .file(self.file.as_deref())
                .line(self.line)
                .key_values(&self.fields)
                .args(format_args!("{}", self.message))
                .build(),
        );
    }
}

/// The fields `systemd-journal-logger` writes itself; a field of ours with one of these
/// names would make a second value that journalctl hides or mistakes for the first.
const WRITTEN_BY_THE_LOGGER: &[&str] =
    &["MESSAGE", "PRIORITY", "SYSLOG_PID", "SYSLOG_IDENTIFIER", "CODE_FILE", "CODE_MODULE", "CODE_LINE", "TARGET"];

/// `name` as a journal field name: upper case, `_` for what journald does not allow (the
/// crate's rule; it applies it again, to the same result).
fn journal_name(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect()
}

/// Where a `log` record turned into an event (tracing-log's `log.*` fields) came from.
#[derive(Debug, Default)]
struct FromLog {
    target: Option<String>,
    module: Option<String>,
    file: Option<String>,
    line: Option<u32>,
}

/// Collects fields as journal (name, value) pairs: values as the text `journalctl` shows,
/// strings without the quotes the message text puts around them.
#[derive(Debug, Default)]
struct Fields {
    /// The span's journal name and `_`, before each field's name; empty for an event.
    prefix: String,
    pairs: Vec<(String, String)>,
    log: FromLog,
}

impl Fields {
    fn named_after(span: &str) -> Fields {
        Fields { prefix: format!("{}_", journal_name(span)), ..Fields::default() }
    }

    fn push(&mut self, field: &Field, value: String) {
        match field.name() {
            "message" => {}
            "log.target" => self.log.target = Some(value),
            "log.module_path" => self.log.module = Some(value),
            "log.file" => self.log.file = Some(value),
            "log.line" => self.log.line = value.parse().ok(),
            name if name.starts_with("log.") => {}
            name => {
                let name = format!("{}{}", self.prefix, journal_name(name.strip_prefix("r#").unwrap_or(name)));
                if !WRITTEN_BY_THE_LOGGER.contains(&name.as_str()) {
                    self.pairs.push((name, value));
                }
            }
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, value.to_owned());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.push(field, value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.push(field, format!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// What a record held, as journald would be given it.
    #[derive(Debug, Clone)]
    struct Captured {
        level: log::Level,
        target: String,
        module: Option<String>,
        file: Option<String>,
        line: Option<u32>,
        message: String,
        fields: Vec<(String, String)>,
    }

    impl Captured {
        fn field(&self, name: &str) -> Option<&str> {
            self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
        }
    }

    #[derive(Debug, Clone, Default)]
    struct Capture(Arc<Mutex<Vec<Captured>>>);

    struct Pairs(Vec<(String, String)>);

    impl<'kvs> log::kv::VisitSource<'kvs> for Pairs {
        fn visit_pair(&mut self, key: log::kv::Key<'kvs>, value: log::kv::Value<'kvs>) -> Result<(), log::kv::Error> {
            self.0.push((key.to_string(), value.to_string()));
            Ok(())
        }
    }

    impl Log for Capture {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }

        fn log(&self, record: &log::Record<'_>) {
            let mut pairs = Pairs(Vec::new());
            record.key_values().visit(&mut pairs).expect("visit the key-values");
            let captured = Captured {
                level: record.level(),
                target: record.target().to_owned(),
                module: record.module_path().map(str::to_owned),
                file: record.file().map(str::to_owned),
                line: record.line(),
                message: record.args().to_string(),
                fields: pairs.0,
            };
            self.0.lock().expect("the capture lock").push(captured);
        }

        fn flush(&self) {}
    }

    /// The records `f`'s events become.
    fn records(f: impl FnOnce()) -> Vec<Captured> {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::registry().with(JournalLayer::with_sink(capture.clone()));
        tracing::subscriber::with_default(subscriber, f);
        capture.0.lock().expect("the capture lock").clone()
    }

    fn one(f: impl FnOnce()) -> Captured {
        let mut records = records(f);
        assert_eq!(records.len(), 1, "one event, one record: {records:?}");
        records.remove(0)
    }

    #[test]
    fn each_tracing_level_becomes_the_log_level_of_the_same_name() {
        use tracing::Level;
        assert_eq!(log_level(Level::ERROR), log::Level::Error);
        assert_eq!(log_level(Level::WARN), log::Level::Warn);
        assert_eq!(log_level(Level::INFO), log::Level::Info);
        assert_eq!(log_level(Level::DEBUG), log::Level::Debug);
        assert_eq!(log_level(Level::TRACE), log::Level::Trace);
        let levels: Vec<log::Level> = records(|| {
            tracing::error!("e");
            tracing::warn!("w");
            tracing::info!("i");
            tracing::debug!("d");
            tracing::trace!("t");
        })
        .iter()
        .map(|r| r.level)
        .collect();
        assert_eq!(
            levels,
            [log::Level::Error, log::Level::Warn, log::Level::Info, log::Level::Debug, log::Level::Trace]
        );
    }

    #[test]
    fn the_message_is_the_text_the_stderr_log_prints_and_each_field_is_a_journal_field() {
        let r = one(|| {
            let buffer = std::path::Path::new("/var/lib/simpul/buffer.db");
            tracing::info!(device = "kel-1", sensors = 2, buffer = %buffer.display(), ok = true, "simpul-agent starting");
        });
        assert_eq!(
            r.message,
            r#"simpul-agent starting device="kel-1" sensors=2 buffer=/var/lib/simpul/buffer.db ok=true"#
        );
        assert_eq!(
            r.fields,
            [
                ("DEVICE".to_owned(), "kel-1".to_owned()),
                ("SENSORS".to_owned(), "2".to_owned()),
                ("BUFFER".to_owned(), "/var/lib/simpul/buffer.db".to_owned()),
                ("OK".to_owned(), "true".to_owned()),
            ]
        );
    }

    /// Text the fmt layer writes, shared with the test.
    #[derive(Debug, Clone, Default)]
    struct Text(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Text {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("the text lock").extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_message_is_what_the_stderr_subscriber_prints_after_time_level_and_target() {
        let capture = Capture::default();
        let text = Text::default();
        let for_fmt = text.clone();
        let fmt = tracing_subscriber::fmt::layer()
            .without_time()
            .with_level(false)
            .with_target(false)
            .with_ansi(false)
            .with_writer(move || for_fmt.clone());
        let subscriber = tracing_subscriber::registry().with(fmt).with(JournalLayer::with_sink(capture.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("sensor", id = %"tank", kind = "ascii");
            let _in = span.enter();
            tracing::info!(files = ?["agent.toml", "agent.d/10-fleet.toml"], n = 3, "config loaded");
            tracing::warn!(error = %"timed out", "no answer\nsecond line");
        });
        let printed = String::from_utf8(text.0.lock().expect("the text lock").clone()).expect("UTF-8");
        let messages: Vec<String> =
            capture.0.lock().expect("the capture lock").iter().map(|r| r.message.clone()).collect();
        assert_eq!(printed, format!("{}\n", messages.join("\n")));
        assert!(messages[0].starts_with("sensor{id=tank kind=\"ascii\"}: config loaded files=["), "{messages:?}");
    }

    #[test]
    fn the_record_says_where_the_event_came_from() {
        let r = one(|| tracing::warn!("here"));
        assert_eq!(r.level, log::Level::Warn);
        assert_eq!(r.target, module_path!());
        assert_eq!(r.module.as_deref(), Some(module_path!()));
        assert_eq!(r.file.as_deref(), Some(file!()));
        assert!(r.line.is_some_and(|l| l > 0), "a line number: {r:?}");
        let r = one(|| tracing::info!(target: "simpul::uplink", "with a target"));
        assert_eq!(r.target, "simpul::uplink");
    }

    #[test]
    fn an_event_in_a_span_carries_the_spans_fields_in_its_text_and_as_fields_named_after_the_span() {
        let r = one(|| {
            let bus = tracing::info_span!("modbus_bus", path = "/dev/ttyUSB0");
            let _bus = bus.enter();
            let sensor = tracing::info_span!("sensor", id = %"tank", kind = "modbus", slave = tracing::field::Empty);
            sensor.record("slave", 3);
            let _sensor = sensor.enter();
            tracing::warn!(timeouts = 4, "no answer");
        });
        assert_eq!(
            r.message,
            r#"modbus_bus{path="/dev/ttyUSB0"}:sensor{id=tank kind="modbus" slave=3}: no answer timeouts=4"#
        );
        assert_eq!(r.field("MODBUS_BUS_PATH"), Some("/dev/ttyUSB0"));
        assert_eq!(r.field("SENSOR_ID"), Some("tank"));
        assert_eq!(r.field("SENSOR_KIND"), Some("modbus"));
        assert_eq!(r.field("SENSOR_SLAVE"), Some("3"));
        assert_eq!(r.field("TIMEOUTS"), Some("4"));
    }

    #[test]
    fn errors_are_their_display_text_and_names_journald_forbids_are_mended() {
        let e = std::io::Error::other("port gone");
        let r = one(|| {
            tracing::error!(
                error = &e as &(dyn std::error::Error + 'static),
                r#type = "ascii",
                baud.rate = 9600,
                "cannot open"
            )
        });
        assert_eq!(r.field("ERROR"), Some("port gone"));
        assert_eq!(r.field("TYPE"), Some("ascii"));
        assert_eq!(r.field("BAUD_RATE"), Some("9600"));
        assert!(r.message.starts_with("cannot open error=port gone"), "{}", r.message);
    }

    #[test]
    fn a_field_named_like_one_the_logger_writes_stays_in_the_text_only() {
        let r = one(|| tracing::info!(priority = 1, target = "x", message_id = "m", "queued"));
        assert_eq!(r.message, r#"queued priority=1 target="x" message_id="m""#);
        assert_eq!(r.fields, [("MESSAGE_ID".to_owned(), "m".to_owned())]);
    }

    #[test]
    fn a_log_record_turned_into_an_event_keeps_its_own_target_and_place() {
        let r = one(|| {
            tracing::info!(
                log.target = "rumqttc::state",
                log.module_path = "rumqttc::state",
                log.file = "src/state.rs",
                log.line = 42u64,
                "ping"
            )
        });
        assert_eq!(r.target, "rumqttc::state");
        assert_eq!(r.module.as_deref(), Some("rumqttc::state"));
        assert_eq!(r.file.as_deref(), Some("src/state.rs"));
        assert_eq!(r.line, Some(42));
        assert_eq!(r.message, "ping");
        assert!(r.fields.is_empty(), "{:?}", r.fields);
    }

    #[test]
    fn not_under_systemd_the_logs_go_to_stderr_without_trying_journald() {
        let d = choose(false, || -> std::io::Result<()> { panic!("journald must not be opened") });
        assert!(matches!(d, Destination::Stderr), "{d:?}");
    }

    #[test]
    fn under_systemd_the_logs_go_to_journald() {
        let d = choose(true, || Ok("journal"));
        assert!(matches!(d, Destination::Journal("journal")), "{d:?}");
    }

    #[test]
    fn under_systemd_with_journald_unreachable_the_logs_go_to_stderr_with_the_reason() {
        let d = choose(true, || -> std::io::Result<()> { Err(std::io::ErrorKind::NotFound.into()) });
        assert!(matches!(&d, Destination::JournalUnreachable(e) if e.kind() == std::io::ErrorKind::NotFound), "{d:?}");
    }
}
