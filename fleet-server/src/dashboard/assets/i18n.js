// Words of the dashboard in Bahasa Indonesia (the default) and English, and times in the
// site's zone (WIB, WITA or WIT from /dashboard/settings.json; the API is UTC).
"use strict";

const WORDS = {
  id: {
    "lang.switch": "English",
    "nav.fleet": "Semua perangkat",
    "nav.logout": "Keluar",
    "login.title": "Masuk ke Simpul",
    "login.username": "Nama pengguna",
    "login.password": "Kata sandi",
    "login.submit": "Masuk",
    "login.wrong": "Nama pengguna atau kata sandi salah.",
    "login.failed": "Tidak bisa masuk: {0}",
    "fleet.title": "Perangkat di lapangan",
    "fleet.summary": "{0} dari {1} terhubung",
    "fleet.empty": "Belum ada perangkat yang mengirim data.",
    "col.device": "Perangkat",
    "col.state": "Keadaan",
    "col.last_seen": "Terakhir terdengar",
    "col.version": "Versi",
    "col.buffer": "Antrean",
    "col.alerts": "Perlu dilihat",
    "state.online": "Terhubung",
    "state.offline": "Terputus",
    "never": "belum pernah",
    "unknown": "tidak diketahui",
    "alert.stale_data": "Data terlambat",
    "alert.growing_buffer": "Antrean menumpuk",
    "alert.heat": "Terlalu panas",
    "alert.throttling": "Daya/suhu dibatasi",
    "alert.sensor_errors": "Sensor bermasalah",
    "alert.water_level": "Air tinggi",
    "ago.s": "{0} detik lalu",
    "ago.m": "{0} menit lalu",
    "ago.h": "{0} jam lalu",
    "ago.d": "{0} hari lalu",
    "device.back": "← Semua perangkat",
    "device.charts": "Grafik sensor",
    "device.no_readings": "Belum ada bacaan pada rentang waktu ini.",
    "device.health": "Kesehatan kotak",
    "device.events": "Kejadian",
    "device.no_events": "Belum ada kejadian.",
    "device.config": "Konfigurasi",
    "device.no_config": "Belum ada konfigurasi dari pusat.",
    "device.history": "Riwayat kesehatan",
    "range.1h": "1 jam", "range.6h": "6 jam", "range.24h": "24 jam", "range.7d": "7 hari",
    "h.version": "Versi", "h.uptime": "Menyala selama", "h.buffer": "Bacaan menunggu dikirim",
    "h.oldest": "Bacaan tertua belum terkirim", "h.temp": "Suhu prosesor", "h.throttled": "Daya/suhu dibatasi",
    "h.sensors": "Sensor", "h.config": "Versi konfigurasi", "h.received": "Detak terakhir",
    "h.disk": "Sisa disk", "h.memory": "Memori terpakai", "h.link": "Sambungan",
    "yes": "ya", "no": "tidak",
    "sensor.ok": "baik", "sensor.disconnected": "tercabut", "sensor.failing": "gagal membaca", "sensor.unknown": "tidak diketahui",
    "h.cameras": "Kamera", "camera.ok": "menyala", "camera.unauthorized": "menolak kata sandinya",
    "camera.unreachable": "tidak terjangkau", "camera.unsupported": "videonya bukan H.264/H.265", "camera.unknown": "belum diperiksa",
    "cfg.desired": "Versi yang diminta", "cfg.reported": "Yang dijalankan kotak", "cfg.group": "Kelompok",
    "cfg.running_latest": "Kotak menjalankan versi terbaru", "cfg.not_latest": "Kotak belum menjalankan versi terbaru",
    "cfg.history": "Riwayat versi", "cfg.by": "oleh {0}",
    "cfg.state.applied": "diterapkan", "cfg.state.rejected": "ditolak", "cfg.state.rolled_back": "dibatalkan otomatis", "cfg.state.unknown": "tidak diketahui",
    "prop.accept": "Terima ke konfigurasi", "prop.accepted": "Diterima sebagai {0} (versi {1})",
    "prop.ops_only": "Hanya operator (ops) yang boleh menerima.",
    "ev.sensor_proposed": "Sensor baru terpasang", "ev.config_rolled_back": "Konfigurasi dibatalkan",
    "ev.sensor_disconnected": "Sensor tercabut", "ev.sensor_connected": "Sensor tersambung lagi",
    "ev.buffer_evicted": "Bacaan lama dibuang (disk penuh)", "ev.unknown": "Kejadian lain",
    "chart.min": "terendah", "chart.max": "tertinggi", "chart.avg": "rata-rata", "chart.n": "{0} bacaan",
    "chart.limit": "batas",
    "error.load": "Gagal memuat data: {0}",
    "cam.nav": "Kamera", "cam.page": "Kamera per kantor", "cam.none": "Belum ada kotak yang melaporkan kamera.", "cam.none_box": "Kotak ini tidak melaporkan kamera.",
    "cam.no_tunnel": "kotak tidak terhubung", "cam.viewers": "{0} menonton", "cam.snapshot_failed": "gambar tidak didapat",
    "cam.connecting": "Menghubungkan ke kamera…", "cam.playing": "Siaran langsung", "cam.ended": "Siaran terhenti; menyambung lagi…",
    "cam.failed": "Gagal: {0}; mencoba lagi…", "cam.unsupported": "Peramban ini tidak bisa memutar video {0}. Buka di VLC atau VMS dengan alamat di bawah.",
    "cam.rtsp": "Di VLC atau VMS:", "cam.back": "← Semua kamera",
    "ro.nav": "Pembaruan", "ro.page": "Pembaruan perangkat lunak bertahap", "ro.none": "Belum ada pembaruan bertahap.",
    "ro.title": "Pembaruan {0}: versi {1}", "ro.all_devices": "semua perangkat",
    "ro.spec": "{0}; {1} kotak uji dulu, lalu {2} %; gerbang kesehatan {3}; berhenti bila lebih dari {4} % gagal",
    "ro.started": "dimulai {0} oleh {1}",
    "ro.state.running": "berjalan", "ro.state.paused": "berhenti sementara", "ro.state.aborted": "dibatalkan", "ro.state.done": "selesai",
    "ro.canary": "Kotak uji", "ro.wave": "Gelombang {0}",
    "ro.col.wave": "Gelombang", "ro.col.devices": "Kotak", "ro.col.pending": "Menunggu", "ro.col.ordered": "Diperintah",
    "ro.col.updated": "Sudah versi baru", "ro.col.succeeded": "Berhasil", "ro.col.failed": "Gagal",
    "ro.col.rolled_back": "Kembali ke versi lama", "ro.col.unreachable": "Tak terjangkau", "ro.col.withdrawn": "Ditarik",
    "ro.pause": "Hentikan sementara", "ro.resume": "Lanjutkan", "ro.abort": "Batalkan", "ro.abort_confirm": "Klik lagi untuk membatalkan",
    "loading": "Memuat…",
  },
  en: {
    "lang.switch": "Bahasa Indonesia",
    "nav.fleet": "All devices",
    "nav.logout": "Log out",
    "login.title": "Log in to Simpul",
    "login.username": "User name",
    "login.password": "Password",
    "login.submit": "Log in",
    "login.wrong": "Wrong user name or password.",
    "login.failed": "Could not log in: {0}",
    "fleet.title": "Devices in the field",
    "fleet.summary": "{0} of {1} online",
    "fleet.empty": "No device has sent anything yet.",
    "col.device": "Device",
    "col.state": "State",
    "col.last_seen": "Last heard",
    "col.version": "Version",
    "col.buffer": "Waiting",
    "col.alerts": "Needs a look",
    "state.online": "Online",
    "state.offline": "Offline",
    "never": "never",
    "unknown": "unknown",
    "alert.stale_data": "Stale data",
    "alert.growing_buffer": "Buffer growing",
    "alert.heat": "Too hot",
    "alert.throttling": "Throttled",
    "alert.sensor_errors": "Sensor errors",
    "alert.water_level": "High water",
    "ago.s": "{0} s ago",
    "ago.m": "{0} min ago",
    "ago.h": "{0} h ago",
    "ago.d": "{0} days ago",
    "device.back": "← All devices",
    "device.charts": "Sensor charts",
    "device.no_readings": "No readings in this time range.",
    "device.health": "Box health",
    "device.events": "Events",
    "device.no_events": "No events yet.",
    "device.config": "Configuration",
    "device.no_config": "No configuration from the fleet yet.",
    "device.history": "Health history",
    "range.1h": "1 hour", "range.6h": "6 hours", "range.24h": "24 hours", "range.7d": "7 days",
    "h.version": "Version", "h.uptime": "Up for", "h.buffer": "Readings waiting to send",
    "h.oldest": "Oldest unsent reading", "h.temp": "CPU temperature", "h.throttled": "Throttled",
    "h.sensors": "Sensors", "h.config": "Config version", "h.received": "Last heartbeat",
    "h.disk": "Disk free", "h.memory": "Memory used", "h.link": "Link",
    "yes": "yes", "no": "no",
    "sensor.ok": "ok", "sensor.disconnected": "unplugged", "sensor.failing": "failing", "sensor.unknown": "unknown",
    "h.cameras": "Cameras", "camera.ok": "ok", "camera.unauthorized": "refuses its password",
    "camera.unreachable": "unreachable", "camera.unsupported": "video is not H.264/H.265", "camera.unknown": "not checked yet",
    "cfg.desired": "Requested version", "cfg.reported": "What the box runs", "cfg.group": "Group",
    "cfg.running_latest": "The box runs the latest version", "cfg.not_latest": "The box does not run the latest version yet",
    "cfg.history": "Version history", "cfg.by": "by {0}",
    "cfg.state.applied": "applied", "cfg.state.rejected": "rejected", "cfg.state.rolled_back": "rolled back by the box", "cfg.state.unknown": "unknown",
    "prop.accept": "Accept into the config", "prop.accepted": "Accepted as {0} (version {1})",
    "prop.ops_only": "Only operators (ops) may accept.",
    "ev.sensor_proposed": "New sensor plugged in", "ev.config_rolled_back": "Config rolled back",
    "ev.sensor_disconnected": "Sensor unplugged", "ev.sensor_connected": "Sensor back",
    "ev.buffer_evicted": "Old readings dropped (disk full)", "ev.unknown": "Other event",
    "chart.min": "lowest", "chart.max": "highest", "chart.avg": "average", "chart.n": "{0} readings",
    "chart.limit": "limit",
    "error.load": "Could not load: {0}",
    "cam.nav": "Cameras", "cam.page": "Cameras by site", "cam.none": "No box reports a camera yet.", "cam.none_box": "This box reports no camera.",
    "cam.no_tunnel": "box not connected", "cam.viewers": "{0} watching", "cam.snapshot_failed": "no picture",
    "cam.connecting": "Connecting to the camera…", "cam.playing": "Live", "cam.ended": "The stream stopped; reconnecting…",
    "cam.failed": "Failed: {0}; trying again…", "cam.unsupported": "This browser cannot play {0} video. Open it in VLC or a VMS at the address below.",
    "cam.rtsp": "In VLC or a VMS:", "cam.back": "← All cameras",
    "ro.nav": "Updates", "ro.page": "Software rollouts", "ro.none": "No rollouts yet.",
    "ro.title": "Rollout {0}: version {1}", "ro.all_devices": "all devices",
    "ro.spec": "{0}; {1} canaries first, then {2} %; health gate {3}; pauses when more than {4} % fail",
    "ro.started": "started {0} by {1}",
    "ro.state.running": "running", "ro.state.paused": "paused", "ro.state.aborted": "aborted", "ro.state.done": "done",
    "ro.canary": "Canaries", "ro.wave": "Wave {0}",
    "ro.col.wave": "Wave", "ro.col.devices": "Boxes", "ro.col.pending": "Pending", "ro.col.ordered": "Ordered",
    "ro.col.updated": "On new version", "ro.col.succeeded": "Succeeded", "ro.col.failed": "Failed",
    "ro.col.rolled_back": "Rolled back", "ro.col.unreachable": "Unreachable", "ro.col.withdrawn": "Withdrawn",
    "ro.pause": "Pause", "ro.resume": "Resume", "ro.abort": "Abort", "ro.abort_confirm": "Click again to abort",
    "loading": "Loading…",
  },
};

const MONTHS = {
  id: ["Jan", "Feb", "Mar", "Apr", "Mei", "Jun", "Jul", "Agu", "Sep", "Okt", "Nov", "Des"],
  en: ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"],
};

const LANG_KEY = "simpul.lang";

/** The language: the switch's stored choice, else the browser's (English only if it asks), else Indonesian. */
function currentLang() {
  const stored = localStorage.getItem(LANG_KEY);
  if (stored === "id" || stored === "en") return stored;
  const nav = (navigator.language || "id").toLowerCase();
  return nav.startsWith("en") ? "en" : "id";
}

function setLang(lang) {
  localStorage.setItem(LANG_KEY, lang);
}

/** A word in the current language, with {0}, {1}... filled in. */
function t(key, ...args) {
  const words = WORDS[currentLang()];
  let s = key in words ? words[key] : (WORDS.id[key] || key);
  args.forEach((a, i) => { s = s.replace("{" + i + "}", String(a)); });
  return s;
}

/** The site's zone; replaced by /dashboard/settings.json at start. */
const SITE = { timezone: "WIB", utc_offset_minutes: 420 };

function pad2(n) { return String(n).padStart(2, "0"); }

/** `ms` (UTC, since the epoch) as the site's wall time: "18 Nov 2026 18:06:41 WIB". */
function fmtTime(ms, withSeconds = true) {
  if (ms === null || ms === undefined) return t("never");
  const d = new Date(ms + SITE.utc_offset_minutes * 60000);
  const day = d.getUTCDate() + " " + MONTHS[currentLang()][d.getUTCMonth()] + " " + d.getUTCFullYear();
  const time = pad2(d.getUTCHours()) + ":" + pad2(d.getUTCMinutes()) + (withSeconds ? ":" + pad2(d.getUTCSeconds()) : "");
  return day + " " + time + " " + SITE.timezone;
}

/** Hours and minutes only, for chart axes: "18:06". */
function fmtClock(ms) {
  const d = new Date(ms + SITE.utc_offset_minutes * 60000);
  return pad2(d.getUTCHours()) + ":" + pad2(d.getUTCMinutes());
}

/** How long ago `ms` was, in plain words. */
function fmtAgo(ms, nowMs = Date.now()) {
  if (ms === null || ms === undefined) return t("never");
  const s = Math.max(0, Math.round((nowMs - ms) / 1000));
  if (s < 90) return t("ago.s", s);
  if (s < 90 * 60) return t("ago.m", Math.round(s / 60));
  if (s < 36 * 3600) return t("ago.h", Math.round(s / 3600));
  return t("ago.d", Math.round(s / 86400));
}

/** A duration in seconds, in plain words. */
function fmtDuration(s) {
  if (s === null || s === undefined) return t("unknown");
  if (s < 90) return s + (currentLang() === "id" ? " detik" : " s");
  if (s < 90 * 60) return Math.round(s / 60) + (currentLang() === "id" ? " menit" : " min");
  if (s < 48 * 3600) return Math.round(s / 3600) + (currentLang() === "id" ? " jam" : " h");
  return Math.round(s / 86400) + (currentLang() === "id" ? " hari" : " days");
}

/** A number in the language's style (Indonesian: comma for decimals). */
function fmtNum(v, digits) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  const locale = currentLang() === "id" ? "id-ID" : "en-GB";
  const opts = digits === undefined ? { maximumFractionDigits: 2 } : { minimumFractionDigits: digits, maximumFractionDigits: digits };
  return Number(v).toLocaleString(locale, opts);
}
