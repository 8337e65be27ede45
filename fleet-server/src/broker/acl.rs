//! Who may connect, publish and subscribe (the trust issue's topic rule).
//!
//! The rule: a client whose identity is device `D` may publish only on `D`'s own topics that a
//! device publishes (`simpul/v1/dev/D/{readings,heartbeat,status,config/reported,events}`),
//! may subscribe only to filters under `simpul/v1/dev/D/`, must use `D` as its client id
//! (so it cannot take over another client's session), and may carry a last will only on a
//! topic it may publish on. A fleet identity (`fleet_identities`) may do anything.
//!
//! The will is checked at CONNECT because rmqtt publishes a last will without running its
//! publish ACL hook (`Session::process_last_will` in rmqtt 0.24 calls only the
//! `message_publish` hook): a client could otherwise publish anywhere by dying.
//!
//! Where the identity comes from depends on the listener ([`Via`]). On the devices' TLS
//! listener it is the CN of a client certificate rmqtt has verified against the fleet CA; a
//! certificate without a CN is refused (rmqtt would otherwise keep the client's own
//! username, so a CN-less certificate could claim `simpul-fleet`), and so is a fleet identity
//! (the fleet's own clients use the loopback listener). On the plain listener it is the MQTT
//! username, or the client id when there is none: no password, so when there is a TLS
//! listener the plain one admits fleet identities only, and when there is none (a lab) this
//! rule keeps honest clients apart but stops no attacker.

use async_trait::async_trait;
use rmqtt::context::ServerContext;
use rmqtt::hook::{Handler, HookResult, Parameter, ReturnType, Type};
use rmqtt::types::{AuthResult, ConnectInfo, LastWill, PublishAclResult, SubscribeAclResult};
use serde::{Deserialize, Serialize};

use std::sync::Arc;

use super::revocation::Revocations;
use super::security::{SecurityEvent, SecurityLog};
use super::{PLAIN_LISTENER, TLS_LISTENER};
use crate::protocol::topic::{DeviceId, PREFIX, Topic};

/// `[broker.acl]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AclConfig {
    /// Apply the per-device rule. Default true. When false every client may do anything
    /// (for a lab, never for a fleet).
    pub enabled: bool,
    /// Identities with no topic restriction: the fleet's own clients (ingest, config,
    /// rollouts). Default `["simpul-fleet"]`. A fleet client connects with one of these as its
    /// MQTT username (later: its certificate CN).
    pub fleet_identities: Vec<String>,
}

impl Default for AclConfig {
    fn default() -> Self {
        AclConfig { enabled: true, fleet_identities: vec![FLEET_IDENTITY.to_owned()] }
    }
}

/// The default identity of the fleet's own MQTT clients.
pub const FLEET_IDENTITY: &str = "simpul-fleet";

impl AclConfig {
    pub(super) fn validate(&self) -> Result<(), String> {
        if self.enabled && self.fleet_identities.iter().any(|f| f.is_empty()) {
            return Err("acl.fleet_identities may not hold an empty name".to_owned());
        }
        Ok(())
    }

    pub(super) fn is_fleet(&self, identity: &str) -> bool {
        self.fleet_identities.iter().any(|f| f == identity)
    }
}

/// What a connecting client is.
#[derive(Debug, PartialEq, Eq)]
pub enum Identity {
    Fleet,
    Device(DeviceId),
}

/// The listener a client came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via<'a> {
    /// The plain listener. `devices`: whether devices may use it (there is no TLS listener).
    Plain { devices: bool },
    /// The TLS listener, with the CN of the verified client certificate (None: it has none).
    Tls { cn: Option<&'a str> },
}

/// Why a client may not connect.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    NotADeviceId(String),
    ClientIdIsNotTheIdentity {
        identity: String,
        client_id: String,
    },
    WillOutsideOwnTopics(String),
    /// A certificate from the fleet CA without a CN: no identity.
    CertificateWithoutName,
    /// A fleet identity on the devices' listener.
    FleetIdentityOverTls(String),
    /// A device on the plain listener while devices must use TLS.
    DeviceWithoutTls(String),
    /// The certificate (this serial) is revoked.
    Revoked(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NotADeviceId(i) => write!(f, "{i:?} is not a device id"),
            Refusal::ClientIdIsNotTheIdentity { identity, client_id } => {
                write!(f, "client id {client_id:?} is not the identity {identity:?}")
            }
            Refusal::WillOutsideOwnTopics(t) => write!(f, "last will on {t:?}, outside its own topics"),
            Refusal::CertificateWithoutName => write!(f, "client certificate has no CN"),
            Refusal::FleetIdentityOverTls(i) => write!(f, "fleet identity {i:?} on the devices' listener"),
            Refusal::DeviceWithoutTls(i) => write!(f, "device {i:?} on the plain listener: devices use TLS"),
            Refusal::Revoked(serial) => write!(f, "certificate {serial} is revoked"),
        }
    }
}

/// Decides whether a CONNECT is accepted, and as what.
pub fn admit(
    config: &AclConfig,
    via: Via<'_>,
    username: Option<&str>,
    client_id: &str,
    will_topic: Option<&str>,
) -> Result<Identity, Refusal> {
    let identity = match via {
        Via::Tls { cn: None } => return Err(Refusal::CertificateWithoutName),
        Via::Tls { cn: Some(cn) } if config.is_fleet(cn) => return Err(Refusal::FleetIdentityOverTls(cn.to_owned())),
        Via::Tls { cn: Some(cn) } => cn,
        Via::Plain { devices } => {
            let identity = username.filter(|u| !u.is_empty()).unwrap_or(client_id);
            if config.is_fleet(identity) {
                return Ok(Identity::Fleet);
            }
            if !devices {
                return Err(Refusal::DeviceWithoutTls(identity.to_owned()));
            }
            identity
        }
    };
    let device = DeviceId::new(identity).map_err(|_| Refusal::NotADeviceId(identity.to_owned()))?;
    if client_id != identity {
        return Err(Refusal::ClientIdIsNotTheIdentity {
            identity: identity.to_owned(),
            client_id: client_id.to_owned(),
        });
    }
    if let Some(topic) = will_topic {
        if !device_may_publish(&device, topic) {
            return Err(Refusal::WillOutsideOwnTopics(topic.to_owned()));
        }
    }
    Ok(Identity::Device(device))
}

/// Whether device `d` may publish on `topic`: one of its own topics that a device publishes.
pub fn device_may_publish(d: &DeviceId, topic: &str) -> bool {
    Topic::parse(topic).is_ok_and(|t| &t.device == d && t.channel.device_publishes())
}

/// Whether device `d` may subscribe to `filter` (already stripped of any `$share/group/`):
/// only under `simpul/v1/dev/d/`. The device id holds no wildcard, so any wildcard in the
/// rest of the filter stays inside the device's own topics.
pub fn device_may_subscribe(d: &DeviceId, filter: &str) -> bool {
    filter
        .strip_prefix(PREFIX)
        .and_then(|r| r.strip_prefix('/'))
        .and_then(|r| r.strip_prefix(d.as_str()))
        .is_some_and(|r| r.starts_with('/') && r.len() > 1)
}

/// Registers the hooks with the broker.
pub(super) async fn register(
    scx: &ServerContext,
    config: &AclConfig,
    tls: bool,
    security: SecurityLog,
    revoked: Option<Arc<dyn Revocations>>,
) {
    let register = scx.extends.hook_mgr().register();
    let handler =
        || Box::new(AclHandler { config: config.clone(), tls, security: security.clone(), revoked: revoked.clone() });
    register.add(Type::ClientAuthenticate, handler()).await;
    register.add(Type::ClientSubscribeCheckAcl, handler()).await;
    register.add(Type::MessagePublishCheckAcl, handler()).await;
    register.start().await;
}

struct AclHandler {
    config: AclConfig,
    /// Whether there is a TLS listener (then devices may not use the plain one).
    tls: bool,
    security: SecurityLog,
    revoked: Option<Arc<dyn Revocations>>,
}

impl AclHandler {
    fn via<'a>(&self, c: &'a ConnectInfo) -> Via<'a> {
        match c.id().lid {
            TLS_LISTENER => Via::Tls { cn: c.cert().and_then(|cert| cert.common_name.as_deref()) },
            PLAIN_LISTENER => Via::Plain { devices: !self.tls },
            // No other listener exists; were one added without a rule here, it admits no device.
            _ => Via::Plain { devices: false },
        }
    }

    /// Refuses a certificate that is revoked, or whose state cannot be read (fail closed).
    async fn not_revoked(&self, c: &ConnectInfo) -> Result<(), Refusal> {
        let Some(revoked) = self.revoked.clone() else { return Ok(()) };
        let Some(serial) = c.cert().and_then(|cert| cert.serial.clone()) else {
            return Err(Refusal::Revoked("no serial".to_owned()));
        };
        let s = serial.clone();
        match tokio::task::spawn_blocking(move || revoked.is_revoked(&s)).await {
            Ok(Ok(false)) => Ok(()),
            Ok(Ok(true)) => Err(Refusal::Revoked(serial)),
            Ok(Err(e)) => Err(Refusal::Revoked(format!("{serial} (revocation state unreadable: {e})"))),
            Err(e) => Err(Refusal::Revoked(format!("{serial} (revocation check failed: {e})"))),
        }
    }

    fn record(&self, id: &rmqtt::types::Id, identity: &str, kind: &str, detail: String) {
        self.security.record(SecurityEvent {
            at_ms: crate::ingest::now_ms(),
            identity: identity.to_owned(),
            kind: kind.to_owned(),
            detail,
            remote: id.remote_addr.map(|a| a.to_string()).unwrap_or_default(),
        });
    }
}

fn will_topic(c: &ConnectInfo) -> Option<&str> {
    c.last_will().map(|w| match w {
        LastWill::V3(w) => &*w.topic,
        LastWill::V5(w) => &*w.topic,
    })
}

#[async_trait]
impl Handler for AclHandler {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        match param {
            Parameter::ClientAuthenticate(c) => {
                if !self.config.enabled {
                    return (false, Some(HookResult::AuthResult(AuthResult::Allow(true, None))));
                }
                let username = c.username().map(|u| &**u);
                let admitted = admit(&self.config, self.via(c), username, c.client_id(), will_topic(c));
                let admitted = match (admitted, self.via(c)) {
                    (Ok(identity), Via::Tls { .. }) => self.not_revoked(c).await.map(|()| identity),
                    (other, _) => other,
                };
                match admitted {
                    Ok(identity) => {
                        let superuser = identity == Identity::Fleet;
                        (false, Some(HookResult::AuthResult(AuthResult::Allow(superuser, None))))
                    }
                    Err(refusal) => {
                        let who = username.unwrap_or(c.client_id());
                        self.record(c.id(), who, "connect_refused", refusal.to_string());
                        (false, Some(HookResult::AuthResult(AuthResult::NotAuthorized)))
                    }
                }
            }
            // Fleet identities are superusers: rmqtt skips these two hooks for them.
            Parameter::ClientSubscribeCheckAcl(session, subscribe) => {
                let allowed = !self.config.enabled
                    || device_of(session).is_some_and(|d| device_may_subscribe(&d, &subscribe.topic_filter));
                let result = if allowed {
                    SubscribeAclResult::new_success(subscribe.opts.qos(), None)
                } else {
                    let who = identity_of(session);
                    self.record(&session.id, who, "subscribe_refused", subscribe.topic_filter.to_string());
                    SubscribeAclResult::new_failure(rmqtt::codec::v5::SubscribeAckReason::NotAuthorized)
                };
                (false, Some(HookResult::SubscribeAclResult(result)))
            }
            Parameter::MessagePublishCheckAcl(session, publish) => {
                let allowed =
                    !self.config.enabled || device_of(session).is_some_and(|d| device_may_publish(&d, &publish.topic));
                let result = if allowed {
                    PublishAclResult::allow()
                } else {
                    let who = identity_of(session);
                    self.record(&session.id, who, "publish_refused", publish.topic.to_string());
                    // Disconnect: a device publishing outside its topics is broken or hostile,
                    // and with MQTT 3.1.1 there is no other way to tell it.
                    PublishAclResult::rejected(true, None)
                };
                (false, Some(HookResult::PublishAclResult(result)))
            }
            _ => (true, acc),
        }
    }
}

/// The identity a session was admitted as: on the TLS listener the username is the
/// certificate's CN (rmqtt's `cert_cn_as_username`).
fn identity_of(session: &rmqtt::session::Session) -> &str {
    session.id.username.as_deref().filter(|u| !u.is_empty()).unwrap_or(&session.id.client_id)
}

fn device_of(session: &rmqtt::session::Session) -> Option<DeviceId> {
    DeviceId::new(identity_of(session)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(id: &str) -> DeviceId {
        DeviceId::new(id).expect("a valid device id")
    }

    #[test]
    fn a_device_publishes_only_on_its_own_device_channels() {
        let a = d("cilegon-01");
        assert!(device_may_publish(&a, "simpul/v1/dev/cilegon-01/readings"));
        assert!(device_may_publish(&a, "simpul/v1/dev/cilegon-01/status"));
        assert!(!device_may_publish(&a, "simpul/v1/dev/cilegon-02/readings"));
        assert!(!device_may_publish(&a, "simpul/v1/dev/cilegon-01/ack"), "acks come from the fleet");
        assert!(!device_may_publish(&a, "simpul/v1/dev/cilegon-01/config/desired"));
        assert!(!device_may_publish(&a, "simpul/v1/dev/cilegon-01x/readings"));
        assert!(!device_may_publish(&a, "simpul/v1/dev/cilegon-01/readings/extra"));
        assert!(!device_may_publish(&a, "other/topic"));
    }

    #[test]
    fn a_device_subscribes_only_under_its_own_topics() {
        let a = d("cilegon-01");
        assert!(device_may_subscribe(&a, "simpul/v1/dev/cilegon-01/ack"));
        assert!(device_may_subscribe(&a, "simpul/v1/dev/cilegon-01/#"));
        assert!(device_may_subscribe(&a, "simpul/v1/dev/cilegon-01/config/+"));
        assert!(!device_may_subscribe(&a, "simpul/v1/dev/+/ack"));
        assert!(!device_may_subscribe(&a, "simpul/v1/dev/#"));
        assert!(!device_may_subscribe(&a, "#"));
        assert!(!device_may_subscribe(&a, "simpul/v1/dev/cilegon-01"));
        assert!(!device_may_subscribe(&a, "simpul/v1/dev/cilegon-01/"));
        assert!(!device_may_subscribe(&a, "simpul/v1/dev/cilegon-012/ack"));
    }

    const LAB: Via<'static> = Via::Plain { devices: true };

    #[test]
    fn connect_is_admitted_by_identity_client_id_and_will_topic() {
        let c = AclConfig::default();
        assert_eq!(admit(&c, LAB, Some("simpul-fleet"), "ingest-1", None), Ok(Identity::Fleet));
        assert_eq!(admit(&c, LAB, None, "dev-1", None), Ok(Identity::Device(d("dev-1"))));
        assert_eq!(
            admit(&c, LAB, Some("dev-1"), "dev-1", Some("simpul/v1/dev/dev-1/status")),
            Ok(Identity::Device(d("dev-1")))
        );
        assert!(matches!(
            admit(&c, LAB, Some("dev-1"), "dev-1", Some("simpul/v1/dev/dev-2/status")),
            Err(Refusal::WillOutsideOwnTopics(_))
        ));
        assert!(matches!(
            admit(&c, LAB, Some("dev-1"), "ingest-1", None),
            Err(Refusal::ClientIdIsNotTheIdentity { .. })
        ));
        assert!(matches!(admit(&c, LAB, Some("Not A Device"), "x", None), Err(Refusal::NotADeviceId(_))));
        assert!(matches!(admit(&c, LAB, None, "a/+/b", None), Err(Refusal::NotADeviceId(_))));
    }

    #[test]
    fn on_the_tls_listener_the_certificate_name_is_the_identity_and_nothing_else() {
        let c = AclConfig::default();
        let tls = |cn| Via::Tls { cn };
        // The username the client sent does not matter: the CN does.
        assert_eq!(admit(&c, tls(Some("dev-1")), Some("dev-2"), "dev-1", None), Ok(Identity::Device(d("dev-1"))));
        assert!(matches!(
            admit(&c, tls(Some("dev-1")), None, "dev-2", None),
            Err(Refusal::ClientIdIsNotTheIdentity { .. })
        ));
        assert_eq!(
            admit(&c, tls(None), Some("simpul-fleet"), "simpul-fleet", None),
            Err(Refusal::CertificateWithoutName)
        );
        assert!(matches!(
            admit(&c, tls(Some("simpul-fleet")), None, "simpul-fleet", None),
            Err(Refusal::FleetIdentityOverTls(_))
        ));
    }

    #[test]
    fn with_a_tls_listener_the_plain_one_admits_only_the_fleet() {
        let c = AclConfig::default();
        let plain = Via::Plain { devices: false };
        assert_eq!(admit(&c, plain, Some("simpul-fleet"), "simpul-fleet", None), Ok(Identity::Fleet));
        assert!(matches!(admit(&c, plain, None, "dev-1", None), Err(Refusal::DeviceWithoutTls(_))));
    }
}
