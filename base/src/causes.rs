//! An error told with its causes, for messages people read: many errors (reqwest's, the
//! `postgres` client's) name only the kind of failure and keep the reason in their source
//! chain (`error performing TLS handshake: invalid peer certificate: UnknownIssuer`).

/// `e` and every error beneath it, joined by `: `; a cause whose text already ends the
/// message is not repeated.
pub fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let c_text = c.to_string();
        if !text.ends_with(&c_text) {
            text = format!("{text}: {c_text}");
        }
        cause = c.source();
    }
    text
}
