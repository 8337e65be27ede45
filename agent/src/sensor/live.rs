//! [`LiveSensors`]: the running sensors as they change, for the heartbeat and the status
//! page. The [`super::Supervisor`] publishes a new set after every change, so a sensor the
//! fleet adds shows up in the next heartbeat and on the page without a restart.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;

use super::SensorStats;

/// The running sensors at one moment.
#[derive(Clone, Debug, Default)]
pub struct Running {
    /// Live counters of each sensor, by id.
    pub stats: BTreeMap<String, Arc<SensorStats>>,
    /// The serial ports they use.
    pub ports: Vec<PathBuf>,
}

/// A reader of the running sensors; cheap to clone.
#[derive(Clone, Debug)]
pub struct LiveSensors(watch::Receiver<Running>);

impl LiveSensors {
    /// Follows `rx`.
    pub fn new(rx: watch::Receiver<Running>) -> Self {
        LiveSensors(rx)
    }

    /// A set that never changes (tools and tests).
    pub fn fixed(stats: BTreeMap<String, Arc<SensorStats>>) -> Self {
        // The receiver keeps the last value after the sender is gone.
        let (_tx, rx) = watch::channel(Running { stats, ports: Vec::new() });
        LiveSensors(rx)
    }

    /// Every running sensor's counters now (the counters themselves are live).
    pub fn stats(&self) -> BTreeMap<String, Arc<SensorStats>> {
        self.0.borrow().stats.clone()
    }

    /// The serial ports the running sensors use.
    pub fn ports(&self) -> Vec<PathBuf> {
        self.0.borrow().ports.clone()
    }

    /// The running sensors' ids.
    pub fn ids(&self) -> Vec<String> {
        self.0.borrow().stats.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_set_keeps_its_sensors_after_its_sender_is_gone() {
        let mut stats = BTreeMap::new();
        stats.insert("river".to_owned(), Arc::new(SensorStats::new("ascii")));
        let live = LiveSensors::fixed(stats);
        assert_eq!(live.ids(), vec!["river".to_owned()]);
        assert!(live.ports().is_empty());
    }

    #[test]
    fn a_followed_set_sees_each_change() {
        let (tx, rx) = watch::channel(Running::default());
        let live = LiveSensors::new(rx);
        assert!(live.ids().is_empty());
        let mut stats = BTreeMap::new();
        stats.insert("rain".to_owned(), Arc::new(SensorStats::new("modbus")));
        tx.send_replace(Running { stats, ports: vec![PathBuf::from("/dev/ttyUSB0")] });
        assert_eq!(live.ids(), vec!["rain".to_owned()]);
        assert_eq!(live.ports(), vec![PathBuf::from("/dev/ttyUSB0")]);
    }
}
