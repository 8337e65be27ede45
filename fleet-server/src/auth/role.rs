//! Roles: `ops` may change things, `viewer` may only read.

use std::fmt;
use std::str::FromStr;

use axum::http::Method;
use serde::{Deserialize, Serialize};

/// An operator's role. `Ops` can do everything `Viewer` can.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads only: GET and HEAD.
    Viewer,
    /// Reads and changes.
    Ops,
}

impl Role {
    /// The role a request with `method` needs: GET and HEAD read, everything else changes.
    pub fn needed_for(method: &Method) -> Role {
        if method == Method::GET || method == Method::HEAD { Role::Viewer } else { Role::Ops }
    }

    /// Whether this role may do what `needed` allows.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Ops => "ops",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "ops" => Ok(Role::Ops),
            other => Err(format!("unknown role {other:?}: use ops or viewer")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_need_a_viewer_and_everything_else_needs_ops() {
        assert_eq!(Role::needed_for(&Method::GET), Role::Viewer);
        assert_eq!(Role::needed_for(&Method::HEAD), Role::Viewer);
        for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert_eq!(Role::needed_for(&m), Role::Ops);
        }
        assert!(Role::Ops.allows(Role::Viewer) && Role::Ops.allows(Role::Ops));
        assert!(Role::Viewer.allows(Role::Viewer) && !Role::Viewer.allows(Role::Ops));
        assert_eq!("ops".parse::<Role>(), Ok(Role::Ops));
        assert!("admin".parse::<Role>().is_err());
    }
}
