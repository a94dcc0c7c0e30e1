//! Prometheus metrics at `GET /metrics` (answered only to loopback and trusted proxies):
//! request counts and latency by route and status class, panics caught, store failures.
//!
//! Labels are bounded: server functions by their registered path, everything else folded
//! into `page`, `static`, `events`, `health` or `other`, so no request can mint a label.

use axum::{
    extract::Request,
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use std::{
    collections::{BTreeMap, HashSet},
    fmt::Write,
    sync::{
        LazyLock, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default)]
struct Series {
    count: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

/// The process's counters and latency histograms, rendered for `/metrics`.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, &'static str, &'static str), Series>>,
    panics: AtomicU64,
    store_unavailable: AtomicU64,
}

/// The one set of metrics of this process.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::default);

static API_ROUTES: LazyLock<HashSet<String>> = LazyLock::new(|| {
    leptos::server_fn::axum::server_fn_paths()
        .map(|(path, _)| path.to_owned())
        .collect()
});

fn route_label(path: &str) -> String {
    match path {
        "/healthz" => "health".into(),
        "/metrics" => "metrics".into(),
        "/api/events" => "events".into(),
        p if p.starts_with("/pkg/") || p.starts_with("/favicon") => "static".into(),
        p if p.starts_with("/api/") => {
            if API_ROUTES.contains(p) {
                p.to_owned()
            } else {
                "other".into()
            }
        }
        _ => "page".into(),
    }
}

fn class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

fn method_label(m: &axum::http::Method) -> &'static str {
    match m.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "HEAD" => "HEAD",
        _ => "other",
    }
}

impl Metrics {
    fn observe(&self, route: String, method: &'static str, status: StatusCode, seconds: f64) {
        let Ok(mut map) = self.requests.lock() else {
            return;
        };
        let s = map.entry((route, method, class(status))).or_default();
        s.count += 1;
        s.sum += seconds;
        for (i, b) in BUCKETS.iter().enumerate() {
            if seconds <= *b {
                s.buckets[i] += 1;
            }
        }
    }

    /// Counts a panic, of a handler or a detached task.
    pub fn panic_caught(&self) {
        self.panics.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request answered 503 because the store did not answer.
    pub fn store_unavailable(&self) {
        self.store_unavailable.fetch_add(1, Ordering::Relaxed);
    }

    /// How many panics were counted since the process started.
    pub fn panics(&self) -> u64 {
        self.panics.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP confide_requests_total Requests answered, by route, method and status class.\n",
        );
        out.push_str("# TYPE confide_requests_total counter\n");
        let map = self.requests.lock().map(|m| {
            m.iter()
                .map(|((r, m, c), s)| ((r.clone(), *m, *c), (s.count, s.sum, s.buckets)))
                .collect::<Vec<_>>()
        });
        let series = map.unwrap_or_default();
        for ((route, method, status), (count, _, _)) in &series {
            let _ = writeln!(
                out,
                "confide_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {count}"
            );
        }
        out.push_str(
            "# HELP confide_request_duration_seconds Time to the response head, by route.\n",
        );
        out.push_str("# TYPE confide_request_duration_seconds histogram\n");
        for ((route, method, status), (count, sum, buckets)) in &series {
            let labels = format!("route=\"{route}\",method=\"{method}\",status=\"{status}\"");
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "confide_request_duration_seconds_bucket{{{labels},le=\"{b}\"}} {}",
                    buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "confide_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "confide_request_duration_seconds_sum{{{labels}}} {sum}"
            );
            let _ = writeln!(
                out,
                "confide_request_duration_seconds_count{{{labels}}} {count}"
            );
        }
        out.push_str(
            "# HELP confide_panics_total Panics anywhere in the process: handlers (answered 500) and detached tasks.\n",
        );
        out.push_str("# TYPE confide_panics_total counter\n");
        let _ = writeln!(out, "confide_panics_total {}", self.panics());
        out.push_str("# HELP confide_store_unavailable_total Requests answered 503 because the store did not answer.\n");
        out.push_str("# TYPE confide_store_unavailable_total counter\n");
        let _ = writeln!(
            out,
            "confide_store_unavailable_total {}",
            self.store_unavailable.load(Ordering::Relaxed)
        );
        out
    }
}

/// Times every request and counts its answer.
pub async fn record(req: Request, next: Next) -> Response {
    let route = route_label(req.uri().path());
    let method = method_label(req.method());
    let started = Instant::now();
    let res = next.run(req).await;
    if res.status() == StatusCode::SERVICE_UNAVAILABLE
        && res
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v == "application/json")
    {
        METRICS.store_unavailable();
    }
    METRICS.observe(route, method, res.status(), started.elapsed().as_secs_f64());
    res
}

/// Counts every panic of the process, wherever it happens: a handler's (which
/// `panic_response` also answers) and a detached task's, which nobody would hear of
/// otherwise (a rendering task, a reply task). The previous hook still runs, so the panic
/// is still printed.
pub fn count_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            METRICS.panic_caught();
            previous(info);
        }));
    });
}

/// A panic anywhere below becomes a logged 500 with the usual JSON error body (the panic
/// hook of `count_panics` has counted it).
pub fn panic_response(err: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("non-string panic payload");
    tracing::error!(panic = %detail, "a request handler panicked; answered 500");
    let mut res = app::ApiError::internal().into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        assert_eq!(
            route_label("/t/0b3e5c1e-8f2a-4c6d-9e7f-1a2b3c4d5e6f"),
            "page"
        );
        assert_eq!(route_label("/api/not/a/function"), "other");
        assert_eq!(route_label("/pkg/confide.wasm"), "static");
        assert_eq!(route_label("/api/events"), "events");
    }

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.observe("page".into(), "GET", StatusCode::OK, 0.003);
        m.observe("page".into(), "GET", StatusCode::OK, 0.2);
        m.panic_caught();
        let text = m.render();
        assert!(
            text.contains("confide_requests_total{route=\"page\",method=\"GET\",status=\"2xx\"} 2"),
            "{text}"
        );
        assert!(text.contains("confide_request_duration_seconds_bucket{route=\"page\",method=\"GET\",status=\"2xx\",le=\"0.005\"} 1"));
        assert!(text.contains("confide_request_duration_seconds_bucket{route=\"page\",method=\"GET\",status=\"2xx\",le=\"+Inf\"} 2"));
        assert!(text.contains("confide_panics_total 1"));
    }
}
