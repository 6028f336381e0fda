//! `ca_fingerprint`: trusting a cluster by the SHA-256 of one of its certificates, as the
//! Elasticsearch clients' `CertificateFingerprint` / `caFingerprint` do.
//!
//! Elasticsearch prints the fingerprint of its HTTP CA certificate at first start
//! (`openssl x509 -fingerprint -sha256 -in config/certs/http_ca.crt` shows it again). With the
//! pin, the server is accepted when **any** certificate of the chain it presents (its own or an
//! intermediate, including the CA when the server sends it) has that SHA-256 over its DER bytes.
//! The pin *replaces* the usual verification: neither the chain up to a trusted root, nor the
//! host name, nor the validity dates are checked — exactly what go-elasticsearch (and so
//! milvus-migration) does. The handshake signatures are still verified (the server must hold the
//! private key of the certificate it presents), with the crypto provider's algorithms.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};
use sha2::{Digest, Sha256};
use vmig_core::{Error, Result};

/// A SHA-256 certificate fingerprint: 32 bytes, shown as Elasticsearch prints it
/// (`AB:CD:…`, upper-case hex separated by colons).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// Parses 64 hex digits, in either case, optionally separated by colons (`ab12…` or
    /// `AB:12:…`). Surrounding white space is ignored.
    ///
    /// # Errors
    /// A configuration error of `plugin` naming `ca_fingerprint` when the text is not that; the
    /// message never repeats the text.
    pub fn parse(plugin: &str, text: &str) -> Result<Fingerprint> {
        let what = "`ca_fingerprint` must be a certificate's SHA-256 fingerprint: 64 hex digits, \
                    colons allowed (as Elasticsearch prints it, `AB:CD:…`)";
        let mut digits = Vec::with_capacity(64);
        for c in text.trim().chars().filter(|c| *c != ':') {
            match c.to_digit(16) {
                // A hex digit is below 16, so it fits in a byte.
                Some(d) => digits.push(u8::try_from(d).unwrap_or(0)),
                None => {
                    return Err(Error::config(
                        plugin,
                        format!("{what}; it holds a character that is neither a hex digit nor `:`"),
                    ))
                }
            }
        }
        if digits.len() != 64 {
            return Err(Error::config(
                plugin,
                format!("{what}; it has {} hex digits", digits.len()),
            ));
        }
        let mut bytes = [0u8; 32];
        for (b, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
            *b = (pair[0] << 4) | pair[1];
        }
        Ok(Fingerprint(bytes))
    }

    /// The SHA-256 of a certificate's DER bytes.
    pub fn of(der: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(der).into())
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// Why a pinned server was refused: no certificate of its chain has the pinned SHA-256. The
/// message names `ca_fingerprint` and shows the fingerprint of the server's own certificate
/// (public information) so the user can compare.
#[derive(Debug, Clone)]
pub struct FingerprintMismatch {
    /// The pinned fingerprint.
    pub expected: Fingerprint,
    /// The fingerprint of the server's own (end-entity) certificate.
    pub end_entity: Fingerprint,
    /// How many certificates the server presented.
    pub presented: usize,
}

impl fmt::Display for FingerprintMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let others = match self.presented {
            0 | 1 => String::new(),
            2 => ", and the other certificate it sent does not match either".to_string(),
            n => format!(
                ", and none of the {} other certificates it sent matches",
                n - 1
            ),
        };
        write!(
            f,
            "the server's certificate does not match `ca_fingerprint` = {}: the server's own \
             certificate has SHA-256 fingerprint {}{others}; compare with the fingerprint \
             Elasticsearch printed at first start, or `openssl x509 -fingerprint -sha256 -in \
             config/certs/http_ca.crt`",
            self.expected, self.end_entity
        )
    }
}

impl std::error::Error for FingerprintMismatch {}

/// A rustls certificate verifier accepting the server when a certificate of its chain has the
/// pinned SHA-256; handshake signatures are verified with the provider's algorithms.
#[derive(Debug)]
struct PinnedVerifier {
    pin: Fingerprint,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let matches = std::iter::once(end_entity)
            .chain(intermediates)
            .any(|c| Fingerprint::of(c.as_ref()) == self.pin);
        if matches {
            return Ok(ServerCertVerified::assertion());
        }
        let mismatch = FingerprintMismatch {
            expected: self.pin,
            end_entity: Fingerprint::of(end_entity.as_ref()),
            presented: 1 + intermediates.len(),
        };
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(
            OtherError(Arc::new(mismatch)),
        )))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The TLS configuration of a client pinning `pin`: the process's default crypto provider when
/// one is installed, else `ring` (as reqwest chooses), TLS 1.2 and 1.3, no client certificate.
///
/// # Errors
/// When the provider supports neither TLS version.
pub fn pinned_tls_config(plugin: &str, pin: Fingerprint) -> Result<rustls::ClientConfig> {
    let provider = CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let verifier = PinnedVerifier {
        pin,
        provider: provider.clone(),
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::config(plugin, format!("TLS for `ca_fingerprint`: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(config)
}

/// When `e` (or an error it wraps) is a refused server certificate, its message: the
/// [`FingerprintMismatch`] text for a pin, else rustls's reason.
pub(crate) fn certificate_refusal(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(rustls::Error::InvalidCertificate(c)) = err.downcast_ref::<rustls::Error>() {
            if let CertificateError::Other(OtherError(o)) = c {
                if let Some(m) = o.downcast_ref::<FingerprintMismatch>() {
                    return Some(m.to_string());
                }
            }
            return Some(format!(
                "the server's TLS certificate is refused: {c} (give the PEM file of the \
                 cluster's CA as `ca_cert`, or pin its SHA-256 with `ca_fingerprint`)"
            ));
        }
        // The handshake failure arrives as an `io::Error` wrapping (an `io::Error` wrapping)
        // rustls's error; `io::Error::source()` skips the wrapped error itself, `get_ref` does not.
        let wrapped = err
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            .map(|i| i as &(dyn std::error::Error + 'static));
        next = wrapped.or_else(|| err.source());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_elasticsearch_prints_and_refuses_the_rest() {
        let plain = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
        let p = Fingerprint::parse("elasticsearch", plain).unwrap();
        let shown = p.to_string();
        assert_eq!(
            shown,
            "A1:B2:C3:D4:E5:F6:07:18:29:3A:4B:5C:6D:7E:8F:90:A1:B2:C3:D4:E5:F6:07:18:29:3A:4B:5C:6D:7E:8F:90"
        );
        assert_eq!(Fingerprint::parse("elasticsearch", &shown).unwrap(), p);
        assert_eq!(
            Fingerprint::parse("elasticsearch", &format!("  {}\n", plain.to_uppercase())).unwrap(),
            p
        );
        let short = Fingerprint::parse("elasticsearch", "AB:CD").unwrap_err();
        assert_eq!(short.to_string(), "invalid `elasticsearch` configuration: `ca_fingerprint` must be a certificate's SHA-256 fingerprint: 64 hex digits, colons allowed (as Elasticsearch prints it, `AB:CD:…`); it has 4 hex digits");
        let secretish = format!("{}zz", &plain[..62]);
        let bad = Fingerprint::parse("opensearch", &secretish)
            .unwrap_err()
            .to_string();
        assert!(
            bad.starts_with("invalid `opensearch` configuration: `ca_fingerprint` must be")
                && bad.ends_with("it holds a character that is neither a hex digit nor `:`")
                && !bad.contains(&secretish[..10]),
            "{bad}"
        );
        assert!(Fingerprint::parse("elasticsearch", &format!("{plain}00")).is_err());
        assert!(Fingerprint::parse("elasticsearch", "").is_err());
    }

    #[test]
    fn fingerprint_is_the_sha256_of_the_der_bytes() {
        // SHA-256("abc"), a published test vector.
        assert_eq!(
            Fingerprint::of(b"abc").to_string().replace(':', ""),
            "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"
        );
    }
}
