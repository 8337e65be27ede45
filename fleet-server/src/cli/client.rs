//! The HTTP client the operators' subcommands share: where the API is, which token, and
//! turning an HTTP answer into a message and an exit code.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use reqwest::{Method, StatusCode};

use crate::exit;

/// Where the API is and who is asking.
#[derive(Debug, Args)]
pub struct ApiArgs {
    /// The fleet's API. Default: `http://` + the config's `[api] listen`.
    #[arg(long, env = "SIMPUL_API")]
    pub api: Option<String>,
    /// An API or session token (`spl_...`).
    #[arg(long, env = "SIMPUL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print JSON (for scripts) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// A failed command: its message and exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn new(code: u8, message: impl Into<String>) -> Failure {
        Failure { code, message: message.into() }
    }

    /// Prints the message; the exit code.
    pub fn report(self) -> ExitCode {
        eprintln!("error: {}", self.message);
        exit::code(self.code)
    }
}

/// A client of the fleet API.
#[derive(Debug)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl Client {
    /// A client for `args`, the API address defaulting to the config's `[api] listen`.
    pub fn new(args: &ApiArgs, config: &Path) -> Result<Client, Failure> {
        let base = match &args.api {
            Some(a) => a.trim_end_matches('/').to_owned(),
            None => default_api(config),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Failure::new(exit::FAILURE, format!("cannot start the async runtime: {e}")))?;
        Ok(Client { base, token: args.token.clone(), http: reqwest::Client::new(), runtime })
    }

    /// Sends a request; the JSON answer (`null` for an empty one) or why not.
    pub fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, Failure> {
        let mut req = self.request(method.clone(), path);
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.send(method, path, req)
    }

    /// PUTs `bytes` with one extra header; the JSON answer or why not.
    pub fn put_bytes(&self, path: &str, bytes: Vec<u8>, header: (&str, &str)) -> Result<serde_json::Value, Failure> {
        let req = self
            .request(Method::PUT, path)
            .header(header.0, header.1)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(bytes);
        self.send(Method::PUT, path, req)
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    fn send(&self, method: Method, path: &str, req: reqwest::RequestBuilder) -> Result<serde_json::Value, Failure> {
        let url = format!("{}{path}", self.base);
        self.runtime.block_on(async {
            let resp = req.send().await.map_err(|e| Failure::new(exit::FAILURE, format!("{method} {url}: {e}")))?;
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            let json: serde_json::Value = if text.trim().is_empty() {
                serde_json::Value::Null
            } else {
                serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
            };
            if status.is_success() {
                return Ok(json);
            }
            let said = json.get("error").and_then(|e| e.as_str()).map_or_else(|| json.to_string(), str::to_owned);
            Err(Failure::new(exit::FAILURE, explain(status, &method, path, &said, self.token.is_some())))
        })
    }
}

fn explain(status: StatusCode, method: &Method, path: &str, said: &str, had_token: bool) -> String {
    match status {
        StatusCode::UNAUTHORIZED if !had_token => {
            format!("{method} {path}: the API needs a token: pass --token or set SIMPUL_TOKEN (401: {said})")
        }
        StatusCode::UNAUTHORIZED => format!("{method} {path}: the token was refused (401: {said})"),
        StatusCode::FORBIDDEN => format!("{method} {path}: not allowed with this token's role (403: {said})"),
        s => format!("{method} {path}: {s}: {said}"),
    }
}

/// `http://` + the config's `[api] listen` (a wildcard address as 127.0.0.1), or the
/// default `http://127.0.0.1:8080` if the config cannot be read.
fn default_api(config: &Path) -> String {
    let mut addr = crate::config::load(config)
        .map(|c| c.api.listen)
        .unwrap_or_else(|_| crate::config::ApiConfig::default().listen);
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    format!("http://{addr}")
}

/// Prints `value` as pretty JSON.
pub fn print_json(value: &serde_json::Value) -> ExitCode {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    simpul_base::cli::emit(&format!("{text}\n"))
}
