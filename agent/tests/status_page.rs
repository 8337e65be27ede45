//! The kelurahan staff's status page over real HTTP: live sensor values, the link, what
//! waits in the buffer, a newly plugged-in port, two languages, and no secret.

use std::time::Duration;

use simpul_tests::mosquitto::{free_port, wait_until_accepting};
use tokio_util::sync::CancellationToken;

async fn get(addr: std::net::SocketAddr, path: &str, lang: Option<&str>) -> String {
    let mut req = reqwest::Client::new().get(format!("http://{addr}{path}"));
    if let Some(l) = lang {
        req = req.header("Accept-Language", l);
    }
    let resp = req.send().await.expect("the page answers");
    assert!(resp.status().is_success());
    resp.text().await.expect("body")
}

/// Asks for the page until `ok` holds (the agent's state changes on its own time).
async fn page_until(addr: std::net::SocketAddr, ok: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let page = get(addr, "/", None).await;
        if ok(&page) {
            return page;
        }
        assert!(tokio::time::Instant::now() < deadline, "the page never showed it:\n{page}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_live_values_the_link_and_a_newly_plugged_port_in_either_language() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dev = dir.path().join("dev");
    std::fs::create_dir_all(&dev).expect("mkdir");
    let addr = free_port().expect("port");
    let text = format!(
        "[device]\nid = \"cilegon-ciwedus\"\nsite = \"Kelurahan Ciwedus\"\n\
         [buffer]\npath = \"{}\"\nflush_interval = \"50ms\"\n\
         [status_page]\nlisten = \"{addr}\"\nports_dir = \"{}\"\n\
         [sensors.sungai]\nkind = \"simulated\"\ninterval = \"20ms\"\nmetric = \"level\"\nunit = \"cm\"\n\
         [sensors.hujan]\nkind = \"ascii\"\nformat = \"number\"\nport = {{ path = \"{}\", baud = 9600 }}\n",
        dir.path().join("buffer.db").display(),
        dev.display(),
        dev.join("ttyUSB0").display(),
    );
    let config = simpul_agent::config::load_str("agent.toml", &text).expect("config");
    let shutdown = CancellationToken::new();
    let agent = tokio::spawn(simpul_agent::run::run(config, shutdown.clone()));
    wait_until_accepting(addr, Duration::from_secs(20)).await.expect("the page listens");

    let page = page_until(addr, |p| p.contains("level: ")).await;
    assert!(page.contains("lang=\"id\"") && page.contains("Kelurahan Ciwedus"));
    assert!(page.contains("Normal"), "the simulated sensor works");
    assert!(page.contains("Tidak terhubung"), "the rain gauge's port is not there: {page}");
    assert!(page.contains("Tidak dipakai"), "the uplink is off");

    // Staff plug in a new USB-serial sensor: it is listed; the configured port is not.
    assert!(!page.contains("ttyUSB1"));
    std::fs::write(dev.join("ttyUSB0"), b"").expect("configured port");
    std::fs::write(dev.join("ttyUSB1"), b"").expect("new port");
    let page = page_until(addr, |p| p.contains("ttyUSB1")).await;
    assert!(!page.contains("ttyUSB0</code>"), "only the unconfigured port is new: {page}");

    let english = get(addr, "/", Some("en-GB,en;q=0.9")).await;
    assert!(english.contains("lang=\"en\"") && english.contains("Newly plugged-in sensors"));
    let json: serde_json::Value = serde_json::from_str(&get(addr, "/status.json", None).await).expect("json");
    assert!(json["sensors"].as_array().is_some_and(|s| s.len() == 2));
    assert!(json["waiting"].as_u64().is_some());
    shutdown.cancel();
    agent.await.expect("join").expect("agent ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_no_secret_from_the_config() {
    // Every value under a key that names a secret (password, token, secret, private key)
    // anywhere in the effective config must stay off the page. Today the agent config has
    // no such field; this test bites the day one (MQTT password, TLS key) is added.
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = free_port().expect("port");
    let text = format!(
        "[device]\nid = \"kel-secret\"\n[buffer]\npath = \"{}\"\n[status_page]\nlisten = \"{addr}\"\n\
         [sensors.sungai]\nkind = \"simulated\"\ninterval = \"20ms\"\n",
        dir.path().join("buffer.db").display(),
    );
    let config = simpul_agent::config::load_str("agent.toml", &text).expect("config");
    let mut secrets = Vec::new();
    collect_secrets(&serde_json::to_value(&config).expect("config as json"), false, &mut secrets);
    let shutdown = CancellationToken::new();
    let agent = tokio::spawn(simpul_agent::run::run(config, shutdown.clone()));
    wait_until_accepting(addr, Duration::from_secs(20)).await.expect("the page listens");
    let pages = [get(addr, "/", None).await, get(addr, "/?lang=en", None).await, get(addr, "/status.json", None).await];
    for secret in &secrets {
        for page in &pages {
            assert!(!page.contains(secret.as_str()), "the page shows a secret from the config");
        }
    }
    shutdown.cancel();
    agent.await.expect("join").expect("agent ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probing_a_port_that_is_not_a_newly_plugged_one_is_refused_and_nothing_is_probed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dev = dir.path().join("dev");
    std::fs::create_dir_all(&dev).expect("mkdir");
    std::fs::write(dev.join("ttyUSB0"), b"").expect("configured port");
    let addr = free_port().expect("port");
    let text = format!(
        "[device]\nid = \"kel-probe\"\n[buffer]\npath = \"{}\"\n\
         [status_page]\nlisten = \"{addr}\"\nports_dir = \"{}\"\n\
         [sensors.hujan]\nkind = \"ascii\"\nformat = \"number\"\nport = {{ path = \"{}\" }}\n",
        dir.path().join("buffer.db").display(),
        dev.display(),
        dev.join("ttyUSB0").display(),
    );
    let config = simpul_agent::config::load_str("agent.toml", &text).expect("config");
    let shutdown = CancellationToken::new();
    let agent = tokio::spawn(simpul_agent::run::run(config, shutdown.clone()));
    wait_until_accepting(addr, Duration::from_secs(20)).await.expect("the page listens");

    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let configured = dev.join("ttyUSB0").display().to_string();
    for port in [configured.as_str(), "/etc/passwd", "/dev/ttyUSB7", ""] {
        let resp = client.post(format!("http://{addr}/probe")).query(&[("port", port)]).send().await.expect("answer");
        assert_eq!(resp.status(), reqwest::StatusCode::NOT_FOUND, "{port:?} must not be probed");
    }
    let json: serde_json::Value = serde_json::from_str(&get(addr, "/status.json", None).await).expect("json");
    assert_eq!(json["probes"], serde_json::json!({}), "nothing was probed");
    shutdown.cancel();
    agent.await.expect("join").expect("agent ran");
}

fn collect_secrets(v: &serde_json::Value, under_secret: bool, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                let k = k.to_ascii_lowercase();
                let secret = ["password", "secret", "token", "private", "key"].iter().any(|w| k.contains(w));
                collect_secrets(v, under_secret || secret, out);
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| collect_secrets(v, under_secret, out)),
        serde_json::Value::String(s) if under_secret && !s.is_empty() => out.push(s.clone()),
        _ => {}
    }
}
