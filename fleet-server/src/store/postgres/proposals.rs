//! Accepting a device's sensor proposal into its desired config (crate::proposal), in one
//! transaction under the control-plane lock: the proposal is read, the override extended,
//! the next version written and the acceptance recorded together, so two operators (on
//! any process) clicking "accept" at once get one version and one "already accepted".

use postgres::Client;
use simpul_protocol::DeviceId;

use super::config::{control_transaction, inputs, write_override};
use super::{to_i64, to_u64};
use crate::store::config::Proposal;
use crate::store::{AcceptedProposal, ConfigChange, ProposalRefused, StoreError};

/// See the module doc.
pub fn accept(
    client: &mut Client,
    device: &DeviceId,
    event: i64,
    sensor_id: Option<&str>,
    change: &ConfigChange,
) -> Result<Result<AcceptedProposal, ProposalRefused>, StoreError> {
    let mut tx = control_transaction(client)?;
    let found = tx.query_opt(
        "SELECT e.device_id, e.detail FROM device_events e JOIN devices d ON d.id = e.device_id
         WHERE e.id = $1 AND d.name = $2 AND e.kind = 'sensor_proposed'",
        &[&event, &device.as_str()],
    )?;
    let no_such = || ProposalRefused::NoSuchProposal { device: device.to_string(), event };
    let Some(found) = found else { return Ok(Err(no_such())) };
    let (id, detail): (i64, String) = (found.try_get(0)?, found.try_get(1)?);
    let Some(proposal) = Proposal::parse(&detail) else { return Ok(Err(no_such())) };
    let earlier = tx.query_opt("SELECT sensor_id, version FROM proposal_acceptances WHERE event_id = $1", &[&event])?;
    if let Some(r) = earlier {
        let (sensor_id, version): (String, i64) = (r.try_get(0)?, r.try_get(1)?);
        return Ok(Err(ProposalRefused::AlreadyAccepted { event, sensor_id, version: to_u64(version)? }));
    }
    let inputs = inputs(&mut tx, id)?;
    let (entry, text) = match proposal.into_override(event, sensor_id, &inputs, change)? {
        Ok(planned) => planned,
        Err(refused) => return Ok(Err(refused)),
    };
    let version = write_override(&mut tx, device, &text, change)?;
    tx.execute(
        "INSERT INTO proposal_acceptances (event_id, sensor_id, version, author, at_ms) VALUES ($1, $2, $3, $4, $5)",
        &[&event, &entry.sensor_id, &to_i64(version.version)?, &change.author, &change.at_ms],
    )?;
    tx.commit()?;
    Ok(Ok(AcceptedProposal { sensor_id: entry.sensor_id, version }))
}
