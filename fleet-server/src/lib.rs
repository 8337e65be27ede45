//! simpul-fleet: the fleet server. This crate starts small: the broker, ingest, store,
//! API and dashboard arrive with the delivery and health issues. What exists is the shape
//! every part will hang on: the protocol it speaks.

pub use simpul_protocol as protocol;

/// The topic filter the fleet subscribes to for every device's readings.
pub fn readings_filter() -> String {
    protocol::Topic::all_devices(protocol::topic::Channel::Readings)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_fleet_listens_to_every_devices_readings() {
        assert_eq!(super::readings_filter(), "simpul/v1/dev/+/readings");
    }
}
