//! Accepting a device's sensor proposal into its desired config (crate::proposal), in
//! one IMMEDIATE transaction: the proposal is read, the override extended, the next
//! version written and the acceptance recorded together, so two operators clicking
//! "accept" at once get one version and one "already accepted".

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use simpul_protocol::DeviceId;

use super::config::{inputs, write_override};
use super::{to_i64, to_u64};
use crate::store::config::Proposal;
use crate::store::{AcceptedProposal, ConfigChange, ProposalRefused, StoreError};

/// See the module doc.
pub fn accept(
    conn: &mut Connection,
    device: &DeviceId,
    event: i64,
    sensor_id: Option<&str>,
    change: &ConfigChange,
) -> Result<Result<AcceptedProposal, ProposalRefused>, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found: Option<(i64, String)> = tx
        .prepare_cached(
            "SELECT e.device_id, e.detail FROM device_events e JOIN devices d ON d.id = e.device_id
             WHERE e.id = ?1 AND d.name = ?2 AND e.kind = 'sensor_proposed'",
        )?
        .query_row(params![event, device.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let no_such = || ProposalRefused::NoSuchProposal { device: device.to_string(), event };
    let Some((id, detail)) = found else { return Ok(Err(no_such())) };
    let Some(proposal) = Proposal::parse(&detail) else { return Ok(Err(no_such())) };
    let earlier: Option<(String, i64)> = tx
        .prepare_cached("SELECT sensor_id, version FROM proposal_acceptances WHERE event_id = ?1")?
        .query_row([event], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let Some((sensor_id, version)) = earlier {
        return Ok(Err(ProposalRefused::AlreadyAccepted { event, sensor_id, version: to_u64(version)? }));
    }
    let (entry, text) = match proposal.into_override(event, sensor_id, &inputs(&tx, id)?, change)? {
        Ok(planned) => planned,
        Err(refused) => return Ok(Err(refused)),
    };
    let version = write_override(&tx, device, &text, change)?;
    tx.prepare_cached(
        "INSERT INTO proposal_acceptances (event_id, sensor_id, version, author, at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![event, entry.sensor_id, to_i64(version.version)?, change.author, change.at_ms])?;
    tx.commit()?;
    Ok(Ok(AcceptedProposal { sensor_id: entry.sensor_id, version }))
}
