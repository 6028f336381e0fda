//! The server over real HTTPS on a loopback port, with a self-signed certificate made at test
//! time (rcgen): the probes and an authenticated route answer over TLS, plain HTTP to the TLS
//! port gets no HTTP answer, the server stops cleanly, and TLS files that cannot be used (a key
//! file without a key, a key that is not the certificate's, a missing file, swapped files, a
//! certificate without its key) refuse the start with a message naming the file.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use vmig as _; // links every plugin, as the `vmig` binary does
use vmig_serve::{serve_on, ServeError, ServeOptions, TlsFiles, Tokens};

const TOKEN: &str = "tls-test-token-0123456789abcdef";

/// A self-signed certificate for `localhost` and 127.0.0.1: the directory holding `cert.pem`
/// and `key.pem`, and the certificate's PEM.
fn self_signed() -> (tempfile::TempDir, TlsFiles, String) {
    let dir = tempfile::tempdir().unwrap();
    let made =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert_pem = made.cert.pem();
    let files = TlsFiles::new(dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&files.cert, &cert_pem).unwrap();
    std::fs::write(&files.key, made.signing_key.serialize_pem()).unwrap();
    (dir, files, cert_pem)
}

fn options(addr: SocketAddr, tls: TlsFiles) -> ServeOptions {
    ServeOptions {
        tls: Some(tls),
        ..ServeOptions::new(addr, Tokens::new([TOKEN]).unwrap())
    }
}

/// A client that trusts only `cert_pem`.
fn client(cert_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .build()
        .unwrap()
}

async fn get(client: &reqwest::Client, url: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut req = client.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn serves_https_with_tokens_and_no_plain_http() {
    let (_dir, files, cert_pem) = self_signed();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let server = tokio::spawn(serve_on(listener, options(addr, files), stop.clone()));
    let client = client(&cert_pem);
    let base = format!("https://localhost:{}", addr.port());

    let (status, body) = get(&client, &format!("{base}/healthz"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    // The certificate names 127.0.0.1 too.
    let (status, body) = get(&client, &format!("https://{addr}/readyz"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ready");

    let (status, body) = get(&client, &format!("{base}/v1/plugins"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body["error"],
        "this route needs `Authorization: Bearer <token>`"
    );
    let (status, body) = get(&client, &format!("{base}/v1/plugins"), Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    let sinks = body["sinks"].as_array().unwrap();
    assert!(
        sinks.iter().any(|s| s["name"] == "files"),
        "no `files` sink in {body}"
    );

    // A client that does not trust the certificate is refused by its own TLS check.
    let untrusting = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .build()
        .unwrap();
    let err = untrusting
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");

    // Plain HTTP to the TLS port: no HTTP answer, only a fatal TLS alert record.
    let plain = reqwest::Client::new()
        .get(format!("http://{addr}/healthz"))
        .send()
        .await;
    match plain {
        Ok(r) => panic!("plain HTTP got an HTTP answer: {}", r.status()),
        Err(e) => assert!(e.is_request() && !e.is_status(), "{e:?}"),
    }
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), tcp.read_to_end(&mut answer))
        .await
        .expect("the TLS port kept a plain-HTTP connection open")
        .unwrap();
    // Content type 21 (alert), TLS 1.x, 2 bytes: level 2 (fatal), then the description.
    assert_eq!(answer.len(), 7, "{answer:?}");
    assert_eq!(
        answer[..6],
        [0x15, 0x03, 0x03, 0x00, 0x02, 0x02],
        "{answer:?}"
    );
    // The server still answers over TLS after that.
    let (status, _) = get(&client, &format!("{base}/healthz"), None).await;
    assert_eq!(status, StatusCode::OK);

    // A clean stop, with the client's keep-alive connection still open.
    stop.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .expect("the TLS server did not stop");
    stopped.unwrap().unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the port still accepts connections after the stop"
    );
}

/// The `ServeError::Config` message of starting with `tls`: `check` and `serve_on` agree.
async fn refusal(tls: TlsFiles) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let options = options(listener.local_addr().unwrap(), tls);
    let checked = match options.check() {
        Err(ServeError::Config(m)) => m,
        other => panic!("check: expected a configuration error, got {other:?}"),
    };
    let started = tokio::time::timeout(
        Duration::from_secs(30),
        serve_on(listener, options, CancellationToken::new()),
    )
    .await
    .expect("the server started instead of refusing");
    match started {
        Err(ServeError::Config(m)) => {
            assert_eq!(m, checked);
            m
        }
        other => panic!("serve_on: expected a configuration error, got {other:?}"),
    }
}

fn shown(path: &Path) -> String {
    path.display().to_string()
}

#[tokio::test]
async fn tls_files_that_cannot_be_used_refuse_the_start_naming_the_file() {
    let (dir, good, _) = self_signed();
    let write = |name: &str, text: &str| -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };

    // A key file with no key in it.
    let bad_key = write("bad-key.pem", "this is not a key\n");
    let m = refusal(TlsFiles::new(&good.cert, &bad_key)).await;
    assert_eq!(
        m,
        format!(
            "the TLS key file {} holds no PEM private key (`-----BEGIN PRIVATE KEY-----`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`); give the unencrypted private key of the certificate in `--tls-cert`",
            shown(&bad_key)
        )
    );

    // A key, but not the certificate's.
    let other = rcgen::KeyPair::generate().unwrap();
    let other_key = write("other-key.pem", &other.serialize_pem());
    let m = refusal(TlsFiles::new(&good.cert, &other_key)).await;
    assert_eq!(
        m,
        format!(
            "the private key in {} is not the key of the certificate in {}: give the key the certificate was issued for (the first certificate in the file must be the server's own)",
            shown(&other_key),
            shown(&good.cert)
        )
    );

    // A PRIVATE KEY section that is no key.
    let junk_key = write(
        "junk-key.pem",
        "-----BEGIN PRIVATE KEY-----\naGVsbG8gd29ybGQ=\n-----END PRIVATE KEY-----\n",
    );
    let m = refusal(TlsFiles::new(&good.cert, &junk_key)).await;
    assert!(
        m.starts_with(&format!(
            "the TLS key file {} holds a private key that cannot be used (",
            shown(&junk_key)
        )),
        "{m}"
    );

    // An encrypted key.
    let encrypted = write(
        "encrypted-key.pem",
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\naGVsbG8gd29ybGQ=\n-----END ENCRYPTED PRIVATE KEY-----\n",
    );
    let m = refusal(TlsFiles::new(&good.cert, &encrypted)).await;
    assert!(m.contains(&shown(&encrypted)), "{m}");
    assert!(
        m.contains(
            "it holds an encrypted key, which is not supported: decrypt it with `openssl pkey"
        ),
        "{m}"
    );

    // The two files swapped.
    let m = refusal(TlsFiles::new(&good.key, &good.cert)).await;
    assert!(
        m.starts_with(&format!(
            "the TLS certificate file {} holds no PEM certificate (`-----BEGIN CERTIFICATE-----`) (it holds a private key: were `--tls-cert` and `--tls-key` swapped?)",
            shown(&good.key)
        )),
        "{m}"
    );

    // A certificate file that is not there.
    let missing = dir.path().join("missing.pem");
    let m = refusal(TlsFiles::new(&missing, &good.key)).await;
    assert!(
        m.starts_with(&format!(
            "cannot read the TLS certificate file {} (",
            shown(&missing)
        )),
        "{m}"
    );
    assert!(
        m.ends_with("); give a readable PEM file with `--tls-cert`"),
        "{m}"
    );

    // Broken PEM.
    let broken = write(
        "broken-cert.pem",
        "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n",
    );
    let m = refusal(TlsFiles::new(&broken, &good.key)).await;
    assert!(
        m.starts_with(&format!(
            "the TLS certificate file {} is not valid PEM (",
            shown(&broken)
        )),
        "{m}"
    );
}

#[test]
fn a_certificate_without_its_key_is_refused() {
    let cert = PathBuf::from("/etc/vmig/cert.pem");
    let key = PathBuf::from("/etc/vmig/key.pem");
    assert_eq!(
        TlsFiles::from_flags(Some(cert.clone()), None).unwrap_err(),
        "`--tls-cert /etc/vmig/cert.pem` was given without `--tls-key`: give both (the certificate chain and its private key, PEM) or neither"
    );
    assert_eq!(
        TlsFiles::from_flags(None, Some(key.clone())).unwrap_err(),
        "`--tls-key /etc/vmig/key.pem` was given without `--tls-cert`: give both (the certificate chain and its private key, PEM) or neither"
    );
    assert_eq!(TlsFiles::from_flags(None, None).unwrap(), None);
    assert_eq!(
        TlsFiles::from_flags(Some(cert.clone()), Some(key.clone())).unwrap(),
        Some(TlsFiles { cert, key })
    );
}
