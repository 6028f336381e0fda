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
    ca_der: CertificateDer<'static>,
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
            ca_der: ca_cert.der().clone(),
            cert_der: leaf.der().clone(),
            key_der: key.serialize_der(),
        }
    }
}

impl TestPki {
    /// The CA's certificate, DER.
    pub fn ca_der(&self) -> CertificateDer<'static> {
        self.ca_der.clone()
    }

    /// The server's certificate, DER.
    pub fn cert_der(&self) -> CertificateDer<'static> {
        self.cert_der.clone()
    }

    /// The server's private key.
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }
}

/// Listens on a free local port, completes a TLS handshake presenting `chain` (the server's
/// certificate first; add the CA to send it too) and hands every accepted stream to `serve`, in
/// a task of its own. A refused handshake ends the connection: the client saw why. Returns
/// `https://127.0.0.1:PORT`. Must run inside a Tokio runtime, which keeps the listener alive.
///
/// # Panics
/// When no port can be bound or the certificate is refused by rustls.
pub async fn tls_listener<F, Fut>(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    serve: F,
) -> String
where
    F: Fn(tokio_rustls::server::TlsStream<tokio::net::TcpStream>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("the server certificate");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a local port");
    let addr = listener.local_addr().expect("its address");
    let serve = Arc::new(serve);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let serve = Arc::clone(&serve);
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    serve(tls).await;
                }
            });
        }
    });
    format!("https://{addr}")
}

/// Listens on a free local port and, for every connection, completes a TLS handshake with
/// `pki`'s server certificate and then copies bytes both ways to the plain-TCP `upstream`
/// (`host:port`). Returns `https://127.0.0.1:PORT`. Must run inside a Tokio runtime, which
/// keeps the proxy alive.
///
/// # Panics
/// When no port can be bound or the certificate is refused by rustls.
pub async fn tls_proxy(pki: &TestPki, upstream: &str) -> String {
    let upstream = upstream.to_string();
    tls_listener(vec![pki.cert_der()], pki.key(), move |mut tls| {
        let upstream = upstream.clone();
        async move {
            let Ok(mut plain) = tokio::net::TcpStream::connect(&upstream).await else {
                return;
            };
            let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
        }
    })
    .await
}
