//! TLS for PostgreSQL URLs: `sslmode` and `sslrootcert` read from the URL with libpq's meaning and
//! turned into a rustls client configuration. It is the binary's one TLS stack: the same rustls
//! and aws-lc-rs provider that reqwest uses; `rustls-tokio-postgres` only glues it to the driver.
//!
//! | `sslmode`         | TLS                      | what is checked                                  |
//! |-------------------|--------------------------|--------------------------------------------------|
//! | `disable`         | never                    | —                                                |
//! | `prefer` (default)| when the server offers it| nothing (as libpq)                               |
//! | `require`         | always                   | nothing; with `sslrootcert=` the chain (as libpq)|
//! | `verify-ca`       | always                   | the chain                                        |
//! | `verify-full`     | always                   | the chain and the host name (or IP address)      |
//!
//! The chain is checked against `sslrootcert=<file>` (PEM), or the system's roots when it is absent
//! or `sslrootcert=system`. Unlike libpq, `~/.postgresql/root.crt` is never read implicitly.
//! The handshake signatures are always checked, whatever the mode. Over a Unix socket there is no
//! TLS, whatever `sslmode` says (the server never offers it there). Parsing the URL is pure;
//! [`client_config`] reads the root certificates.

use postgres::tls::MakeTlsConnect;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use rustls_tokio_postgres::MakeRustlsConnect;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};

/// libpq's `sslmode`, except `allow` (plain first), which the driver cannot do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn parse(value: &str) -> Result<SslMode, String> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(format!(
                    "sslmode={other} is not supported; use disable, prefer, require, verify-ca or verify-full"
                ));
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// The driver's own mode: whether TLS is off, optional or mandatory.
    pub fn driver(self) -> postgres::config::SslMode {
        match self {
            SslMode::Disable => postgres::config::SslMode::Disable,
            SslMode::Prefer => postgres::config::SslMode::Prefer,
            _ => postgres::config::SslMode::Require,
        }
    }
}

/// Where trusted root certificates come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Roots {
    /// `sslrootcert=<file>`: PEM certificates.
    File(PathBuf),
    /// `sslrootcert=system`, or none given: the system's store.
    System,
}

impl std::fmt::Display for Roots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Roots::File(p) => write!(f, "sslrootcert={}", p.display()),
            Roots::System => f.write_str("the system's root certificates"),
        }
    }
}

/// What the server's certificate is checked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// Nothing but the handshake signatures (prefer, require without a root certificate).
    Nothing,
    /// The chain up to a trusted root, whatever name it was issued for.
    Chain,
    /// The chain and the host name.
    ChainAndName,
}

/// The TLS settings of one database URL.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsOptions {
    pub mode: SslMode,
    /// `sslrootcert=` as given (None when absent).
    pub root_cert: Option<Roots>,
}

impl TlsOptions {
    /// What is checked: libpq's rules (`require` with a root certificate checks the chain).
    pub fn check(&self) -> Check {
        match (self.mode, &self.root_cert) {
            (SslMode::VerifyFull, _) => Check::ChainAndName,
            (SslMode::VerifyCa, _) | (SslMode::Require, Some(_)) => Check::Chain,
            _ => Check::Nothing,
        }
    }

    /// The roots the chain is checked against.
    pub fn roots(&self) -> Roots {
        self.root_cert.clone().unwrap_or(Roots::System)
    }

    /// How the connection is protected, for messages: `sslmode=verify-full, sslrootcert=/ca.pem`.
    pub fn describe(&self) -> String {
        match self.check() {
            Check::Nothing => format!("sslmode={}", self.mode.as_str()),
            _ => format!("sslmode={}, {}", self.mode.as_str(), self.roots()),
        }
    }
}

/// Splits the TLS parameters (`sslmode`, `sslrootcert`) off a `postgres://` URL: the URL the driver
/// parses, without them, and what they say. An unknown `sslmode` value is an error.
pub fn split_url(url: &str) -> Result<(String, TlsOptions), String> {
    let mut opts = TlsOptions::default();
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), opts));
    };
    let mut kept = Vec::new();
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => opts.mode = SslMode::parse(&percent_decode(value)?)?,
            "sslrootcert" => {
                let v = percent_decode(value)?;
                opts.root_cert = match v.as_str() {
                    "" => None,
                    "system" => Some(Roots::System),
                    path => Some(Roots::File(PathBuf::from(path))),
                };
            }
            _ => kept.push(pair),
        }
    }
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, opts))
}

/// `%2F` → `/`; an incomplete or non-UTF-8 escape is an error.
fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            let byte = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
            out.push(byte.ok_or_else(|| format!("`{s}` has an invalid %-escape"))?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("`{s}` is not UTF-8 once decoded"))
}

/// The crypto provider of the whole binary (reqwest's).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The rustls client configuration for `opts` (reads the root certificates when they are needed).
pub fn client_config(opts: &TlsOptions) -> Result<ClientConfig, String> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?;
    let mut config = match opts.check() {
        Check::Nothing => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SignaturesOnly(
                provider.signature_verification_algorithms,
            )))
            .with_no_client_auth(),
        check => {
            let roots = Arc::new(load_roots(&opts.roots())?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| format!("TLS set-up ({}): {e}", opts.roots()))?;
            if check == Check::ChainAndName {
                builder.with_webpki_verifier(webpki).with_no_client_auth()
            } else {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AnyName(webpki)))
                    .with_no_client_auth()
            }
        }
    };
    // What libpq 17 sends, and what a server reached by direct TLS negotiation expects.
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(config)
}

/// The driver's connector for `opts`.
pub fn connector(opts: &TlsOptions) -> Result<Connector, String> {
    client_config(opts).map(|c| Connector(MakeRustlsConnect::new(c)))
}

/// rustls-tokio-postgres' connector, except that it accepts the empty host name the driver gives
/// for a Unix socket: the driver asks for a connector there too, but never shakes hands over one
/// (it has no host name to check, and the server never offers TLS on a socket).
#[derive(Clone)]
pub struct Connector(MakeRustlsConnect);

impl<S> MakeTlsConnect<S> for Connector
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = <MakeRustlsConnect as MakeTlsConnect<S>>::Stream;
    type TlsConnect = <MakeRustlsConnect as MakeTlsConnect<S>>::TlsConnect;
    type Error = <MakeRustlsConnect as MakeTlsConnect<S>>::Error;

    fn make_tls_connect(&mut self, hostname: &str) -> Result<Self::TlsConnect, Self::Error> {
        let name = if hostname.is_empty() {
            "unix-socket.invalid"
        } else {
            hostname
        };
        <MakeRustlsConnect as MakeTlsConnect<S>>::make_tls_connect(&mut self.0, name)
    }
}

fn load_roots(roots: &Roots) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::File(path) => {
            let bad = |e: String| format!("sslrootcert={}: {e}", path.display());
            let pem = std::fs::read(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
            let certs = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(format!("not a PEM certificate file: {e}")))?;
            for cert in certs {
                store.add(cert).map_err(|e| bad(e.to_string()))?;
            }
            if store.is_empty() {
                return Err(format!(
                    "sslrootcert={}: no PEM certificate in the file",
                    path.display()
                ));
            }
        }
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                return Err(
                    "no system root certificates were found to check the server's certificate; \
give the CA with sslrootcert=<file> in the database URL"
                        .into(),
                );
            }
        }
    }
    Ok(store)
}

/// `prefer` and `require` without a root certificate: any certificate, but the handshake must be
/// signed by its key (as libpq: encryption without authentication of the server).
#[derive(Debug)]
struct SignaturesOnly(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for SignaturesOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// `verify-ca`: the full chain check, except that the certificate may name another host.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the name only after the chain, so these errors mean "chain good".
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The rustls error behind a failed connection, if TLS is why it failed.
pub fn tls_error<'e>(e: &'e (dyn std::error::Error + 'static)) -> Option<&'e rustls::Error> {
    let mut cur: Option<&'e (dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<rustls::Error>() {
            return Some(t);
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && let Some(t) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
        {
            return Some(t);
        }
        cur = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_leave_the_url_and_keep_the_rest() {
        let (url, opts) = split_url(
            "postgres://app:pw@db:5432/app?sslmode=verify-full&application_name=x&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(url, "postgres://app:pw@db:5432/app?application_name=x");
        assert_eq!(opts.mode, SslMode::VerifyFull);
        assert_eq!(opts.root_cert, Some(Roots::File("/etc/ca.pem".into())));
        assert_eq!(opts.check(), Check::ChainAndName);

        let (url, opts) = split_url("postgres://app@db/app").unwrap();
        assert_eq!(url, "postgres://app@db/app");
        assert_eq!((opts.mode, opts.check()), (SslMode::Prefer, Check::Nothing));

        let (url, opts) = split_url("postgres://app@db/app?sslmode=require").unwrap();
        assert_eq!(url, "postgres://app@db/app");
        assert_eq!(opts.check(), Check::Nothing);
    }

    #[test]
    fn libpq_rules_decide_what_is_checked() {
        let check = |q: &str| split_url(&format!("postgres://h/d?{q}")).unwrap().1.check();
        assert_eq!(check("sslmode=disable"), Check::Nothing);
        assert_eq!(check("sslmode=require&sslrootcert=/ca"), Check::Chain);
        assert_eq!(check("sslmode=verify-ca"), Check::Chain);
        assert_eq!(
            check("sslmode=verify-full&sslrootcert=system"),
            Check::ChainAndName
        );
        let (_, o) = split_url("postgres://h/d?sslmode=verify-ca&sslrootcert=system").unwrap();
        assert_eq!(o.roots(), Roots::System);
    }

    #[test]
    fn unsupported_sslmodes_and_bad_escapes_are_errors() {
        let e = split_url("postgres://h/d?sslmode=allow").unwrap_err();
        assert!(e.contains("sslmode=allow is not supported"), "{e}");
        assert!(split_url("postgres://h/d?sslmode=verify_full").is_err());
        assert!(split_url("postgres://h/d?sslrootcert=%2").is_err());
    }

    #[test]
    fn a_missing_root_file_is_named() {
        let opts = TlsOptions {
            mode: SslMode::VerifyFull,
            root_cert: Some(Roots::File("/nonexistent/ca.pem".into())),
        };
        let e = client_config(&opts).unwrap_err();
        assert!(e.starts_with("sslrootcert=/nonexistent/ca.pem: "), "{e}");
    }
}
