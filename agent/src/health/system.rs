//! The box itself: reads the files named in `[health]` and the buffer's filesystem into a
//! [`SystemHealth`] (blocking; run it on the blocking pool). CPU use needs two samples,
//! so this returns the raw ticks and the collector keeps the previous ones.

use std::path::{Path, PathBuf};

use simpul_protocol::control::{SystemHealth, Throttled};

use super::procfs::{self, CpuTimes};
use crate::config::HealthConfig;

/// Where the box's figures are read.
#[derive(Clone, Debug)]
pub struct SystemReader {
    proc_path: PathBuf,
    thermal_path: PathBuf,
    throttled_path: PathBuf,
    /// A folder on the buffer's filesystem (the buffer file's own folder).
    disk_path: PathBuf,
}

impl SystemReader {
    /// Reads what `config` names; disk figures are for the filesystem holding `buffer_path`.
    pub fn new(config: &HealthConfig, buffer_path: &Path) -> SystemReader {
        let disk_path = match buffer_path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => PathBuf::from("."),
        };
        SystemReader {
            proc_path: config.proc_path.clone(),
            thermal_path: config.thermal_path.clone(),
            throttled_path: config.throttled_path.clone(),
            disk_path,
        }
    }

    /// Everything but CPU use, plus the CPU ticks now. Missing or odd files give `None`s.
    pub fn read(&self) -> (SystemHealth, Option<CpuTimes>) {
        let text = |p: &Path| std::fs::read_to_string(p).ok();
        let memory = text(&self.proc_path.join("meminfo")).map(|t| procfs::parse_meminfo(&t)).unwrap_or_default();
        let (disk_used_bytes, disk_total_bytes) = disk(&self.disk_path);
        let system = SystemHealth {
            cpu_percent: None,
            load_1m: text(&self.proc_path.join("loadavg")).and_then(|t| procfs::parse_loadavg(&t)),
            mem_used_bytes: memory.used_bytes(),
            mem_total_bytes: memory.total_bytes,
            disk_used_bytes,
            disk_total_bytes,
            soc_temp_c: text(&self.thermal_path).and_then(|t| procfs::parse_millidegrees(&t)),
            throttled: text(&self.throttled_path).and_then(|t| procfs::parse_throttled(&t)).map(Throttled::from_raw),
        };
        let cpu = text(&self.proc_path.join("stat")).and_then(|t| procfs::parse_stat(&t));
        (system, cpu)
    }
}

/// Used and total bytes of the filesystem holding `dir` (as `df` counts them).
fn disk(dir: &Path) -> (Option<u64>, Option<u64>) {
    let Ok(s) = rustix::fs::statvfs(dir) else { return (None, None) };
    if s.f_blocks == 0 {
        return (None, None);
    }
    let total = s.f_blocks.checked_mul(s.f_frsize);
    let used = s.f_blocks.checked_sub(s.f_bfree).and_then(|b| b.checked_mul(s.f_frsize));
    (used, total)
}
