//! Operators' authentication and roles (docs/design/auth.md): every endpoint refuses no
//! credentials (401) and too small a role (403) and serves the right one; sessions,
//! revocation and what the database keeps.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use common::{Setup, batch};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use simpul_fleet::auth::{Role, ops};
use simpul_fleet::protocol::control::Event as DeviceEvent;
use simpul_fleet::protocol::{Channel, ControlMessage};
use simpul_fleet::store::sqlite::SqliteAuthStore;

/// Who may call an endpoint.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Needs {
    Nobody,
    Viewer,
    Ops,
}

/// One endpoint: method, documented path, the path called, who may call it, the body
/// sent, the status the right caller gets.
struct Endpoint {
    method: Method,
    doc_path: &'static str,
    path: &'static str,
    needs: Needs,
    body: Option<Value>,
    ok: StatusCode,
}

fn endpoint(
    method: Method,
    doc_path: &'static str,
    path: &'static str,
    needs: Needs,
    body: Option<Value>,
    ok: u16,
) -> Endpoint {
    Endpoint { method, doc_path, path, needs, body, ok: StatusCode::from_u16(ok).unwrap() }
}

/// Every endpoint the API serves. A test below checks this list against the OpenAPI
/// document, both ways.
fn endpoints() -> Vec<Endpoint> {
    use Method as M;
    use Needs::*;
    vec![
        endpoint(M::GET, "/api/v1/readings", "/api/v1/readings", Viewer, None, 200),
        endpoint(M::GET, "/api/v1/devices", "/api/v1/devices", Viewer, None, 200),
        endpoint(M::GET, "/api/v1/devices/{device}", "/api/v1/devices/kel-auth", Viewer, None, 200),
        endpoint(M::GET, "/api/v1/devices/{device}/health", "/api/v1/devices/kel-auth/health", Viewer, None, 200),
        endpoint(M::GET, "/api/v1/devices/{device}/events", "/api/v1/devices/kel-auth/events", Viewer, None, 200),
        endpoint(M::GET, "/api/v1/devices/{device}/series", "/api/v1/devices/kel-auth/series", Viewer, None, 200),
        // Desired config: the group first, then the device into it, then its config.
        endpoint(
            M::PUT,
            "/api/v1/groups/{group}",
            "/api/v1/groups/north",
            Ops,
            Some(json!({"defaults": "", "comment": "auth test"})),
            200,
        ),
        endpoint(
            M::PUT,
            "/api/v1/devices/{device}/group",
            "/api/v1/devices/kel-auth/group",
            Ops,
            Some(json!({"group": "north", "comment": "auth test"})),
            200,
        ),
        endpoint(
            M::PUT,
            "/api/v1/devices/{device}/config",
            "/api/v1/devices/kel-auth/config",
            Ops,
            Some(json!({"toml": "", "comment": "auth test"})),
            200,
        ),
        endpoint(M::GET, "/api/v1/devices/{device}/config", "/api/v1/devices/kel-auth/config", Viewer, None, 200),
        endpoint(
            M::GET,
            "/api/v1/devices/{device}/config/history",
            "/api/v1/devices/kel-auth/config/history",
            Viewer,
            None,
            200,
        ),
        endpoint(M::GET, "/api/v1/groups", "/api/v1/groups", Viewer, None, 200),
        endpoint(M::GET, "/metrics", "/metrics", Nobody, None, 200),
        endpoint(M::GET, "/api/v1/openapi.json", "/api/v1/openapi.json", Nobody, None, 200),
        endpoint(
            M::POST,
            "/api/v1/login",
            "/api/v1/login",
            Nobody,
            Some(json!({"username": "olga", "password": "olga's long password"})),
            200,
        ),
        endpoint(M::POST, "/api/v1/logout", "/api/v1/logout", Viewer, None, 204),
        endpoint(M::GET, "/api/v1/users", "/api/v1/users", Ops, None, 200),
        endpoint(
            M::POST,
            "/api/v1/users",
            "/api/v1/users",
            Ops,
            Some(json!({"name": "newbie", "role": "viewer", "password": "a new long password"})),
            201,
        ),
        endpoint(M::DELETE, "/api/v1/users/{name}", "/api/v1/users/leaving", Ops, None, 204),
        endpoint(M::GET, "/api/v1/tokens", "/api/v1/tokens", Ops, None, 200),
        endpoint(
            M::POST,
            "/api/v1/tokens",
            "/api/v1/tokens",
            Ops,
            Some(json!({"name": "grafana", "role": "viewer"})),
            201,
        ),
        endpoint(M::DELETE, "/api/v1/tokens/{id}", "/api/v1/tokens/TOKEN_TO_REVOKE", Ops, None, 204),
        // Desired config (docs/design/fleet-config-distribution.md), in an order that makes each call succeed.
        endpoint(M::PUT, "/api/v1/groups/{group}", "/api/v1/groups/kel", Ops, Some(json!({"defaults": ""})), 200),
        endpoint(M::GET, "/api/v1/groups", "/api/v1/groups", Viewer, None, 200),
        endpoint(
            M::PUT,
            "/api/v1/devices/{device}/group",
            "/api/v1/devices/kel-auth/group",
            Ops,
            Some(json!({"group": "kel"})),
            200,
        ),
        endpoint(
            M::PUT,
            "/api/v1/devices/{device}/config",
            "/api/v1/devices/kel-auth/config",
            Ops,
            Some(json!({"toml": "[log]\nlevel = \"info\"\n"})),
            200,
        ),
        endpoint(M::GET, "/api/v1/devices/{device}/config", "/api/v1/devices/kel-auth/config", Viewer, None, 200),
        endpoint(
            M::GET,
            "/api/v1/devices/{device}/config/history",
            "/api/v1/devices/kel-auth/config/history",
            Viewer,
            None,
            200,
        ),
        // The proposal World::start has the device send (the fleet's first event).
        endpoint(
            M::POST,
            "/api/v1/devices/{device}/proposals/{event}/accept",
            "/api/v1/devices/kel-auth/proposals/1/accept",
            Ops,
            Some(json!({"comment": "auth test"})),
            200,
        ),
        endpoint(M::GET, "/api/v1/security-events", "/api/v1/security-events", Viewer, None, 200),
        endpoint(M::GET, "/api/v1/releases", "/api/v1/releases", Viewer, None, 200),
        // No signature header: past the role check, refused as unsigned.
        endpoint(
            M::PUT,
            "/api/v1/releases/{version}/{target}",
            "/api/v1/releases/1.0.0/x86_64-unknown-linux-gnu",
            Ops,
            None,
            400,
        ),
        // Nothing is published in this test: past the role check, a 404.
        endpoint(
            M::PUT,
            "/api/v1/devices/{device}/release",
            "/api/v1/devices/kel-auth/release",
            Ops,
            Some(json!({"version": "1.0.0"})),
            404,
        ),
        endpoint(M::GET, "/api/v1/rollouts", "/api/v1/rollouts", Viewer, None, 200),
        endpoint(M::GET, "/api/v1/cameras", "/api/v1/cameras", Viewer, None, 200),
        endpoint(
            M::GET,
            "/api/v1/cameras/{device}/{camera}/snapshot.jpg",
            "/api/v1/cameras/kel-01/gate/snapshot.jpg",
            Viewer,
            None,
            404,
        ),
        endpoint(
            M::GET,
            "/api/v1/cameras/{device}/{camera}/live.mp4",
            "/api/v1/cameras/kel-01/gate/live.mp4",
            Viewer,
            None,
            404,
        ),
        // Nothing is published in this test: past the role check, a 404 (and rollout 1 does not exist).
        endpoint(M::POST, "/api/v1/rollouts", "/api/v1/rollouts", Ops, Some(json!({"version": "1.0.0"})), 404),
        endpoint(M::GET, "/api/v1/rollouts/{id}", "/api/v1/rollouts/1", Viewer, None, 404),
        endpoint(M::POST, "/api/v1/rollouts/{id}/pause", "/api/v1/rollouts/1/pause", Ops, None, 404),
        endpoint(M::POST, "/api/v1/rollouts/{id}/resume", "/api/v1/rollouts/1/resume", Ops, None, 404),
        endpoint(M::POST, "/api/v1/rollouts/{id}/abort", "/api/v1/rollouts/1/abort", Ops, None, 404),
        // Last: kel-auth has no certificate, so there is nothing to revoke, and nothing breaks.
        endpoint(M::POST, "/api/v1/devices/{device}/revoke", "/api/v1/devices/kel-auth/revoke", Ops, None, 200),
    ]
}

struct World {
    s: Setup,
    store: SqliteAuthStore,
    viewer: String,
    http: reqwest::Client,
}

impl World {
    async fn start() -> World {
        let s = Setup::start(|_| {}).await;
        let store = SqliteAuthStore::open(&s.dir.path().join("fleet.db")).unwrap();
        let now = simpul_fleet::auth::now_ms();
        let viewer = ops::create_token(&store, "viewer", Role::Viewer, now).unwrap().token;
        ops::add_user(&store, "olga", Role::Ops, "olga's long password", now).unwrap();
        let mut agent = s.agent("kel-auth").await;
        agent.publish(&batch(1..=2)).await;
        agent.wait_ack(2).await;
        let proposal = DeviceEvent::SensorProposed {
            port: "/dev/ttyUSB1".to_owned(),
            toml: "[sensors.usb1]\nkind = \"simulated\"\n".to_owned(),
            summary: "auth test".to_owned(),
        };
        agent.publish_raw(Channel::Events, proposal.to_json().unwrap()).await;
        s.fleet.until("/api/v1/devices/kel-auth/events", |v| v["events"][0]["id"] == 1).await;
        World { s, store, viewer, http: reqwest::Client::new() }
    }

    async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<&Value>) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.s.fleet.api));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_refuses_no_credentials_and_too_small_a_role_and_serves_the_right_one() {
    let w = World::start().await;
    let now = simpul_fleet::auth::now_ms();
    ops::add_user(&w.store, "leaving", Role::Viewer, "leaving long password", now).unwrap();
    let revokable = ops::create_token(&w.store, "old", Role::Viewer, now).unwrap().info.id;
    let ops_token = w.s.fleet.token.clone();
    for e in endpoints() {
        let path = e.path.replace("TOKEN_TO_REVOKE", &revokable);
        let what = format!("{} {path}", e.method);
        let body = e.body.as_ref();
        if e.needs != Needs::Nobody {
            let (status, json) = w.call(e.method.clone(), &path, None, body).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{what} without credentials: {json}");
            assert!(json["error"].is_string(), "{what}: a JSON error: {json}");
            let (status, _) = w.call(e.method.clone(), &path, Some("spl_0123456789abcdef_00"), body).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{what} with a made-up token");
        }
        if e.needs == Needs::Ops {
            let (status, json) = w.call(e.method.clone(), &path, Some(&w.viewer), body).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{what} as a viewer: {json}");
            assert!(json["error"].as_str().unwrap().contains("ops"), "{what}: {json}");
        }
        let token = match e.needs {
            Needs::Nobody => None,
            Needs::Viewer => Some(w.viewer.as_str()),
            Needs::Ops => Some(ops_token.as_str()),
        };
        let (status, json) = w.call(e.method.clone(), &path, token, body).await;
        assert_eq!(status, e.ok, "{what} with the right role: {json}");
    }
    // An ops token may read too.
    let (status, _) = w.call(Method::GET, "/api/v1/readings", Some(&ops_token), None).await;
    assert_eq!(status, StatusCode::OK);
    w.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_is_public_json_3x_and_lists_every_endpoint() {
    let w = World::start().await;
    let (status, doc) = w.call(Method::GET, "/api/v1/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{}", doc["openapi"]);
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "head", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let tested: BTreeSet<(String, String)> =
        endpoints().iter().map(|e| (e.method.to_string(), e.doc_path.to_owned())).collect();
    assert_eq!(documented, tested, "the document and the endpoint table differ");
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object(), "{}", doc["components"]);
    w.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_or_unknown_user_is_401_and_a_login_session_works_by_cookie_until_logout() {
    let w = World::start().await;
    for (user, pwd) in [("olga", "not olga's password"), ("nobody", "olga's long password")] {
        let body = json!({"username": user, "password": pwd});
        let (status, json) = w.call(Method::POST, "/api/v1/login", None, Some(&body)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{user}: {json}");
    }
    let body = json!({"username": "olga", "password": "olga's long password"});
    let resp = w.http.post(format!("{}/api/v1/login", w.s.fleet.api)).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let login: Value = resp.json().await.unwrap();
    assert_eq!(login["role"], "ops");
    let token = login["token"].as_str().unwrap();
    assert!(cookie.starts_with(&format!("simpul_session={token};")), "{cookie}");

    let with_cookie = |method: Method, path: &str| {
        w.http.request(method, format!("{}{path}", w.s.fleet.api)).header("cookie", format!("simpul_session={token}"))
    };
    assert_eq!(with_cookie(Method::GET, "/api/v1/users").send().await.unwrap().status(), StatusCode::OK);
    let out = with_cookie(Method::POST, "/api/v1/logout").send().await.unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    assert!(out.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    assert_eq!(with_cookie(Method::GET, "/api/v1/users").send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let (status, _) = w.call(Method::GET, "/api/v1/users", Some(token), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the session ended for the bearer form too");
    w.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_and_a_revoked_token_and_a_removed_users_session_stop_working() {
    let w = World::start().await;
    let now = simpul_fleet::auth::now_ms();
    let expired = ops::issue(&w.store, "session", Role::Ops, Some("olga"), Some(now - 1), now - 10).unwrap().token;
    let (status, json) = w.call(Method::GET, "/api/v1/readings", Some(&expired), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{json}");

    let ops_token = w.s.fleet.token.clone();
    let (status, made) =
        w.call(Method::POST, "/api/v1/tokens", Some(&ops_token), Some(&json!({"name": "p", "role": "viewer"}))).await;
    assert_eq!(status, StatusCode::CREATED);
    let token = made["token"].as_str().unwrap();
    assert_eq!(w.call(Method::GET, "/api/v1/readings", Some(token), None).await.0, StatusCode::OK);
    let (_, list) = w.call(Method::GET, "/api/v1/tokens", Some(&ops_token), None).await;
    assert!(list.to_string().contains(made["id"].as_str().unwrap()) && !list.to_string().contains(token));
    let id = made["id"].as_str().unwrap();
    assert_eq!(
        w.call(Method::DELETE, &format!("/api/v1/tokens/{id}"), Some(&ops_token), None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(w.call(Method::GET, "/api/v1/readings", Some(token), None).await.0, StatusCode::UNAUTHORIZED);

    let session = ops::issue(&w.store, "session", Role::Ops, Some("olga"), Some(now + 60_000), now).unwrap().token;
    assert_eq!(w.call(Method::GET, "/api/v1/users", Some(&session), None).await.0, StatusCode::OK);
    assert_eq!(w.call(Method::DELETE, "/api/v1/users/olga", Some(&ops_token), None).await.0, StatusCode::NO_CONTENT);
    assert_eq!(w.call(Method::GET, "/api/v1/users", Some(&session), None).await.0, StatusCode::UNAUTHORIZED);
    w.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_and_token_secrets_are_stored_only_as_argon2id_hashes() {
    let w = World::start().await;
    let ops_token = w.s.fleet.token.clone();
    let password = "a very particular password";
    let body = json!({"name": "petra", "role": "viewer", "password": password});
    assert_eq!(w.call(Method::POST, "/api/v1/users", Some(&ops_token), Some(&body)).await.0, StatusCode::CREATED);
    let short = json!({"name": "shorty", "role": "viewer", "password": "short"});
    assert_eq!(w.call(Method::POST, "/api/v1/users", Some(&ops_token), Some(&short)).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(w.call(Method::POST, "/api/v1/users", Some(&ops_token), Some(&body)).await.0, StatusCode::CONFLICT);

    let db = rusqlite::Connection::open(w.s.dir.path().join("fleet.db")).unwrap();
    let hash: String = db.query_row("SELECT password_hash FROM users WHERE name = 'petra'", [], |r| r.get(0)).unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let everything: String =
        db.query_row("SELECT group_concat(name || role || password_hash, '|') FROM users", [], |r| r.get(0)).unwrap();
    assert!(!everything.contains(password) && !everything.contains("olga's long password"));
    let secret = ops_token.rsplit('_').next().unwrap();
    let tokens: String =
        db.query_row("SELECT group_concat(id || name || secret_hash, '|') FROM tokens", [], |r| r.get(0)).unwrap();
    assert!(!tokens.contains(secret) && !tokens.contains(&w.viewer[21..]), "{tokens}");
    assert!(tokens.contains("$argon2id$"));
    w.s.stop().await;
}
