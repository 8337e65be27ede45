//! The local status page for the kelurahan staff: HTTP on the office LAN, no login, and
//! therefore no secret on it. It shows every sensor with its live value and when it was
//! last seen, the link to the fleet, what waits in the buffer, the version, and serial
//! ports that are plugged in but not configured yet.
//!
//! Bahasa Indonesia by default, English on request (`?lang=en`, or the browser's
//! `Accept-Language`); times in the site's zone (WIB, WITA or WIT), stored in UTC. Words
//! for people, never error codes. Design: docs/design/status-page.md.
//!
//! - [`view`]: what the page shows, gathered from the live counters (no HTML);
//! - [`render`]: the HTML, a pure function of a view, a language and a zone;
//! - [`i18n`]: every sentence in both languages, and the language choice;
//! - [`probe`]: probing a new port and proposing it to the fleet, and the results;
//! - [`server`]: the axum routes (`/`, `/status.json`, `POST /probe`).

pub mod i18n;
pub mod ports;
pub mod probe;
pub mod render;
pub mod server;
pub mod view;

pub use i18n::{Lang, Zone};
pub use probe::{ProbeHook, ProbeView};
pub use server::{Sources, spawn};
pub use view::StatusView;
