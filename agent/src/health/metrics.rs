//! `GET /metrics` in the Prometheus (OpenMetrics) text format, when `[health]
//! metrics_listen` is set. Each scrape reads the sources afresh through the
//! [`Collector`]; a figure the box does not have (no thermal zone) has no series at all.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::collector::Collector as PromCollector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::collect::{Collector, View};

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds `addr` and serves `/metrics` until `shutdown`; returns the bound address (port 0
/// becomes a real port) and the server task.
pub async fn serve(
    addr: SocketAddr,
    collector: Arc<Collector>,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let app = Router::new().route("/metrics", get(metrics)).with_state(collector);
    let task = tokio::spawn(async move {
        let server = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned());
        if let Err(e) = server.await {
            tracing::warn!(error = %e, "the metrics server failed");
        }
    });
    tracing::info!(%local, "serving Prometheus metrics on /metrics");
    Ok((local, task))
}

async fn metrics(State(collector): State<Arc<Collector>>) -> Response {
    match render(collector.view().await) {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The exposition text of one [`View`].
pub fn render(view: View) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape(view)));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)?;
    Ok(out)
}

/// One scrape's figures, encoded as constant metrics.
#[derive(Debug)]
struct Scrape(View);

fn gauge<N: prometheus_client::encoding::EncodeGaugeValue>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: Option<N>,
) -> Result<(), std::fmt::Error> {
    let Some(v) = value else { return Ok(()) };
    let g = ConstGauge::new(v);
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, value: Option<u64>) -> Result<(), std::fmt::Error> {
    let Some(v) = value else { return Ok(()) };
    let c = ConstCounter::new(v);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

impl PromCollector for Scrape {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let View { heartbeat: hb, sensors, uplink } = &self.0;
        let s = &hb.system;
        gauge(&mut e, "simpul_agent_uptime_seconds", "Seconds since the agent started", Some(hb.uptime_s))?;
        gauge(&mut e, "simpul_agent_buffer_depth", "Readings in the buffer not yet acknowledged", hb.buffer_depth)?;
        gauge(
            &mut e,
            "simpul_agent_oldest_unsent_age_seconds",
            "Age of the oldest reading not yet acknowledged",
            hb.oldest_unsent_age_s,
        )?;
        if let Some(u) = uplink {
            gauge(
                &mut e,
                "simpul_agent_uplink_connected",
                "1 when connected to the broker",
                Some(u64::from(u.connected)),
            )?;
            counter(&mut e, "simpul_agent_uplink_connects", "Successful connects", Some(u.connects))?;
            counter(&mut e, "simpul_agent_uplink_batches_sent", "Reading batches published", Some(u.batches_sent))?;
            counter(&mut e, "simpul_agent_uplink_readings_sent", "Readings published", Some(u.readings_sent))?;
        }
        gauge(&mut e, "simpul_agent_cpu_percent", "CPU busy over the last heartbeat interval", s.cpu_percent)?;
        gauge(&mut e, "simpul_agent_load_1m", "1-minute load average", s.load_1m)?;
        gauge(&mut e, "simpul_agent_memory_used_bytes", "Memory in use (total minus available)", s.mem_used_bytes)?;
        gauge(&mut e, "simpul_agent_memory_total_bytes", "Memory installed", s.mem_total_bytes)?;
        gauge(&mut e, "simpul_agent_disk_used_bytes", "Disk in use on the buffer's filesystem", s.disk_used_bytes)?;
        gauge(&mut e, "simpul_agent_disk_total_bytes", "Size of the buffer's filesystem", s.disk_total_bytes)?;
        gauge(&mut e, "simpul_agent_soc_temperature_celsius", "SoC temperature", s.soc_temp_c)?;
        gauge(&mut e, "simpul_agent_throttled_flags", "The Pi firmware's throttle word", s.throttled.map(|t| t.raw))?;
        if sensors.is_empty() {
            return Ok(());
        }
        {
            let help = "1 when the sensor's port is open";
            let mut m = e.encode_descriptor("simpul_agent_sensor_connected", help, None, MetricType::Gauge)?;
            for (id, snap) in sensors {
                let labels = [("sensor", id.as_str())];
                ConstGauge::new(i64::from(snap.connected)).encode(m.encode_family(&labels)?)?;
            }
        }
        {
            let help = "Frames that gave readings";
            let mut m = e.encode_descriptor("simpul_agent_sensor_frames_ok", help, None, MetricType::Counter)?;
            for (id, snap) in sensors {
                let labels = [("sensor", id.as_str())];
                ConstCounter::new(snap.frames_ok).encode(m.encode_family(&labels)?)?;
            }
        }
        let help = "Sensor errors by kind (garbage, crc, timeout, io, exception)";
        let mut m = e.encode_descriptor("simpul_agent_sensor_errors", help, None, MetricType::Counter)?;
        for (id, snap) in sensors {
            let kinds = [
                ("garbage", snap.garbage),
                ("crc", snap.crc_errors),
                ("timeout", snap.timeouts),
                ("io", snap.io_errors),
                ("exception", snap.exceptions),
            ];
            for (kind, n) in kinds {
                let labels = [("sensor", id.as_str()), ("kind", kind)];
                ConstCounter::new(n).encode(m.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}
