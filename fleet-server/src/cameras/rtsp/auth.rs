//! Viewer credentials on RTSP: HTTP Basic (RFC 7617) with an operator's user name and
//! password, or any user name with an API token (`spl_…`) as the password, so a VMS can
//! hold a token of its own. Either needs the viewer role or more (docs/design/cameras.md).

use std::sync::Arc;

use base64::Engine;

use crate::auth::{AuthStore, Role};

/// The realm viewers are asked for.
pub const REALM: &str = "simpul";

/// The `WWW-Authenticate` challenge.
pub fn challenge() -> String {
    format!("Basic realm=\"{REALM}\"")
}

/// Who an `Authorization` header is, if it carries good credentials.
pub async fn check(store: &Arc<dyn AuthStore>, header: Option<&str>) -> Option<String> {
    let (user, pwd) = basic(header?)?;
    let store = Arc::clone(store);
    let now = crate::auth::now_ms();
    let found = tokio::task::spawn_blocking(move || -> Option<String> {
        if pwd.starts_with("spl_") {
            let p = crate::auth::ops::authenticate(store.as_ref(), &pwd, now).ok()??;
            return p.role.allows(Role::Viewer).then(|| format!("token {}", p.token_id));
        }
        let u = crate::auth::ops::check_password(store.as_ref(), &user, &pwd).ok()??;
        u.role.allows(Role::Viewer).then_some(u.name)
    })
    .await;
    found.ok().flatten()
}

/// The user name and password of a Basic `Authorization` value.
fn basic(value: &str) -> Option<(String, String)> {
    let (scheme, b64) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, pwd) = text.split_once(':')?;
    Some((user.to_owned(), pwd.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::basic;

    #[test]
    fn basic_credentials_are_read_and_anything_else_is_not() {
        assert_eq!(basic("Basic b2xnYTpzZWNyZXQ6Og=="), Some(("olga".to_owned(), "secret::".to_owned())));
        assert_eq!(basic("basic b2xnYTpz"), Some(("olga".to_owned(), "s".to_owned())));
        assert_eq!(basic("Digest username=\"olga\""), None);
        assert_eq!(basic("Basic !!!"), None);
        assert_eq!(basic("Basic bm9jb2xvbg=="), None, "no colon");
    }
}
