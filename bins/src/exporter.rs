//! The Prometheus exporter (`thoth-member --metrics ADDR`): answers `GET /metrics` with a
//! running member's live metrics in the OpenMetrics text format, which Prometheus scrapes.
//!
//! What it exports, read from the handle at each scrape (`Handle::metrics`, `Handle::stats`):
//! - every layer instance's counters as `thoth_layer_<layer>_<name>_total`, its gauges as
//!   `thoth_layer_<layer>_<name>`, and its histograms as `thoth_layer_<layer>_<name>`
//!   (durations, recorded in microseconds, as `..._seconds`), labelled with the group and
//!   the instance (how many layers of that name are above it in the stack);
//! - the endpoint's counters as `thoth_endpoint_<name>_total`;
//! - the driver's counters as `thoth_driver_<name>_total` and its queue depths as the
//!   histograms `thoth_driver_cmd_depth` and `thoth_driver_event_depth`.
//!
//! The format is written by `prometheus-client` (the Prometheus project's own Rust client:
//! escaping, `# TYPE` / `# HELP`, `_total`, cumulative buckets and `# EOF` as the
//! specification wants them), and HTTP is served by `tiny_http` (a small, synchronous
//! server: its parser, not one of ours, meets whatever the network sends). One thread
//! answers one request at a time; each scrape waits at most `READ` for the driver.
//!
//! Tested below (names, labels, the histogram's buckets) and on a running `thoth-member`
//! by `bins/tests/member.rs`.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;
use thoth::Hist;
use thoth::metrics::BUCKETS;
use thoth::metrics::Metrics;
use thoth::udp::{DriverStats, Handle};

/// Longest a scrape waits for the driver's metrics.
const READ: Duration = Duration::from_secs(2);
/// How often the serving thread looks whether it should stop.
const POLL: Duration = Duration::from_millis(100);

/// A running exporter; dropping it stops its thread.
pub struct Exporter {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Exporter {
    /// Serves `handle`'s metrics on `addr` (port 0: any free port; `addr` says which).
    pub fn start(addr: SocketAddr, handle: Handle) -> Result<Exporter, String> {
        let server = tiny_http::Server::http(addr).map_err(|e| format!("--metrics {addr}: {e}"))?;
        let addr = server.server_addr().to_ip().ok_or_else(|| format!("--metrics {addr}: not an IP address"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("thoth-metrics".into())
            .spawn(move || {
                while !stopping.load(Ordering::Relaxed) {
                    if let Ok(Some(req)) = server.recv_timeout(POLL) {
                        answer(req, &handle);
                    }
                }
            })
            .map_err(|e| format!("cannot start the metrics thread: {e}"))?;
        Ok(Exporter { addr, stop, thread: Some(thread) })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            // It looks every `POLL`, and a scrape in hand takes at most `READ`.
            let _ = t.join();
        }
    }
}

fn answer(req: tiny_http::Request, handle: &Handle) {
    use tiny_http::{Header, Method, Response};
    let resp = if *req.method() != Method::Get {
        Response::from_string("only GET\n").with_status_code(405)
    } else if req.url() != "/metrics" {
        Response::from_string("see /metrics\n").with_status_code(404)
    } else {
        match handle.metrics(READ) {
            Some(m) => {
                let text = encode(&m, &handle.stats());
                let kind = "application/openmetrics-text; version=1.0.0; charset=utf-8";
                Response::from_string(text)
                    .with_header(Header::from_bytes("Content-Type", kind).expect("a valid header"))
            }
            None => Response::from_string("the member did not answer in time\n").with_status_code(503),
        }
    };
    // A scraper that went away: nothing to do.
    let _ = req.respond(resp);
}

/// `metrics` and `driver` in the OpenMetrics text format.
pub fn encode(metrics: &Metrics, driver: &DriverStats) -> String {
    let mut registry = Registry::with_prefix("thoth");
    registry.register_collector(Box::new(Scrape(families(metrics, driver))));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry).expect("writing to a String");
    out
}

/// A metric's value at one label set.
#[derive(Clone, Debug)]
enum Value {
    Counter(u64),
    Gauge(u64),
    /// With what its recorded values are divided by (microseconds to seconds: a million).
    Hist(Box<Hist>, f64),
}

/// Label sets and values by metric name (without the prefix).
type Families = BTreeMap<String, Vec<(Vec<(&'static str, String)>, Value)>>;

fn families(m: &Metrics, d: &DriverStats) -> Families {
    let mut f = Families::new();
    for l in &m.layers {
        let labels = vec![("group", format!("{:016x}", l.key.group.0)), ("instance", l.key.instance.to_string())];
        let base = format!("layer_{}", clean(l.key.layer));
        for &(name, v) in &l.counters {
            f.entry(format!("{base}_{}", clean(name))).or_default().push((labels.clone(), Value::Counter(v)));
        }
        for &(name, v) in &l.gauges {
            f.entry(format!("{base}_{}", clean(name))).or_default().push((labels.clone(), Value::Gauge(v)));
        }
        for (name, h) in &l.hists {
            let (name, scale) = seconds(name);
            f.entry(format!("{base}_{}", clean(&name)))
                .or_default()
                .push((labels.clone(), Value::Hist(Box::new(*h), scale)));
        }
    }
    for (name, v) in m.endpoint.counters() {
        f.entry(format!("endpoint_{name}")).or_default().push((Vec::new(), Value::Counter(v)));
    }
    for (name, v) in d.counters() {
        f.entry(format!("driver_{name}")).or_default().push((Vec::new(), Value::Counter(v)));
    }
    f.entry("driver_cmd_depth".into()).or_default().push((Vec::new(), Value::Hist(Box::new(d.cmd_depth), 1.0)));
    f.entry("driver_event_depth".into()).or_default().push((Vec::new(), Value::Hist(Box::new(d.event_depth), 1.0)));
    f
}

/// A histogram recorded in microseconds (`..._us`) is exported in seconds.
fn seconds(name: &str) -> (String, f64) {
    match name.strip_suffix("_us") {
        Some(base) => (format!("{base}_seconds"), 1e6),
        None => (name.to_string(), 1.0),
    }
}

/// A name as Prometheus allows it: letters, digits and `_` (a custom layer may be named
/// anything).
fn clean(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect()
}

/// One scrape's families, encoded when the registry is.
#[derive(Debug)]
struct Scrape(Families);

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        for (name, series) in &self.0 {
            let Some((_, first)) = series.first() else { continue };
            let (kind, of) = match first {
                Value::Counter(_) => (MetricType::Counter, 0),
                Value::Gauge(_) => (MetricType::Gauge, 1),
                Value::Hist(..) => (MetricType::Histogram, 2),
            };
            let mut family = encoder.encode_descriptor(name, help(name), None, kind)?;
            for (labels, value) in series {
                if labels.is_empty() {
                    put(&mut family, value, of)?;
                } else {
                    put(&mut family.encode_family(labels)?, value, of)?;
                }
            }
        }
        Ok(())
    }
}

/// One sample of a family of kind `of` (0 counter, 1 gauge, 2 histogram); a layer that
/// named a counter and a gauge alike gets the first one's kind, the other is left out.
fn put(e: &mut MetricEncoder<'_>, value: &Value, of: u8) -> Result<(), std::fmt::Error> {
    match *value {
        Value::Counter(v) if of == 0 => e.encode_counter::<NoLabelSet, _, u64>(&v, None),
        Value::Gauge(v) if of == 1 => e.encode_gauge(&(v as i64)),
        Value::Hist(ref h, scale) if of == 2 => {
            // Per bucket (the encoder adds them up), up to the last that holds anything, and
            // the open one above (`f64::MAX`: the encoder's `+Inf`).
            let b = h.buckets();
            let last = b[..BUCKETS - 1].iter().rposition(|&n| n > 0).map_or(0, |i| i + 1);
            let mut buckets: Vec<(f64, u64)> = (0..last).map(|i| (Hist::upper(i) as f64 / scale, b[i])).collect();
            buckets.push((f64::MAX, b[BUCKETS - 1]));
            e.encode_histogram::<NoLabelSet>(h.sum() as f64 / scale, h.count(), &buckets, None)
        }
        _ => Ok(()),
    }
}

fn help(name: &str) -> &'static str {
    if name.starts_with("layer_") {
        "a layer's count (see the layer's documentation)"
    } else if name.starts_with("endpoint_") {
        "the endpoint's count (thoth::Stats)"
    } else {
        "the UDP driver's count (thoth::udp::DriverStats)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use thoth::metrics::{Key, LayerMetrics};
    use thoth::{GroupId, Stats};

    #[test]
    fn layers_endpoint_and_driver_in_the_text_format() {
        let mut flush = Hist::default();
        flush.record(3000); // 3 ms
        let nak = |instance, casts| LayerMetrics {
            key: Key { group: GroupId(0xab), layer: "nak", instance },
            counters: vec![("casts", casts)],
            gauges: vec![("held_bytes", 7)],
            hists: vec![("gap_us", flush)],
            state: String::new(),
        };
        let custom = LayerMetrics {
            key: Key { group: GroupId(0xab), layer: "My-Layer", instance: 0 },
            counters: vec![("seen", 1)],
            gauges: Vec::new(),
            hists: Vec::new(),
            state: String::new(),
        };
        let m =
            Metrics { layers: vec![nak(0, 5), custom, nak(1, 9)], endpoint: Stats { views: 2, ..Stats::default() } };
        let mut d = DriverStats { tx_sent: 11, ..DriverStats::default() };
        d.cmd_depth.record(4);
        let text = encode(&m, &d);
        let line = |l: &str| assert!(text.lines().any(|x| x == l), "no line `{l}` in:\n{text}");
        line("# TYPE thoth_layer_nak_casts counter");
        line(r#"thoth_layer_nak_casts_total{group="00000000000000ab",instance="0"} 5"#);
        line(r#"thoth_layer_nak_casts_total{group="00000000000000ab",instance="1"} 9"#);
        line("# TYPE thoth_layer_nak_held_bytes gauge");
        line(r#"thoth_layer_nak_held_bytes{group="00000000000000ab",instance="1"} 7"#);
        line(r#"thoth_layer_my_layer_seen_total{group="00000000000000ab",instance="0"} 1"#);
        line("# TYPE thoth_layer_nak_gap_seconds histogram");
        // 3000 µs is in the bucket of values below 4096 µs.
        line(r#"thoth_layer_nak_gap_seconds_bucket{le="0.002047",group="00000000000000ab",instance="0"} 0"#);
        line(r#"thoth_layer_nak_gap_seconds_bucket{le="0.004095",group="00000000000000ab",instance="0"} 1"#);
        line(r#"thoth_layer_nak_gap_seconds_bucket{le="+Inf",group="00000000000000ab",instance="0"} 1"#);
        line(r#"thoth_layer_nak_gap_seconds_count{group="00000000000000ab",instance="0"} 1"#);
        line("thoth_endpoint_views_total 2");
        line("thoth_endpoint_rx_bad_tag_total 0");
        line("thoth_driver_tx_sent_total 11");
        line("thoth_driver_cmd_depth_count 1");
        assert_eq!(text.lines().last(), Some("# EOF"));
        assert_eq!(text.matches("# TYPE thoth_layer_nak_casts ").count(), 1, "one family per name");
    }
}
