//! The page's words in Bahasa Indonesia and English, the language choice, and the site's
//! time zone. Indonesia keeps no daylight saving, so each zone is a fixed offset.

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

/// The page's language.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    /// Bahasa Indonesia, the default.
    Id,
    English,
}

impl Lang {
    /// `?lang=` wins; then the first of `id`/`en` in `Accept-Language` by its q weight;
    /// otherwise Bahasa Indonesia.
    pub fn choose(query: Option<&str>, accept_language: Option<&str>) -> Lang {
        if let Some(q) = query.and_then(Lang::parse) {
            return q;
        }
        let mut best: Option<(f32, Lang)> = None;
        for part in accept_language.unwrap_or("").split(',') {
            let mut pieces = part.split(';');
            let tag = pieces.next().unwrap_or("").trim();
            let q = pieces
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|v| v.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if let Some(lang) = Lang::parse(tag) {
                if best.is_none_or(|(bq, _)| q > bq) {
                    best = Some((q, lang));
                }
            }
        }
        best.map_or(Lang::Id, |(_, l)| l)
    }

    fn parse(tag: &str) -> Option<Lang> {
        let primary = tag.split(['-', '_']).next().unwrap_or("").to_ascii_lowercase();
        match primary.as_str() {
            "id" | "in" => Some(Lang::Id),
            "en" => Some(Lang::English),
            _ => None,
        }
    }

    /// The `lang` attribute of the page.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Id => "id",
            Lang::English => "en",
        }
    }

    /// A sentence in this language.
    pub fn t(self, m: Msg) -> &'static str {
        let (id, en) = m.texts();
        match self {
            Lang::Id => id,
            Lang::English => en,
        }
    }
}

/// Every sentence on the page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Msg {
    Title,
    Sensors,
    Sensor,
    Value,
    LastSeen,
    State,
    Never,
    StateOk,
    StateDisconnected,
    StateFailing,
    StateStarting,
    Link,
    LinkConnected,
    LinkDisconnected,
    LinkOff,
    Waiting,
    OldestWaiting,
    Nothing,
    Version,
    NewPorts,
    NewPortsHint,
    NoSensors,
    ProbeButton,
    Probing,
    ProbeSent,
    ProbeQueued,
    ProbeNotSent,
    ProbeNothing,
    Updated,
    OtherLanguage,
}

impl Msg {
    fn texts(self) -> (&'static str, &'static str) {
        match self {
            Msg::Title => ("Status Kotak Simpul", "Simpul box status"),
            Msg::Sensors => ("Sensor", "Sensors"),
            Msg::Sensor => ("Sensor", "Sensor"),
            Msg::Value => ("Nilai terakhir", "Last value"),
            Msg::LastSeen => ("Terakhir terbaca", "Last seen"),
            Msg::State => ("Keadaan", "State"),
            Msg::Never => ("belum pernah", "never"),
            Msg::StateOk => ("Normal", "Working"),
            Msg::StateDisconnected => (
                "Tidak terhubung. Periksa kabel dan colokan USB sensor.",
                "Not connected. Check the sensor's cable and USB plug.",
            ),
            Msg::StateFailing => (
                "Terhubung, tetapi datanya rusak atau sensor tidak menjawab. Periksa kabel dan pengaturan sensor.",
                "Connected, but its data is garbled or it does not answer. Check the cable and the sensor's settings.",
            ),
            Msg::StateStarting => ("Sedang dimulai", "Starting"),
            Msg::Link => ("Sambungan ke pusat", "Link to the command centre"),
            Msg::LinkConnected => ("Terhubung", "Connected"),
            Msg::LinkDisconnected => (
                "Terputus. Data disimpan di kotak ini dan dikirim saat sambungan kembali.",
                "Down. Readings are kept in this box and sent when the link is back.",
            ),
            Msg::LinkOff => ("Tidak dipakai (pengiriman dimatikan)", "Not used (sending is switched off)"),
            Msg::Waiting => ("Data menunggu dikirim", "Readings waiting to be sent"),
            Msg::OldestWaiting => ("Yang tertua sejak", "The oldest since"),
            Msg::Nothing => ("tidak ada", "none"),
            Msg::Version => ("Versi", "Version"),
            Msg::NewPorts => ("Sensor baru tercolok", "Newly plugged-in sensors"),
            Msg::NewPortsHint => (
                "Port ini tercolok tetapi belum diatur. Petugas pusat dapat menambahkannya.",
                "These ports are plugged in but not set up yet. The command centre can add them.",
            ),
            Msg::NoSensors => ("Belum ada sensor yang diatur.", "No sensors are set up yet."),
            Msg::ProbeButton => ("Periksa dan usulkan ke pusat", "Probe and propose to the command centre"),
            Msg::Probing => (
                "Sedang memeriksa sensor ini (bisa sampai setengah menit)...",
                "Probing this sensor (this can take up to half a minute)...",
            ),
            Msg::ProbeSent => (
                "Sensor dikenali dan usulan sudah dikirim ke pusat:",
                "Sensor recognised and the proposal was sent to the command centre:",
            ),
            Msg::ProbeQueued => (
                "Sensor dikenali. Sambungan ke pusat sedang terputus; usulan dikirim saat sambungan kembali:",
                "Sensor recognised. The link to the command centre is down; the proposal is sent when it is back:",
            ),
            Msg::ProbeNotSent => (
                "Sensor dikenali, tetapi pengiriman ke pusat dimatikan. Sampaikan ini ke petugas pusat:",
                "Sensor recognised, but sending to the command centre is switched off. Tell the command centre:",
            ),
            Msg::ProbeNothing => (
                "Tidak ada sensor yang dikenali. Periksa kabel dan daya sensor, lalu coba lagi.",
                "Nothing recognised. Check the sensor's cable and power, then try again.",
            ),
            Msg::Updated => ("Diperbarui", "Updated"),
            Msg::OtherLanguage => ("English", "Bahasa Indonesia"),
        }
    }
}

/// The site's time zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Zone {
    /// Western Indonesia, UTC+7 (Sumatra, Java, West and Central Kalimantan).
    #[default]
    #[serde(rename = "WIB")]
    Wib,
    /// Central Indonesia, UTC+8 (Bali, Nusa Tenggara, Sulawesi, ...).
    #[serde(rename = "WITA")]
    Wita,
    /// Eastern Indonesia, UTC+9 (Maluku, Papua).
    #[serde(rename = "WIT")]
    Wit,
}

impl Zone {
    fn offset_hours(self) -> i32 {
        match self {
            Zone::Wib => 7,
            Zone::Wita => 8,
            Zone::Wit => 9,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Zone::Wib => "WIB",
            Zone::Wita => "WITA",
            Zone::Wit => "WIT",
        }
    }

    /// `23/11/2026 14:05:09 WIB` for a UTC time in ms since the epoch.
    pub fn format(self, utc_ms: i64) -> String {
        let local = FixedOffset::east_opt(self.offset_hours() * 3600)
            .and_then(|tz| DateTime::from_timestamp_millis(utc_ms).map(|t| t.with_timezone(&tz)));
        match local {
            Some(t) => format!("{} {}", t.format("%d/%m/%Y %H:%M:%S"), self.name()),
            None => "?".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bahasa_indonesia_unless_english_is_asked_for() {
        assert_eq!(Lang::choose(None, None), Lang::Id);
        assert_eq!(Lang::choose(None, Some("en-US,en;q=0.9")), Lang::English);
        assert_eq!(Lang::choose(None, Some("id-ID,id;q=0.9,en;q=0.8")), Lang::Id);
        assert_eq!(Lang::choose(None, Some("fr-FR, en;q=0.5")), Lang::English);
        assert_eq!(Lang::choose(None, Some("fr-FR")), Lang::Id);
        assert_eq!(Lang::choose(Some("id"), Some("en")), Lang::Id);
        assert_eq!(Lang::choose(Some("en"), None), Lang::English);
        assert_eq!(Lang::choose(Some("xx"), Some(";;q=,,")), Lang::Id);
    }

    #[test]
    fn times_show_in_the_sites_zone() {
        // 2026-11-23 07:05:09 UTC.
        let t = 1_795_417_509_000;
        assert_eq!(Zone::Wib.format(t), "23/11/2026 14:05:09 WIB");
        assert_eq!(Zone::Wita.format(t), "23/11/2026 15:05:09 WITA");
        assert_eq!(Zone::Wit.format(t), "23/11/2026 16:05:09 WIT");
    }
}
