//! The status page's HTML: a pure function of a [`StatusView`], a language and a zone.
//! Server-rendered, refreshes itself every 5 seconds, no script, readable on a phone.

use std::fmt::Write as _;

use super::i18n::{Lang, Msg, Zone};
use super::probe::ProbeView;
use super::view::{LinkView, SensorStateView, StatusView};

/// The page.
pub fn page(v: &StatusView, lang: Lang, zone: Zone) -> String {
    let t = |m| lang.t(m);
    let mut h = String::with_capacity(4096);
    let title = match &v.site {
        Some(site) => format!("{} · {}", t(Msg::Title), site),
        None => t(Msg::Title).to_owned(),
    };
    let other = match lang {
        Lang::Id => "en",
        Lang::English => "id",
    };
    let _ = write!(
        h,
        "<!doctype html><html lang=\"{}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"5\"><title>{}</title><style>{STYLE}</style></head><body>\
         <p class=\"lang\"><a href=\"?lang={other}\">{}</a></p><h1>{}</h1><p class=\"dev\">{}</p>",
        lang.code(),
        esc(&title),
        t(Msg::OtherLanguage),
        esc(&title),
        esc(&v.device),
    );

    let _ = write!(h, "<h2>{}</h2>", t(Msg::Sensors));
    if v.sensors.is_empty() {
        let _ = write!(h, "<p>{}</p>", t(Msg::NoSensors));
    } else {
        let _ = write!(
            h,
            "<table><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
            t(Msg::Sensor),
            t(Msg::Value),
            t(Msg::LastSeen),
            t(Msg::State)
        );
        for s in &v.sensors {
            let values: Vec<String> = s.values.iter().map(|(m, x)| format!("{}: {}", esc(m), fmt_value(*x))).collect();
            let seen = s.last_seen_ms.map_or_else(|| t(Msg::Never).to_owned(), |ms| zone.format(ms));
            let (class, state) = match s.state {
                SensorStateView::Ok => ("ok", t(Msg::StateOk)),
                SensorStateView::Disconnected => ("bad", t(Msg::StateDisconnected)),
                SensorStateView::Failing => ("bad", t(Msg::StateFailing)),
                SensorStateView::Starting => ("wait", t(Msg::StateStarting)),
            };
            let _ = write!(
                h,
                "<tr class=\"{class}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&s.id),
                values.join("<br>"),
                esc(&seen),
                state
            );
        }
        h.push_str("</table>");
    }

    let (class, link) = match v.link {
        LinkView::Off => ("wait", t(Msg::LinkOff)),
        LinkView::Connected => ("ok", t(Msg::LinkConnected)),
        LinkView::Disconnected => ("bad", t(Msg::LinkDisconnected)),
    };
    let _ = write!(h, "<h2>{}</h2><p class=\"{class}\">{link}</p>", t(Msg::Link));
    let waiting = v.waiting.map_or_else(|| "?".to_owned(), |n| n.to_string());
    let _ = write!(h, "<p>{}: <b>{waiting}</b>", t(Msg::Waiting));
    if let Some(ms) = v.oldest_waiting_ms.filter(|_| v.waiting.unwrap_or(0) > 0) {
        let _ = write!(h, " ({} {})", t(Msg::OldestWaiting), esc(&zone.format(ms)));
    }
    h.push_str("</p>");

    if !v.new_ports.is_empty() {
        let _ = write!(h, "<h2>{}</h2><p>{}</p><ul>", t(Msg::NewPorts), t(Msg::NewPortsHint));
        for p in &v.new_ports {
            let _ = write!(h, "<li><code>{}</code> ", esc(p));
            let result = v.probes.get(p);
            match result {
                Some(ProbeView::Probing) => {
                    let _ = write!(h, "<p class=\"wait\">{}</p>", t(Msg::Probing));
                }
                Some(r) => {
                    let (class, msg, summary) = match r {
                        ProbeView::Proposed { summary, connected: true } => ("ok", Msg::ProbeSent, Some(summary)),
                        ProbeView::Proposed { summary, connected: false } => ("wait", Msg::ProbeQueued, Some(summary)),
                        ProbeView::NotSent { summary } => ("wait", Msg::ProbeNotSent, Some(summary)),
                        ProbeView::Nothing | ProbeView::Probing => ("bad", Msg::ProbeNothing, None),
                    };
                    let summary = summary.map(|s| format!(" <b>{}</b>", esc(s))).unwrap_or_default();
                    let _ = write!(h, "<p class=\"{class}\">{}{summary}</p>", t(msg));
                }
                None => {}
            }
            if result != Some(&ProbeView::Probing) {
                let _ = write!(
                    h,
                    "<form method=\"post\" action=\"/probe?port={}&amp;lang={}\"><button>{}</button></form>",
                    esc(&query_escape(p)),
                    lang.code(),
                    t(Msg::ProbeButton)
                );
            }
            h.push_str("</li>");
        }
        h.push_str("</ul>");
    }

    let _ = write!(
        h,
        "<p class=\"foot\">{} {} · {} {}</p></body></html>",
        t(Msg::Version),
        esc(&v.version),
        t(Msg::Updated),
        esc(&zone.format(v.now_ms))
    );
    h
}

const STYLE: &str = "body{font-family:sans-serif;margin:1em;max-width:60em}table{border-collapse:collapse;width:100%}\
td,th{border-bottom:1px solid #ccc;padding:.4em;text-align:left}.ok{color:#075e07}.bad{color:#a10000}\
.wait{color:#6b5800}.dev,.foot{color:#555}.lang{float:right}";

/// A reading as people write it: up to 3 decimals, no trailing zeros.
fn fmt_value(x: f64) -> String {
    if !x.is_finite() {
        return "-".to_owned();
    }
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// A query value made safe for a URL: unreserved characters and `/` as they are, every
/// other byte as `%XX`.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Text made safe for HTML: the site name and ids come from config files.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::status_page::view::SensorView;

    fn view() -> StatusView {
        StatusView {
            site: Some("Kelurahan <Ciwedus>".into()),
            device: "cilegon-ciwedus".into(),
            version: "0.1.0".into(),
            now_ms: 1_795_417_509_000,
            link: LinkView::Disconnected,
            waiting: Some(42),
            oldest_waiting_ms: Some(1_795_417_000_000),
            sensors: vec![
                SensorView {
                    id: "sungai".into(),
                    kind: "ascii".into(),
                    state: SensorStateView::Ok,
                    values: BTreeMap::from([("level".into(), 123.400)]),
                    last_seen_ms: Some(1_795_417_508_000),
                },
                SensorView {
                    id: "hujan".into(),
                    kind: "modbus".into(),
                    state: SensorStateView::Disconnected,
                    values: BTreeMap::new(),
                    last_seen_ms: None,
                },
            ],
            new_ports: vec!["/dev/ttyUSB1".into(), "/dev/ttyUSB2".into()],
            probes: BTreeMap::from([(
                "/dev/ttyUSB1".into(),
                ProbeView::Proposed { summary: "Modbus slave 1 at 9600 baud".into(), connected: false },
            )]),
        }
    }

    #[test]
    fn the_page_speaks_bahasa_indonesia_in_plain_words_with_local_times() {
        let html = page(&view(), Lang::Id, Zone::Wib);
        assert!(html.contains("lang=\"id\""));
        assert!(html.contains("level: 123.4"));
        assert!(html.contains("23/11/2026 14:05:08 WIB"), "last seen in WIB");
        assert!(html.contains("Periksa kabel"), "plain advice for a disconnected sensor");
        assert!(html.contains("Terputus"));
        assert!(html.contains("<b>42</b>"));
        assert!(html.contains("/dev/ttyUSB1"));
        assert!(html.contains("belum pernah"));
        assert!(html.contains("usulan dikirim saat sambungan kembali"), "a proposal waits for the link");
        assert!(html.contains("Modbus slave 1 at 9600 baud"));
        assert!(html.contains("action=\"/probe?port=/dev/ttyUSB2&amp;lang=id\""), "a probe button per new port");
        assert!(!html.contains("<Ciwedus>"), "text from config is escaped");
    }

    #[test]
    fn english_on_request_with_the_same_facts() {
        let html = page(&view(), Lang::English, Zone::Wita);
        assert!(html.contains("lang=\"en\""));
        assert!(html.contains("Check the sensor's cable"));
        assert!(html.contains("15:05:08 WITA"));
        assert!(html.contains("never"));
    }
}
