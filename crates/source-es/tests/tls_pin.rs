//! `ca_fingerprint` against a real local TLS server: a CA and a server certificate made at test
//! time (`vmig_testing::tls`), answering every request as Elasticsearch answers
//! `GET /`. The pin of the CA or of the server's own certificate connects; a wrong pin, a
//! malformed one and no trust at all are refused with messages naming the option.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vmig_core::SourceConfig;
use vmig_source_es::client::{Client, Distribution};
use vmig_source_es::EsSourceConfig;
use vmig_testing::tls::{tls_listener, TestPki};

const ROOT: &str = r#"{"name":"node-1","cluster_name":"test","version":{"number":"8.15.3","build_flavor":"default"},"tagline":"You Know, for Search"}"#;

/// A test PKI: a CA (as Elasticsearch's auto-configuration makes one for HTTP) and a server
/// certificate for `127.0.0.1`/`localhost` signed by it.
fn pki() -> TestPki {
    TestPki::new(&["127.0.0.1", "localhost"])
}

/// `AB:CD:…` of a certificate, computed here independently of the code under test.
fn colon_hex(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Serves `chain` (the server's certificate first) on a local port; every request gets the
/// `GET /` answer of Elasticsearch 8.15.3. Returns the base URL.
async fn serve(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> String {
    tls_listener(chain, key, |mut tls| async move {
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{ROOT}",
            ROOT.len()
        );
        let _ = tls.write_all(answer.as_bytes()).await;
        let _ = tls.shutdown().await;
    })
    .await
}

fn config(url: &str, pin: Option<&str>) -> EsSourceConfig {
    let mut c = EsSourceConfig::new(url, "products");
    c.ca_fingerprint = pin.map(str::to_string);
    c
}

/// Validates `c` as loading a configuration does, then asks the server what it is.
async fn identify(c: &EsSourceConfig) -> Result<Distribution, String> {
    c.validate().map_err(|e| e.to_string())?;
    let client = Client::new(c).map_err(|e| e.to_string())?;
    client
        .server_info()
        .await
        .map(|i| i.distribution)
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn the_pin_of_the_ca_or_of_the_servers_own_certificate_connects() {
    let p = pki();
    let url = serve(vec![p.cert_der(), p.ca_der()], p.key()).await;

    // The CA's fingerprint as Elasticsearch prints it (upper case, colons)…
    let ca_pin = colon_hex(&p.ca_der());
    let info = Client::new(&config(&url, Some(&ca_pin)))
        .unwrap()
        .server_info()
        .await
        .unwrap();
    assert_eq!(info.to_string(), "Elasticsearch 8.15.3");
    // …and as go-elasticsearch takes it (plain hex, here lower case).
    let plain = ca_pin.replace(':', "").to_lowercase();
    assert_eq!(
        identify(&config(&url, Some(&plain))).await,
        Ok(Distribution::Elasticsearch)
    );
    // The server's own certificate: the pin may name any certificate of the chain.
    assert_eq!(
        identify(&config(&url, Some(&colon_hex(&p.cert_der())))).await,
        Ok(Distribution::Elasticsearch)
    );

    // The pin replaces the host name check (as go-elasticsearch's): a server certificate for
    // another name is accepted when pinned…
    let elsewhere = TestPki::new(&["es.elsewhere.invalid"]);
    let url = serve(
        vec![elsewhere.cert_der(), elsewhere.ca_der()],
        elsewhere.key(),
    )
    .await;
    assert_eq!(
        identify(&config(&url, Some(&colon_hex(&elsewhere.ca_der())))).await,
        Ok(Distribution::Elasticsearch)
    );
    // …and refused by the CA file, which checks it.
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("http_ca.crt");
    std::fs::write(&ca_file, &elsewhere.ca_pem).unwrap();
    let mut c = config(&url, None);
    c.ca_cert = Some(ca_file.to_string_lossy().into_owned());
    let e = identify(&c).await.unwrap_err();
    assert!(e.contains("certificate not valid for name"), "{e}");
}

#[tokio::test]
async fn a_wrong_pin_is_refused_showing_the_servers_fingerprint() {
    let p = pki();
    let url = serve(vec![p.cert_der(), p.ca_der()], p.key()).await;
    let wrong = colon_hex(b"some other certificate");
    let started = Instant::now();
    let e = identify(&config(&url, Some(&wrong))).await.unwrap_err();
    assert_eq!(
        e,
        format!(
            "invalid `elasticsearch` configuration: identifying the server: {url}: the server's certificate does not match `ca_fingerprint` = {wrong}: the server's own certificate has SHA-256 fingerprint {}, and the other certificate it sent does not match either; compare with the fingerprint Elasticsearch printed at first start, or `openssl x509 -fingerprint -sha256 -in config/certs/http_ca.crt`",
            colon_hex(&p.cert_der())
        )
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a refused certificate is not retried ({:?})",
        started.elapsed()
    );

    // A server that sends only its own certificate: the CA's pin then matches nothing (the pin
    // is checked against what the server presents, not against a chain built locally).
    let alone = serve(vec![p.cert_der()], p.key()).await;
    let e = identify(&config(&alone, Some(&colon_hex(&p.ca_der()))))
        .await
        .unwrap_err();
    assert!(
        e.contains(&format!(
            "does not match `ca_fingerprint` = {}: the server's own certificate has SHA-256 fingerprint {}; compare",
            colon_hex(&p.ca_der()),
            colon_hex(&p.cert_der())
        )),
        "{e}"
    );
}

#[tokio::test]
async fn without_a_pin_the_test_server_is_not_trusted() {
    let p = pki();
    let url = serve(vec![p.cert_der(), p.ca_der()], p.key()).await;
    let started = Instant::now();
    let e = identify(&config(&url, None)).await.unwrap_err();
    assert_eq!(
        e,
        format!("invalid `elasticsearch` configuration: identifying the server: {url}: the server's TLS certificate is refused: UnknownIssuer (give the PEM file of the cluster's CA as `ca_cert`, or pin its SHA-256 with `ca_fingerprint`)")
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    // The same server is trusted through its CA's PEM file: the server itself is sound.
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("http_ca.crt");
    std::fs::write(&ca_file, &p.ca_pem).unwrap();
    let mut c = config(&url, None);
    c.ca_cert = Some(ca_file.to_string_lossy().into_owned());
    assert_eq!(identify(&c).await, Ok(Distribution::Elasticsearch));
}

#[tokio::test]
async fn malformed_or_contradictory_pins_are_refused_at_load() {
    let p = pki();
    let url = serve(vec![p.cert_der(), p.ca_der()], p.key()).await;
    let good = colon_hex(&p.ca_der());
    let short = &good[..good.len() - 3];
    assert_eq!(
        identify(&config(&url, Some(short))).await.unwrap_err(),
        "invalid `elasticsearch` configuration: `ca_fingerprint` must be a certificate's SHA-256 fingerprint: 64 hex digits, colons allowed (as Elasticsearch prints it, `AB:CD:…`); it has 62 hex digits"
    );
    // Client::new checks it too (for callers that skip validation).
    assert!(Client::new(&config(&url, Some("not hex at all")))
        .unwrap_err()
        .to_string()
        .contains("`ca_fingerprint` must be a certificate's SHA-256 fingerprint"));
    let sha1_like = "SHA256 Fingerprint=".to_string() + &good;
    let e = identify(&config(&url, Some(&sha1_like))).await.unwrap_err();
    assert!(
        e.ends_with("it holds a character that is neither a hex digit nor `:`")
            && !e.contains(&good),
        "{e}"
    );

    let mut c = config(&url, Some(&good));
    c.insecure = true;
    assert_eq!(
        identify(&c).await.unwrap_err(),
        "invalid `elasticsearch` configuration: `ca_fingerprint` pins the server's certificate and `insecure = true` accepts any certificate: give only one (the pin)"
    );
    let mut c = config(&url, Some(&good));
    c.ca_cert = Some("http_ca.crt".into());
    assert!(identify(&c)
        .await
        .unwrap_err()
        .contains("give either `ca_cert` (verify the server's chain and host name against that CA) or `ca_fingerprint`"));
}
