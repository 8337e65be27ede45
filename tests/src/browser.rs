//! Headless Chromium driven over WebDriver (chromedriver, Debian's `chromium-driver`), for
//! the dashboard's tests. A test without chromedriver is skipped, saying so (scripts/test
//! installs it).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};

use crate::ChildGuard;

/// The longest any one wait for the page takes before the test fails.
pub const WAIT: Duration = Duration::from_secs(40);

/// chromedriver and one headless Chromium session through it; both end with the value.
#[derive(Debug)]
pub struct Browser {
    pub client: Client,
    _driver: ChildGuard,
}

fn installed(candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().map(PathBuf::from).find(|p| p.exists())
}

impl Browser {
    /// A browser, or `None` (after printing SKIPPED) when chromedriver is not installed.
    pub async fn start() -> Option<Browser> {
        let Some(chromedriver) = installed(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]) else {
            eprintln!(
                "SKIPPED: chromedriver is not installed (apt-get install chromium chromium-driver; scripts/test does)"
            );
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map(ChildGuard::new)
            .unwrap_or_else(|e| panic!("chromedriver does not start: {e}"));
        let mut caps = serde_json::Map::new();
        let mut chrome = serde_json::json!({
            "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,1000", "--lang=en-US", "--autoplay-policy=no-user-gesture-required"],
        });
        if let Some(bin) = installed(&["/usr/bin/chromium", "/usr/bin/chromium-browser"]) {
            chrome["binary"] = serde_json::json!(bin.display().to_string());
        }
        caps.insert("goog:chromeOptions".into(), chrome);
        // chromedriver takes a moment to listen: retry the session until it answers.
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            // Plain HTTP to chromedriver on loopback: no TLS, so no crypto provider to choose.
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            let connect = ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await;
            match connect {
                Ok(client) => return Some(Browser { client, _driver: driver }),
                Err(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
                Err(e) => panic!("no WebDriver session: {e}"),
            }
        }
    }

    /// The element `css` finds, once the page has it.
    pub async fn wait_for(&self, css: &str) -> Element {
        let found = self.client.wait().at_most(WAIT).for_element(Locator::Css(css)).await;
        found.unwrap_or_else(|e| panic!("waiting for {css}: {e}"))
    }

    /// Saves what the browser shows as `{name}.png` in `$SIMPUL_DASHBOARD_SCREENSHOTS`, when
    /// set (for people reviewing the page; the tests check the DOM).
    pub async fn screenshot(&self, name: &str) {
        if let Some(dir) = std::env::var_os("SIMPUL_DASHBOARD_SCREENSHOTS") {
            if let Ok(png) = self.client.screenshot().await {
                let _ = std::fs::write(Path::new(&dir).join(format!("{name}.png")), png);
            }
        }
    }

    /// Logs in on the dashboard at `base` as `user`.
    pub async fn log_in(&self, base: &str, user: &str, password: &str) {
        self.client.goto(&format!("{base}/")).await.unwrap_or_else(|e| panic!("opening {base}: {e}"));
        self.type_into("#username", user).await;
        self.type_into("#password", password).await;
        self.click("#login-submit").await;
        self.wait_for("#fleet-table").await;
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let field = self.wait_for(css).await;
        field.send_keys(text).await.unwrap_or_else(|e| panic!("typing into {css}: {e}"));
    }

    pub async fn click(&self, css: &str) {
        let target = self.wait_for(css).await;
        target.click().await.unwrap_or_else(|e| panic!("clicking {css}: {e}"));
    }

    /// Runs `script` in the page until it returns a value `done` accepts (within [`WAIT`]);
    /// that value.
    pub async fn until_script(
        &self,
        what: &str,
        script: &str,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let v = self.client.execute(script, vec![]).await.unwrap_or(serde_json::Value::Null);
            if done(&v) {
                return v;
            }
            assert!(tokio::time::Instant::now() < deadline, "{what}: not within {WAIT:?}; last {v}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Ends the session.
    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}
