//! TLS for tests: a certificate authority and a server certificate made at test time (rcgen),
//! and a TLS-terminating proxy (tokio-rustls) that puts TLS in front of a plain-TCP server.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A CA and a server certificate it signed.
#[derive(Debug)]
pub struct TestPki {
    /// The CA's certificate, PEM (what a client is told to trust).
    pub ca_pem: String,
    /// The server's certificate, PEM.
    pub cert_pem: String,
    /// The server's private key, PEM (PKCS#8).
    pub key_pem: String,
    cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl TestPki {
    /// A fresh CA and a server certificate for `names` (host names or IP addresses).
    ///
    /// # Panics
    /// When rcgen fails (it does not for these parameters).
    pub fn new(names: &[&str]) -> TestPki {
        let ca_key = KeyPair::generate().expect("a CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "vmig test CA");
        let ca_cert = ca.self_signed(&ca_key).expect("the CA certificate");
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().expect("a server key");
        let names: Vec<String> = names.iter().map(|n| (*n).to_string()).collect();
        let mut leaf = CertificateParams::new(names.clone()).expect("server parameters");
        leaf.distinguished_name.push(
            DnType::CommonName,
            names.first().map_or("server", String::as_str),
        );
        let leaf = leaf
            .signed_by(&key, &issuer)
            .expect("the server certificate");
        TestPki {
            ca_pem: ca_cert.pem(),
            cert_pem: leaf.pem(),
            key_pem: key.serialize_pem(),
            cert_der: leaf.der().clone(),
            key_der: key.serialize_der(),
        }
    }
}

/// Listens on a free local port and, for every connection, completes a TLS handshake with
/// `pki`'s server certificate and then copies bytes both ways to the plain-TCP `upstream`
/// (`host:port`). Returns `https://127.0.0.1:PORT`. Must run inside a Tokio runtime, which
/// keeps the proxy alive.
///
/// # Panics
/// When no port can be bound or the certificate is refused by rustls.
pub async fn tls_proxy(pki: &TestPki, upstream: &str) -> String {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(
        vec![pki.cert_der.clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.key_der.clone())),
    )
    .expect("the server certificate");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a local port");
    let addr = listener.local_addr().expect("its address");
    let upstream = upstream.to_string();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let upstream = upstream.clone();
            tokio::spawn(async move {
                // A refused handshake ends here: the client saw why.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut plain) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    format!("https://{addr}")
}
