//! The load generators' HTTP load: keep-alive connections sending requests
//! as fast as they are answered.

use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::body::Bytes;

/// (requests per second, p99 latency in ms) of `connections` keep-alive
/// connections sending the requests `make(i)` builds (`i` counts up from the connection's number, by `connections`) for `seconds`.
pub fn load(
    port: u16,
    connections: usize,
    seconds: u64,
    make: impl Fn(usize) -> Request<Full<Bytes>> + Send + Sync + Copy + 'static,
    expect: u16,
) -> (f64, f64) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let start = Instant::now();
        let until = start + Duration::from_secs(seconds);
        let mut tasks = Vec::new();
        for c in 0..connections {
            tasks.push(tokio::spawn(async move {
                let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .unwrap();
                stream.set_nodelay(true).unwrap();
                let (mut sender, connection) =
                    hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                        .await
                        .unwrap();
                tokio::spawn(connection);
                let mut latencies = Vec::new();
                let mut i = c;
                while Instant::now() < until {
                    let request = make(i);
                    i += connections;
                    let sent = Instant::now();
                    let response = sender.send_request(request).await.unwrap();
                    let status = response.status().as_u16();
                    let _ = response.into_body().collect().await.unwrap();
                    assert_eq!(status, expect);
                    latencies.push(sent.elapsed());
                }
                latencies
            }));
        }
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.unwrap());
        }
        let took = start.elapsed().as_secs_f64();
        all.sort();
        let p99 = all[(all.len() * 99 / 100).min(all.len() - 1)].as_secs_f64() * 1000.0;
        (all.len() as f64 / took, p99)
    })
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
