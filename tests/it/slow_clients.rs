//! Clients that try to hold the webhook: headers sent one byte a second, request bodies that
//! trickle in, and bodies over the limit on HTTP/2 as well as HTTP/1.1. Each is answered or
//! cut off in bounded time, and normal reviews keep being answered meanwhile.

use crate::signet_server;

use std::sync::Arc;
use std::time::{Duration, Instant};

use signet_server::{Signet, pod_review, policy_dir, static_policy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;

/// How many slow connections are opened at once.
const SLOW_CONNECTIONS: usize = 200;
/// Every slow connection must be closed by the server within this long (the header read
/// timeout is 5 s; the rest is slack for a loaded machine).
const CUT_OFF_BOUND: Duration = Duration::from_secs(12);

fn webhook_port(signet: &Signet) -> u16 {
    signet.webhook.rsplit(':').next().unwrap().parse().unwrap()
}

fn tls_connector(ca_pem: &[u8], alpn: &[u8]) -> TlsConnector {
    signet_server::install_crypto();
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    for block in pem::parse_many(ca_pem).unwrap() {
        roots.add(block.into_contents().into()).unwrap();
    }
    let mut config = tokio_rustls::rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    TlsConnector::from(Arc::new(config))
}

/// Sends `head` one byte a second on an HTTP/1.1 connection; returns how long the server
/// kept the connection open (None: still open after `give_up`).
async fn trickle(connector: TlsConnector, port: u16, head: Vec<u8>, give_up: Duration) -> Option<Duration> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 512];
    for byte in head.iter().cycle() {
        if started.elapsed() > give_up {
            return None;
        }
        if tls.write_all(&[*byte]).await.is_err() || tls.flush().await.is_err() {
            return Some(started.elapsed());
        }
        // Reading doubles as the one-second pause; an answer or a close both end the wait.
        match tokio::time::timeout(Duration::from_secs(1), tls.read(&mut buf)).await {
            Err(_) => {}
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {} // e.g. a 408 before the close; keep reading until the close
        }
    }
    None
}

async fn slow_connections_are_cut_off(head: Vec<u8>) {
    let dir = policy_dir(&[&static_policy("all", "**", "pass", "enforce")]);
    let signet = Signet::start(dir.path(), &[]).await;
    let port = webhook_port(&signet);
    let connector = tls_connector(&signet.ca_pem, b"http/1.1");
    let slow: Vec<_> = (0..SLOW_CONNECTIONS)
        .map(|_| {
            tokio::spawn(trickle(
                connector.clone(),
                port,
                head.clone(),
                CUT_OFF_BOUND + Duration::from_secs(3),
            ))
        })
        .collect();
    // While they trickle, a normal review is answered promptly.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Instant::now();
    let answer = signet
        .review("validate", &pod_review("meanwhile", &["ghcr.io/org/app:v1"]))
        .await;
    assert_eq!(answer["allowed"], true, "{answer}");
    println!(
        "a normal review beside {SLOW_CONNECTIONS} slow connections took {:?}",
        started.elapsed()
    );
    let mut open = 0;
    let mut slowest = Duration::ZERO;
    for task in slow {
        match task.await.unwrap() {
            None => open += 1,
            Some(held) => slowest = slowest.max(held),
        }
    }
    println!("slowest cut-off: {slowest:?}");
    assert_eq!(open, 0, "{open} of {SLOW_CONNECTIONS} slow connections were still open");
    assert!(slowest <= CUT_OFF_BOUND, "a slow connection was held {slowest:?}");
}

#[tokio::test]
async fn headers_sent_a_byte_a_second_are_cut_off() {
    let head = b"POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".to_vec();
    slow_connections_are_cut_off(head).await;
}

#[tokio::test]
async fn bodies_sent_a_byte_a_second_are_cut_off() {
    let review = pod_review("slow-body", &["ghcr.io/org/app:v1"]).to_string();
    let mut head = format!(
        "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        review.len()
    )
    .into_bytes();
    // The headers arrive at once, then the body trickles.
    let dir = policy_dir(&[&static_policy("all", "**", "pass", "enforce")]);
    let signet = Signet::start(dir.path(), &[]).await;
    let port = webhook_port(&signet);
    let connector = tls_connector(&signet.ca_pem, b"http/1.1");
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(&head).await.unwrap();
    head.clear();
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    for byte in review.bytes() {
        if started.elapsed() > CUT_OFF_BOUND + Duration::from_secs(3) {
            break;
        }
        if tls.write_all(&[byte]).await.is_err() {
            break;
        }
        match tokio::time::timeout(Duration::from_secs(1), tls.read(&mut buf)).await {
            Err(_) => {}
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
        }
    }
    let held = started.elapsed();
    let answer = String::from_utf8_lossy(&answer);
    println!("slow body held {held:?}; answer: {answer}");
    assert!(held <= CUT_OFF_BOUND, "a trickling body held the connection {held:?}");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

fn over_limit_body() -> Vec<u8> {
    format!(
        "{{\"kind\":\"AdmissionReview\",\"pad\":\"{}\"}}",
        "x".repeat(9 * 1024 * 1024)
    )
    .into_bytes()
}

async fn post_with(client: reqwest::Client, url: &str, body: reqwest::Body) -> Result<(u16, reqwest::Version), String> {
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok((response.status().as_u16(), response.version()))
}

#[tokio::test]
async fn over_limit_bodies_get_413_on_http2_and_http1() {
    let dir = policy_dir(&[&static_policy("all", "**", "pass", "enforce")]);
    let signet = Signet::start(dir.path(), &[]).await;
    let ca = reqwest::Certificate::from_pem(&signet.ca_pem).unwrap();
    let h2 = reqwest::Client::builder()
        .tls_certs_only([ca.clone()])
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let h1 = reqwest::Client::builder()
        .tls_certs_only([ca])
        .http1_only()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let url = format!("{}/validate", signet.webhook);
    for (name, client, version) in [
        ("HTTP/2", &h2, reqwest::Version::HTTP_2),
        ("HTTP/1.1", &h1, reqwest::Version::HTTP_11),
    ] {
        let sized = post_with(client.clone(), &url, over_limit_body().into()).await;
        assert_eq!(sized, Ok((413, version)), "{name} with a content-length");
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            over_limit_body().chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
        let streamed = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
        let streamed = post_with(client.clone(), &url, streamed).await;
        assert_eq!(
            streamed,
            Ok((413, version)),
            "{name} streamed, without a content-length"
        );
        // The connection (or stream) that was refused leaves the server serving.
        let fine = pod_review("after", &["ghcr.io/org/app:v1"]).to_string();
        assert_eq!(
            post_with(client.clone(), &url, fine.into()).await,
            Ok((200, version)),
            "{name}"
        );
    }
}
