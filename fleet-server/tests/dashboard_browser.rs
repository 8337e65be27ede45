//! The ops dashboard in a real browser: headless Chromium driven over WebDriver
//! (chromedriver, Debian's `chromium-driver`), against the fleet with its embedded broker
//! and a device that publishes heartbeats and readings. Skipped, saying so, when
//! chromedriver is not installed (scripts/test installs it).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use fantoccini::Locator;
use rumqttc::{AsyncClient, LastWill, MqttOptions, QoS};
use simpul_fleet::protocol::control::{
    CameraHealth, CameraState, ControlMessage, Event, Heartbeat, SensorHealth, SensorState, Status,
};
use simpul_fleet::protocol::{BootId, Channel, DeviceId, Reading, ReadingBatch, ReadingTime, Topic};
use simpul_tests::browser::{Browser, WAIT};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const DEVICE: &str = "kel-browser";
const PASSWORD: &str = "olga's long password";

/// A device on the embedded broker as the agent connects: its name as client id, a retained
/// "offline" last will, "online" on connect, a heartbeat a second.
struct Device {
    client: AsyncClient,
    poll: JoinHandle<()>,
    beats: JoinHandle<()>,
}

impl Device {
    async fn connect(broker: SocketAddr, level: f64) -> Device {
        let device = DeviceId::new(DEVICE).unwrap();
        let status = |online| Status { online, version: Some("0.9.0-test".into()), boot_id: None }.to_json().unwrap();
        let status_topic = Topic::new(device.clone(), Channel::Status).name();
        let mut opts = MqttOptions::new(DEVICE, broker.ip().to_string(), broker.port());
        opts.set_keep_alive(Duration::from_secs(5));
        opts.set_last_will(LastWill::new(status_topic.clone(), status(false), QoS::AtLeastOnce, true));
        let (client, mut eventloop) = AsyncClient::new(opts, 64);
        let poll = tokio::spawn(async move {
            loop {
                if eventloop.poll().await.is_err() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
        client.publish(status_topic, QoS::AtLeastOnce, true, status(true)).await.unwrap();
        let beats = {
            let client = client.clone();
            let topic = Topic::new(device, Channel::Heartbeat).name();
            tokio::spawn(async move {
                let started = tokio::time::Instant::now();
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tick.tick().await;
                    let sensor = SensorHealth {
                        state: SensorState::Ok,
                        last_values: [("level".to_owned(), level)].into(),
                        ..SensorHealth::default()
                    };
                    let hb = Heartbeat {
                        version: "0.9.0-test".into(),
                        uptime_s: started.elapsed().as_secs(),
                        buffer_depth: Some(0),
                        sensors: [("sungai".to_owned(), sensor)].into(),
                        cameras: [("gate".to_owned(), refused_camera())].into(),
                        ..Heartbeat::default()
                    };
                    let _ = client.publish(topic.clone(), QoS::AtMostOnce, false, hb.to_json().unwrap()).await;
                }
            })
        };
        Device { client, poll, beats }
    }

    async fn publish(&self, batch: &ReadingBatch) {
        let topic = Topic::new(DeviceId::new(DEVICE).unwrap(), Channel::Readings).name();
        self.client.publish(topic, QoS::AtLeastOnce, false, batch.encode()).await.unwrap();
    }

    /// Staff plugged in a rain gauge and pressed "propose" on the box's status page.
    async fn propose(&self) {
        let event = Event::SensorProposed {
            port: "/dev/ttyUSB1".to_owned(),
            toml: "[sensors.usb1]\nkind = \"ascii\"\nformat = \"number\"\nport = { path = \"/dev/ttyUSB1\", baud = 9600 }\n"
                .to_owned(),
            summary: "ASCII numbers at 9600 baud".to_owned(),
        };
        let topic = Topic::new(DeviceId::new(DEVICE).unwrap(), Channel::Events).name();
        self.client.publish(topic, QoS::AtLeastOnce, false, event.to_json().unwrap()).await.unwrap();
    }

    /// Loses power: no more heartbeats, the TCP connection dropped without a DISCONNECT, so
    /// the broker publishes the last will.
    fn die(self) {
        self.beats.abort();
        self.poll.abort();
    }
}

/// Readings of the last few whole minutes, one every 5 s, with uneven values.
/// A camera whose box has the wrong password for it, as the agent reports it.
fn refused_camera() -> CameraHealth {
    CameraHealth {
        state: CameraState::Unauthorized,
        reachable: true,
        error: Some("the camera refused the configured username and password".to_owned()),
        ..CameraHealth::default()
    }
}

fn readings(now_ms: i64) -> Vec<Reading> {
    let start = (now_ms / 60_000 - 4) * 60_000;
    (1..=36u64)
        .map(|seq| Reading {
            seq,
            sensor: "sungai".into(),
            metric: "level".into(),
            unit: "cm".into(),
            value: 80.0 + ((seq * 7) % 13) as f64 * 0.5,
            time: ReadingTime {
                wall_ms: start + seq as i64 * 5_000,
                synced: true,
                boot_id: BootId([3; 16]),
                mono_ms: seq * 5_000,
            },
        })
        .collect()
}

/// What a chart must show for `readings`: per minute, (n, min, max, avg).
fn per_minute(readings: &[Reading]) -> BTreeMap<i64, (u64, f64, f64, f64)> {
    let mut m: BTreeMap<i64, (u64, f64, f64, f64)> = BTreeMap::new();
    for r in readings {
        let e = m.entry(r.time.wall_ms.div_euclid(60_000) * 60_000).or_insert((0, f64::MAX, f64::MIN, 0.0));
        e.0 += 1;
        e.1 = e.1.min(r.value);
        e.2 = e.2.max(r.value);
        e.3 += r.value;
    }
    m.values_mut().for_each(|e| e.3 /= e.0 as f64);
    m
}

fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("fleet.toml");
    let text = format!(
        "[broker]\nlisten = \"127.0.0.1:0\"\n\n[store]\npath = \"{}\"\ncommit_interval = \"20ms\"\n\n\
         [api]\nlisten = \"127.0.0.1:0\"\n\n[health]\noffline_after = \"3s\"\n\n\
         [alerts]\nlevel_thresholds = {{ \"{DEVICE}/sungai\" = 100.0 }}\n\n[dashboard]\ntimezone = \"WITA\"\n{extra}",
        dir.join("fleet.db").display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// `simpul-fleet users add olga --role ops --password-stdin --offline`, as an operator does
/// before the first start.
fn add_user_offline(config: &Path) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_simpul-fleet"))
        .args(["users", "add", "olga", "--role", "ops", "--password-stdin", "--offline", "--config"])
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{PASSWORD}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "users add: {}", String::from_utf8_lossy(&out.stderr));
}

fn row(online: bool) -> String {
    format!("tr.device-row[data-device=\"{DEVICE}\"][data-online=\"{online}\"]")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_logs_in_sees_a_device_go_offline_and_back_its_chart_shows_the_readings_sent_and_accepts_a_proposal()
 {
    let Some(b) = Browser::start().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let config_path = write_config(dir.path(), "");
    add_user_offline(&config_path);
    let config = simpul_fleet::config::load(&config_path).unwrap();
    let shutdown = CancellationToken::new();
    let fleet = simpul_fleet::start(config, shutdown.clone()).await.unwrap();
    tokio::time::timeout(WAIT, fleet.ingest_ready.cancelled()).await.expect("fleet subscribed");
    let broker = fleet.broker_addr.expect("the embedded broker");
    let base = format!("http://{}", fleet.api_addr);

    let device = Device::connect(broker, 120.0).await;
    let sent = readings(simpul_fleet::ingest::now_ms());
    device.publish(&ReadingBatch { readings: sent.clone(), dropped: vec![] }).await;

    let c = &b.client;
    // `/` leads to the dashboard, which asks for a login; the page speaks Indonesian when asked.
    c.goto(&format!("{base}/")).await.unwrap();
    b.wait_for("#login-form").await;
    assert_eq!(b.wait_for("#login-submit").await.text().await.unwrap(), "Log in", "an English browser gets English");
    c.execute("localStorage.setItem('simpul.lang', 'id')", vec![]).await.unwrap();
    c.refresh().await.unwrap();
    assert_eq!(b.wait_for("#login-submit").await.text().await.unwrap(), "Masuk");

    // A wrong password is refused in plain words; the right one logs in.
    b.wait_for("#username").await.send_keys("olga").await.unwrap();
    b.wait_for("#password").await.send_keys("not the password").await.unwrap();
    b.wait_for("#login-submit").await.click().await.unwrap();
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::XPath("//p[@id='login-error' and contains(., 'salah')]"))
        .await
        .expect("a wrong password is said so");
    let password = b.wait_for("#password").await;
    password.clear().await.unwrap();
    password.send_keys(PASSWORD).await.unwrap();
    b.wait_for("#login-submit").await.click().await.unwrap();

    // The device is in the list, online, with its water level over the threshold.
    let online = b.wait_for(&row(true)).await;
    assert_eq!(online.find(Locator::Css(".state")).await.unwrap().text().await.unwrap(), "Terhubung");
    online.find(Locator::Css("[data-alert=\"water_level\"]")).await.expect("the water level alert");
    assert!(online.text().await.unwrap().contains("0.9.0-test"));
    b.screenshot("fleet").await;

    // It loses power: the last will and the missing heartbeats turn it offline...
    device.die();
    let offline = b.wait_for(&row(false)).await;
    assert_eq!(offline.find(Locator::Css(".state")).await.unwrap().text().await.unwrap(), "Terputus");
    b.screenshot("fleet-offline").await;
    // ...and it comes back.
    let device = Device::connect(broker, 90.0).await;
    b.wait_for(&row(true)).await;

    // Its page: the chart's points are the readings sent, per minute.
    b.wait_for(&format!("{} a", row(true))).await.click().await.unwrap();
    b.wait_for("svg[data-series=\"sungai/level\"] circle.pt").await;
    let head = b.wait_for("#device-head p").await.text().await.unwrap();
    assert!(head.contains("WITA"), "times in the site's zone: {head}");
    // The box's camera that refuses its password says so in words.
    let camera = b.wait_for("[data-camera=\"gate\"][data-state=\"unauthorized\"]").await.text().await.unwrap();
    assert!(camera.contains("menolak kata sandinya"), "the camera's state in plain words: {camera}");
    b.screenshot("device").await;
    let mut shown = BTreeMap::new();
    for dot in c.find_all(Locator::Css("svg[data-series=\"sungai/level\"] circle.pt")).await.unwrap() {
        let attr = |name: &'static str| {
            let dot = dot.clone();
            async move { dot.attr(name).await.unwrap().unwrap_or_else(|| panic!("{name} on a dot")) }
        };
        let minute: i64 = attr("data-minute-ms").await.parse().unwrap();
        let n: u64 = attr("data-n").await.parse().unwrap();
        let min: f64 = attr("data-min").await.parse().unwrap();
        let max: f64 = attr("data-max").await.parse().unwrap();
        let avg: f64 = attr("data-avg").await.parse().unwrap();
        shown.insert(minute, (n, min, max, avg));
    }
    let expected = per_minute(&sent);
    assert_eq!(shown.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>(), "one dot per minute sent");
    for (minute, (n, min, max, avg)) in &expected {
        let (sn, smin, smax, savg) = shown[minute];
        assert_eq!(sn, *n, "minute {minute}");
        for (got, want) in [(smin, *min), (smax, *max), (savg, *avg)] {
            assert!((got - want).abs() < 1e-9, "minute {minute}: shown {got}, sent {want}");
        }
    }

    // The box proposes a sensor; one click takes it into the device's desired config.
    device.propose().await;
    b.wait_for("#events-table button.accept[data-proposal]").await.click().await.unwrap();
    let accepted = b.wait_for("#events-table .accepted").await.text().await.unwrap();
    assert!(accepted.contains("usb1") && accepted.contains("1"), "{accepted}");
    let desired = b.wait_for("#config pre.toml").await.text().await.unwrap();
    assert!(desired.contains("[sensors.usb1]"), "the desired config shows the sensor: {desired}");
    b.screenshot("proposal-accepted").await;

    b.close().await;
    device.die();
    shutdown.cancel();
    tokio::time::timeout(WAIT, fleet.wait()).await.expect("the fleet stops");
}

/// The count the rollout card shows for `column` in `wave`.
async fn wave_count(b: &Browser, wave: u32, column: &str) -> String {
    b.wait_for(&format!("section.rollout tr[data-wave=\"{wave}\"] td[data-count=\"{column}\"]"))
        .await
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_follows_a_rollout_per_wave_and_pauses_resumes_and_aborts_it_in_the_browser() {
    let Some(b) = Browser::start().await else { return };
    let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
    let extra = format!(
        "\n[releases]\nkeys = [\"{}\"]\n\n[rollouts]\ntick = \"100ms\"\n",
        hex::encode(key.verifying_key().as_bytes())
    );
    let dir = tempfile::tempdir().unwrap();
    let config_path = write_config(dir.path(), &extra);
    add_user_offline(&config_path);
    let config = simpul_fleet::config::load(&config_path).unwrap();
    let shutdown = CancellationToken::new();
    let fleet = simpul_fleet::start(config, shutdown.clone()).await.unwrap();
    tokio::time::timeout(WAIT, fleet.ingest_ready.cancelled()).await.expect("fleet subscribed");
    let base = format!("http://{}", fleet.api_addr);
    let device = Device::connect(fleet.broker_addr.expect("the embedded broker"), 50.0).await;

    // Ops publish a release and start a rollout to the one box, over the API.
    let store = simpul_fleet::store::sqlite::SqliteAuthStore::open(&dir.path().join("fleet.db")).unwrap();
    let now = simpul_fleet::auth::now_ms();
    let ops = simpul_fleet::auth::ops::create_token(&store, "tests", simpul_fleet::auth::Role::Ops, now).unwrap().token;
    let http = reqwest::Client::new();
    let binary = b"\x7fELF the agent 1.0.0".to_vec();
    let target = "aarch64-unknown-linux-gnu";
    let signed = simpul_fleet::protocol::release::Manifest::of(&binary, "1.0.0", target).unwrap().sign(&key);
    let published = http
        .put(format!("{base}/api/v1/releases/1.0.0/{target}"))
        .bearer_auth(&ops)
        .header("simpul-release-signature", serde_json::to_string(&signed).unwrap())
        .body(binary)
        .send()
        .await
        .unwrap();
    assert_eq!(published.status().as_u16(), 201);
    let deadline = tokio::time::Instant::now() + WAIT;
    let started = loop {
        let spec = serde_json::json!({"version": "1.0.0", "canary": 1, "waves": [100]});
        let resp = http.post(format!("{base}/api/v1/rollouts")).bearer_auth(&ops).json(&spec).send().await.unwrap();
        // 409 until the box's first heartbeat is stored.
        if resp.status().as_u16() == 201 || tokio::time::Instant::now() > deadline {
            break resp.status().as_u16();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(started, 201);

    let c = &b.client;
    b.log_in(&base, "olga", PASSWORD).await;
    b.wait_for("#nav-rollouts").await.click().await.unwrap();
    b.wait_for("section.rollout[data-state=\"running\"]").await;
    assert_eq!(wave_count(&b, 0, "ordered").await, "1", "the canary is ordered");
    let title = b.wait_for("section.rollout h2").await.text().await.unwrap();
    assert!(title.contains("1.0.0") && title.contains("running"), "{title}");
    b.screenshot("rollout-running").await;

    b.wait_for("section.rollout button.pause").await.click().await.unwrap();
    let reason = b.wait_for("section.rollout[data-state=\"paused\"] p.reason").await.text().await.unwrap();
    assert!(reason.contains("paused by olga"), "{reason}");
    b.wait_for("section.rollout button.resume").await.click().await.unwrap();
    b.wait_for("section.rollout[data-state=\"running\"]").await;

    // Abort asks once more.
    b.wait_for("section.rollout button.abort").await.click().await.unwrap();
    b.wait_for("section.rollout button.abort.armed").await.click().await.unwrap();
    b.wait_for("section.rollout[data-state=\"aborted\"]").await;
    assert_eq!(wave_count(&b, 0, "withdrawn").await, "1", "the canary's order was taken back");
    assert!(c.find(Locator::Css("section.rollout .actions")).await.is_err(), "nothing more to do on an aborted one");
    b.screenshot("rollout-aborted").await;

    b.close().await;
    device.die();
    shutdown.cancel();
    tokio::time::timeout(WAIT, fleet.wait()).await.expect("the fleet stops");
}
