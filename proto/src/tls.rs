//! Mutual TLS for the lottery: the rustls configurations of the central and
//! of an agency, and which agency a verified certificate names. No sockets
//! here: the mio loop (and the agency) drive rustls connections over their
//! own sockets; this module only builds what those connections are made from.
//!
//! Invariants:
//! - TLS 1.3 only, rustls with the `ring` provider.
//! - The central requires a client certificate that chains to `TLS_CLIENT_CA`,
//!   is valid now, is for client authentication, and whose subject common
//!   name is `agency-N` with `1 <= N <= AGENCIES` (written exactly so: no
//!   leading zeros or signs). Anything else fails the handshake, so no frame
//!   of such a peer is ever processed; [`agency_of`] then reads the agency a
//!   connection is bound to from the certificate rustls verified.
//! - No session resumption: every connection presents and has its certificate
//!   verified, so the binding always comes from a certificate checked now.
//! - An agency trusts only its CA, checks the central's certificate against
//!   the host of `server.address`, and refuses to start with a certificate
//!   that names another agency than its own id.
//! - Every error names the file it is about.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::client::Resumption;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, OtherError,
    RootCertStore, ServerConfig, SignatureScheme,
};

/// The contents of a PEM file and the name it is reported by.
#[derive(Clone, Debug)]
pub struct Pem {
    name: String,
    bytes: Vec<u8>,
}

impl Pem {
    /// Reads `path`; the path is the name errors give.
    pub fn read(path: &Path) -> Result<Pem, TlsError> {
        let name = path.display().to_string();
        match std::fs::read(path) {
            Ok(bytes) => Ok(Pem { name, bytes }),
            Err(e) => Err(TlsError::Unreadable {
                file: name,
                reason: e.to_string(),
            }),
        }
    }

    /// PEM already in memory (tests, or a file read elsewhere), reported as `name`.
    pub fn from_bytes(name: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Pem {
        Pem {
            name: name.into(),
            bytes: bytes.into(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every CERTIFICATE section, in order; at least one.
    fn certificates(&self) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        self.check_not_empty()?;
        let certs = CertificateDer::pem_slice_iter(&self.bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.bad_pem(e))?;
        if certs.is_empty() {
            return Err(TlsError::NoCertificate {
                file: self.name.clone(),
            });
        }
        Ok(certs)
    }

    /// The first private key (PKCS#8, PKCS#1 or SEC1).
    fn private_key(&self) -> Result<PrivateKeyDer<'static>, TlsError> {
        self.check_not_empty()?;
        match PrivateKeyDer::from_pem_slice(&self.bytes) {
            Ok(key) => Ok(key),
            Err(rustls::pki_types::pem::Error::NoItemsFound) => Err(TlsError::NoPrivateKey {
                file: self.name.clone(),
            }),
            Err(e) => Err(self.bad_pem(e)),
        }
    }

    fn check_not_empty(&self) -> Result<(), TlsError> {
        if self.bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(TlsError::Empty {
                file: self.name.clone(),
            });
        }
        Ok(())
    }

    fn bad_pem(&self, e: rustls::pki_types::pem::Error) -> TlsError {
        TlsError::BadPem {
            file: self.name.clone(),
            reason: e.to_string(),
        }
    }
}

/// A TLS setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsError {
    Unreadable {
        file: String,
        reason: String,
    },
    Empty {
        file: String,
    },
    BadPem {
        file: String,
        reason: String,
    },
    NoCertificate {
        file: String,
    },
    NoPrivateKey {
        file: String,
    },
    /// The key is not one rustls can sign with (or not a key at all).
    BadKey {
        file: String,
        reason: String,
    },
    /// The key is not the certificate's.
    KeyMismatch {
        cert: String,
        key: String,
    },
    /// A certificate in the CA file is not a CA certificate, or cannot be a
    /// trust anchor.
    BadCa {
        file: String,
        reason: String,
    },
    /// The certificate cannot be read, or does not name an agency.
    NotAnAgencyCertificate {
        file: String,
        reason: NotAnAgency,
    },
    /// The agency's certificate names another agency than the agency's id.
    OtherAgency {
        file: String,
        named: u32,
        agency: u32,
    },
    /// The host of `server.address` cannot be checked against a certificate.
    BadServerAddress {
        address: String,
        reason: String,
    },
    /// rustls refused the configuration for another reason.
    Config {
        reason: String,
    },
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Unreadable { file, reason } => write!(f, "{file}: cannot read: {reason}"),
            TlsError::Empty { file } => write!(f, "{file}: the file is empty"),
            TlsError::BadPem { file, reason } => write!(f, "{file}: not valid PEM: {reason}"),
            TlsError::NoCertificate { file } => {
                write!(f, "{file}: no certificate (no BEGIN CERTIFICATE section)")
            }
            TlsError::NoPrivateKey { file } => {
                write!(f, "{file}: no private key (no BEGIN PRIVATE KEY section)")
            }
            TlsError::BadKey { file, reason } => {
                write!(f, "{file}: unusable private key: {reason}")
            }
            TlsError::KeyMismatch { cert, key } => {
                write!(
                    f,
                    "{key} is not the private key of the certificate in {cert}"
                )
            }
            TlsError::BadCa { file, reason } => write!(f, "{file}: not a usable CA: {reason}"),
            TlsError::NotAnAgencyCertificate { file, reason } => {
                write!(f, "{file}: not an agency's certificate: {reason}")
            }
            TlsError::OtherAgency {
                file,
                named,
                agency,
            } => write!(
                f,
                "{file} is agency-{named}'s certificate, but this agency's id is {agency}"
            ),
            TlsError::BadServerAddress { address, reason } => {
                write!(f, "server address {address:?}: {reason}")
            }
            TlsError::Config { reason } => write!(f, "TLS configuration refused: {reason}"),
        }
    }
}

impl std::error::Error for TlsError {}

/// Why a certificate does not make a peer an agency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotAnAgency {
    /// The peer presented no certificate.
    NoCertificate,
    /// The certificate is not X.509 DER that can be read.
    Unreadable(String),
    /// The subject has no common name.
    NoCommonName,
    /// The subject has several common names: which one would count is not
    /// for the central to guess.
    SeveralCommonNames,
    /// The common name is not `agency-N`.
    NotAgencyName(String),
    /// `agency-N` with N outside 1..=AGENCIES.
    OutOfRange { agency: u32, agencies: u32 },
}

impl fmt::Display for NotAnAgency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotAnAgency::NoCertificate => write!(f, "no client certificate"),
            NotAnAgency::Unreadable(reason) => write!(f, "unreadable certificate: {reason}"),
            NotAnAgency::NoCommonName => write!(f, "the subject has no common name"),
            NotAnAgency::SeveralCommonNames => write!(f, "the subject has several common names"),
            NotAnAgency::NotAgencyName(name) => {
                write!(f, "common name {name:?} is not agency-N")
            }
            NotAnAgency::OutOfRange { agency, agencies } => write!(
                f,
                "common name agency-{agency} is not one of this lottery's agencies 1..={agencies}"
            ),
        }
    }
}

impl std::error::Error for NotAnAgency {}

/// The agency a connection acts for: the subject common name `agency-N` of
/// the end-entity certificate rustls verified (the first of
/// `ServerConnection::peer_certificates()`), with `1 <= N <= agencies`.
pub fn agency_of(
    peer_certificates: Option<&[CertificateDer<'_>]>,
    agencies: u32,
) -> Result<u32, NotAnAgency> {
    let end_entity = peer_certificates
        .and_then(|certs| certs.first())
        .ok_or(NotAnAgency::NoCertificate)?;
    let agency = agency_named_by(end_entity)?;
    if agency == 0 || agency > agencies {
        return Err(NotAnAgency::OutOfRange { agency, agencies });
    }
    Ok(agency)
}

/// A failed handshake's reason, for the log line. rustls shows a verifier's
/// own reason (such as [`NotAnAgency`]) with `Debug`; this shows it as the
/// sentence it is.
pub fn handshake_error(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(reason))) => {
            format!("invalid peer certificate: {reason}")
        }
        other => other.to_string(),
    }
}

/// N of the certificate's subject common name `agency-N` (any N; 0 only if
/// the name says so).
fn agency_named_by(cert: &CertificateDer<'_>) -> Result<u32, NotAnAgency> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert)
        .map_err(|e| NotAnAgency::Unreadable(e.to_string()))?;
    let mut names = parsed.subject().iter_common_name();
    let first = names.next().ok_or(NotAnAgency::NoCommonName)?;
    if names.next().is_some() {
        return Err(NotAnAgency::SeveralCommonNames);
    }
    let name = first
        .as_str()
        .map_err(|e| NotAnAgency::Unreadable(format!("common name: {e}")))?;
    agency_number(name).ok_or_else(|| NotAnAgency::NotAgencyName(name.to_string()))
}

/// `agency-N` written exactly as `format!("agency-{n}")` would: no leading
/// zeros, no sign, no spaces, so that one agency has one name.
fn agency_number(common_name: &str) -> Option<u32> {
    let digits = common_name.strip_prefix("agency-")?;
    let n: u32 = digits.parse().ok()?;
    (n.to_string() == digits).then_some(n)
}

/// The crypto provider both sides use.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The trust anchors in `ca`: each certificate must be a CA certificate.
fn roots(ca: &Pem) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in ca.certificates()? {
        let bad = |reason: String| TlsError::BadCa {
            file: ca.name.clone(),
            reason,
        };
        let (_, parsed) =
            x509_parser::parse_x509_certificate(&cert).map_err(|e| bad(e.to_string()))?;
        if !parsed.is_ca() {
            return Err(bad(format!(
                "{} is not a CA certificate (no basicConstraints CA:TRUE)",
                parsed.subject()
            )));
        }
        roots.add(cert).map_err(|e| bad(e.to_string()))?;
    }
    Ok(roots)
}

/// What rustls says about a certificate and its key, in terms of the files.
fn certified_key_error(e: rustls::Error, cert: &Pem, key: &Pem) -> TlsError {
    match e {
        rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch {
            cert: cert.name.clone(),
            key: key.name.clone(),
        },
        other => TlsError::BadKey {
            file: key.name.clone(),
            reason: other.to_string(),
        },
    }
}

/// The central's TLS configuration: its certificate chain `cert` and key
/// `key`; client certificates required, chaining to `client_ca`, naming one
/// of `agencies` agencies (see the module's invariants).
pub fn server_config(
    cert: &Pem,
    key: &Pem,
    client_ca: &Pem,
    agencies: u32,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let chain = cert.certificates()?;
    let private_key = key.private_key()?;
    let webpki =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots(client_ca)?), provider.clone())
            .build()
            .map_err(|e| TlsError::BadCa {
                file: client_ca.name.clone(),
                reason: e.to_string(),
            })?;
    let verifier = Arc::new(AgencyVerifier { webpki, agencies });
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config {
            reason: e.to_string(),
        })?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, private_key)
        .map_err(|e| certified_key_error(e, cert, key))?;
    // No resumption: a resumed session would skip the client certificate.
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// The WebPKI client verifier, and then: the certificate names an agency of
/// this lottery. Refusing here (rather than after the handshake) means a
/// peer with `agency-9` gets a handshake alert like any other bad
/// certificate, and the central never reads a frame from it.
#[derive(Debug)]
struct AgencyVerifier {
    webpki: Arc<dyn ClientCertVerifier>,
    agencies: u32,
}

impl ClientCertVerifier for AgencyVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.webpki.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .webpki
            .verify_client_cert(end_entity, intermediates, now)?;
        agency_of(Some(std::slice::from_ref(end_entity)), self.agencies).map_err(|e| {
            rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(e))))
        })?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// An agency's TLS configuration: trusts `ca` only, presents `cert` and
/// `key`, and refuses a certificate that is not `agency-{agency}`'s
/// (`agency` is `CLI_ID`): a clear error here rather than FORBIDDEN later.
pub fn client_config(
    ca: &Pem,
    cert: &Pem,
    key: &Pem,
    agency: u32,
) -> Result<Arc<ClientConfig>, TlsError> {
    let chain = cert.certificates()?;
    let named = agency_named_by(&chain[0]).map_err(|reason| TlsError::NotAnAgencyCertificate {
        file: cert.name.clone(),
        reason,
    })?;
    if named != agency {
        return Err(TlsError::OtherAgency {
            file: cert.name.clone(),
            named,
            agency,
        });
    }
    let private_key = key.private_key()?;
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config {
            reason: e.to_string(),
        })?
        .with_root_certificates(roots(ca)?)
        .with_client_auth_cert(chain, private_key)
        .map_err(|e| certified_key_error(e, cert, key))?;
    // The central keeps no sessions; asking for resumption would only cost bytes.
    config.resumption = Resumption::disabled();
    Ok(Arc::new(config))
}

/// The name the central's certificate must hold: the host of `address`
/// (`host:port`, `[v6]:port`; an IP address or a DNS name).
pub fn server_name(address: &str) -> Result<ServerName<'static>, TlsError> {
    let bad = |reason: &str| TlsError::BadServerAddress {
        address: address.to_string(),
        reason: reason.to_string(),
    };
    let host = if let Some(rest) = address.strip_prefix('[') {
        rest.split_once(']')
            .map(|(host, _)| host)
            .ok_or_else(|| bad("an opening [ without a closing ]"))?
    } else {
        match address.rsplit_once(':') {
            Some((host, _)) => host,
            None => address,
        }
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    ServerName::try_from(host.to_string())
        .map_err(|_| bad("the host is neither an IP address nor a DNS name"))
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::process::Command;

    use rustls::{ClientConnection, ConnectionCommon, ServerConnection, SideData};

    use super::*;
    use crate::certs::{Authority, Issued, Leaf, Usage};

    const AGENCIES: u32 = 5;

    /// A CA, the central's certificate for `localhost` and `127.0.0.1`, and
    /// what a test needs to make agencies.
    struct Pki {
        ca: Authority,
        central: Issued,
    }

    impl Pki {
        fn new() -> Pki {
            Pki::named("test CA")
        }

        fn named(ca_name: &str) -> Pki {
            let ca = Authority::new(ca_name).unwrap();
            let central = ca
                .central(&["localhost".to_string(), "127.0.0.1".to_string()])
                .unwrap();
            Pki { ca, central }
        }

        fn ca_pem(&self) -> Pem {
            Pem::from_bytes("ca.pem", self.ca.cert_pem())
        }

        fn server_config(&self) -> Arc<ServerConfig> {
            server_config(
                &Pem::from_bytes("server.pem", self.central.cert_pem.clone()),
                &Pem::from_bytes("server.key", self.central.key_pem.clone()),
                &self.ca_pem(),
                AGENCIES,
            )
            .unwrap()
        }

        /// An agency's configuration for `issued`, trusting this CA, without
        /// the agency's own check (as a misbehaving agency would send it).
        fn raw_client_config(&self, issued: Option<&Issued>) -> Arc<ClientConfig> {
            let roots = roots(&self.ca_pem()).unwrap();
            let builder = ClientConfig::builder_with_provider(provider())
                .with_protocol_versions(&[&rustls::version::TLS13])
                .unwrap()
                .with_root_certificates(roots);
            Arc::new(match issued {
                Some(issued) => {
                    let chain = Pem::from_bytes("c", issued.cert_pem.clone())
                        .certificates()
                        .unwrap();
                    let key = Pem::from_bytes("k", issued.key_pem.clone())
                        .private_key()
                        .unwrap();
                    builder.with_client_auth_cert(chain, key).unwrap()
                }
                None => builder.with_no_client_auth(),
            })
        }

        fn agency_config(
            &self,
            issued: &Issued,
            agency: u32,
        ) -> Result<Arc<ClientConfig>, TlsError> {
            client_config(
                &self.ca_pem(),
                &Pem::from_bytes("agency.pem", issued.cert_pem.clone()),
                &Pem::from_bytes("agency.key", issued.key_pem.clone()),
                agency,
            )
        }
    }

    /// Which side's `process_new_packets` refused, and why.
    #[derive(Debug)]
    enum Failed {
        Central(rustls::Error),
        Agency(rustls::Error),
    }

    /// Moves every TLS byte `from` has to send into `to`, and lets `to`
    /// process them. Returns how many bytes moved.
    fn send<A: SideData, B: SideData>(
        from: &mut ConnectionCommon<A>,
        to: &mut ConnectionCommon<B>,
    ) -> Result<usize, rustls::Error> {
        let mut wire = Vec::new();
        while from.wants_write() {
            from.write_tls(&mut wire).unwrap();
        }
        let mut rest = &wire[..];
        while !rest.is_empty() {
            to.read_tls(&mut rest).unwrap();
            to.process_new_packets()?;
        }
        Ok(wire.len())
    }

    /// Runs the handshake between an agency and the central through memory,
    /// until neither has anything left to send.
    fn handshake(
        agency: &mut ClientConnection,
        central: &mut ServerConnection,
    ) -> Result<(), Failed> {
        for _ in 0..10 {
            let up = send(agency, central).map_err(Failed::Central)?;
            let down = send(central, agency).map_err(Failed::Agency)?;
            if up == 0 && down == 0 && !agency.is_handshaking() && !central.is_handshaking() {
                return Ok(());
            }
        }
        panic!("the handshake did not settle in 10 rounds");
    }

    fn connect(
        client: Arc<ClientConfig>,
        host: &str,
        server: Arc<ServerConfig>,
    ) -> (ClientConnection, ServerConnection) {
        let name = server_name(&format!("{host}:12345")).unwrap();
        (
            ClientConnection::new(client, name).unwrap(),
            ServerConnection::new(server).unwrap(),
        )
    }

    /// The reason rustls gives for refusing the agency's certificate. The
    /// agency writes a frame before the handshake, which rustls sends right
    /// after the agency's Finished (TLS 1.3: the agency thinks it is done
    /// before the central has judged its certificate); none of it may reach
    /// the central's plaintext.
    fn central_refusal(pki: &Pki, agency: Option<&Issued>) -> rustls::Error {
        let (mut a, mut c) = connect(
            pki.raw_client_config(agency),
            "localhost",
            pki.server_config(),
        );
        a.writer()
            .write_all(&[0x00, 0x09, 0x03, 0, 0, 0, 1, 0, 0, 0, 0])
            .unwrap();
        let err = match handshake(&mut a, &mut c) {
            Err(Failed::Central(e)) => e,
            other => panic!("expected the central to refuse, got {other:?}"),
        };
        assert!(
            c.is_handshaking(),
            "a refused peer never leaves the handshake"
        );
        let mut plaintext = [0; 64];
        assert!(
            !matches!(c.reader().read(&mut plaintext), Ok(n) if n > 0),
            "a refused peer's bytes reached the central"
        );
        err
    }

    #[test]
    fn a_good_agency_certificate_binds_that_agency_and_carries_frames() {
        let pki = Pki::new();
        let agency3 = pki.ca.agency(3).unwrap();
        let (mut a, mut c) = connect(
            pki.agency_config(&agency3, 3).unwrap(),
            "localhost",
            pki.server_config(),
        );
        handshake(&mut a, &mut c).unwrap();
        assert_eq!(a.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3));
        assert_eq!(agency_of(c.peer_certificates(), AGENCIES), Ok(3));

        let frame = [0x00, 0x09, 0x03, 0, 0, 0, 3, 0, 0, 0, 7];
        a.writer().write_all(&frame).unwrap();
        send(&mut a, &mut c).unwrap();
        let mut got = vec![0; frame.len()];
        c.reader().read_exact(&mut got).unwrap();
        assert_eq!(got, frame);
    }

    #[test]
    fn the_central_accepts_the_agency_by_ip_address_too() {
        let pki = Pki::new();
        let agency1 = pki.ca.agency(1).unwrap();
        let (mut a, mut c) = connect(
            pki.agency_config(&agency1, 1).unwrap(),
            "127.0.0.1",
            pki.server_config(),
        );
        handshake(&mut a, &mut c).unwrap();
        assert_eq!(agency_of(c.peer_certificates(), AGENCIES), Ok(1));
    }

    #[test]
    fn every_connection_is_a_full_handshake_with_its_certificate_checked_again() {
        // An agency that would resume (rustls' default client) still gets a
        // full handshake: a resumed session would bind an agency from a
        // certificate not checked on this connection.
        let pki = Pki::new();
        let agency2 = pki.ca.agency(2).unwrap();
        let client = pki.raw_client_config(Some(&agency2));
        let server = pki.server_config();
        for round in 0..3 {
            let (mut a, mut c) = connect(client.clone(), "localhost", server.clone());
            handshake(&mut a, &mut c).unwrap();
            assert_eq!(
                c.handshake_kind(),
                Some(rustls::HandshakeKind::Full),
                "connection {round}"
            );
            assert_eq!(agency_of(c.peer_certificates(), AGENCIES), Ok(2));
        }
    }

    #[test]
    fn no_client_certificate_fails_the_handshake_and_the_agency_hears_why() {
        let pki = Pki::new();
        let (mut a, mut c) = connect(
            pki.raw_client_config(None),
            "localhost",
            pki.server_config(),
        );
        let err = match handshake(&mut a, &mut c) {
            Err(Failed::Central(e)) => e,
            other => panic!("expected the central to refuse, got {other:?}"),
        };
        assert_eq!(err, rustls::Error::NoCertificatesPresented);
        assert!(c.peer_certificates().is_none());
        // The central's alert reaches the agency.
        match send(&mut c, &mut a) {
            Err(rustls::Error::AlertReceived(alert)) => {
                assert_eq!(alert, rustls::AlertDescription::CertificateRequired)
            }
            other => panic!("expected an alert at the agency, got {other:?}"),
        }
    }

    #[test]
    fn a_certificate_of_another_ca_fails_the_handshake() {
        let pki = Pki::new();
        let stranger = Authority::new("another CA").unwrap().agency(2).unwrap();
        let err = central_refusal(&pki, Some(&stranger));
        assert_eq!(
            err,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
        );
    }

    #[test]
    fn an_expired_agency_certificate_fails_the_handshake() {
        let pki = Pki::new();
        let expired = pki.ca.issue(&Leaf::agency(2).expired()).unwrap();
        let err = central_refusal(&pki, Some(&expired));
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(
                    CertificateError::Expired | CertificateError::ExpiredContext { .. }
                )
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("expired"), "{err}");
    }

    #[test]
    fn an_agency_beyond_agencies_fails_the_handshake_with_the_reason() {
        let pki = Pki::new();
        let agency9 = pki.ca.agency(9).unwrap();
        let err = central_refusal(&pki, Some(&agency9));
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(CertificateError::Other(_))
            ),
            "{err:?}"
        );
        assert_eq!(
            handshake_error(&err),
            "invalid peer certificate: common name agency-9 is not one of this lottery's agencies 1..=5"
        );
    }

    #[test]
    fn a_name_that_is_not_an_agency_fails_the_handshake() {
        let pki = Pki::new();
        for name in ["central", "agency-03", "agency-+3", "agency-", "agency-3 "] {
            let odd = pki.ca.issue(&Leaf::client(name)).unwrap();
            assert_eq!(
                handshake_error(&central_refusal(&pki, Some(&odd))),
                format!("invalid peer certificate: common name {name:?} is not agency-N")
            );
        }
        let agency0 = pki.ca.issue(&Leaf::client("agency-0")).unwrap();
        assert!(
            handshake_error(&central_refusal(&pki, Some(&agency0))).contains("agency-0 is not one"),
        );
        let nameless = pki
            .ca
            .issue(&Leaf {
                common_name: None,
                ..Leaf::agency(1)
            })
            .unwrap();
        assert_eq!(
            handshake_error(&central_refusal(&pki, Some(&nameless))),
            "invalid peer certificate: the subject has no common name"
        );
    }

    #[test]
    fn a_server_certificate_presented_by_an_agency_fails_the_handshake() {
        // Right CA and name, but for server authentication only.
        let pki = Pki::new();
        let server_usage = pki
            .ca
            .issue(&Leaf {
                usage: Usage::Server,
                ..Leaf::agency(1)
            })
            .unwrap();
        let err = central_refusal(&pki, Some(&server_usage));
        assert!(
            matches!(err, rustls::Error::InvalidCertificate(_)),
            "{err:?}"
        );
    }

    #[test]
    fn agency_of_reads_the_verified_end_entity_and_checks_the_range() {
        let pki = Pki::new();
        let der = |issued: &Issued| {
            Pem::from_bytes("c", issued.cert_pem.clone())
                .certificates()
                .unwrap()
        };
        assert_eq!(agency_of(Some(&der(&pki.ca.agency(5).unwrap())), 5), Ok(5));
        assert_eq!(
            agency_of(Some(&der(&pki.ca.agency(6).unwrap())), 5),
            Err(NotAnAgency::OutOfRange {
                agency: 6,
                agencies: 5
            })
        );
        assert_eq!(
            agency_of(
                Some(&der(&pki.ca.issue(&Leaf::client("agency-0")).unwrap())),
                5
            ),
            Err(NotAnAgency::OutOfRange {
                agency: 0,
                agencies: 5
            })
        );
        assert_eq!(agency_of(None, 5), Err(NotAnAgency::NoCertificate));
        assert_eq!(agency_of(Some(&[]), 5), Err(NotAnAgency::NoCertificate));
        assert!(matches!(
            agency_of(Some(&[CertificateDer::from(vec![1, 2, 3])]), 5),
            Err(NotAnAgency::Unreadable(_))
        ));
    }

    #[test]
    fn agency_names_are_exact() {
        assert_eq!(agency_number("agency-1"), Some(1));
        assert_eq!(agency_number("agency-4294967295"), Some(u32::MAX));
        for name in [
            "agency-01",
            "agency-+1",
            "agency--1",
            "agency-1 ",
            "agency-",
            "Agency-1",
            "agency-4294967296",
            "agency1",
        ] {
            assert_eq!(agency_number(name), None, "{name}");
        }
    }

    #[test]
    fn the_agency_refuses_a_central_whose_certificate_does_not_name_the_host() {
        let pki = Pki::new();
        let agency1 = pki.ca.agency(1).unwrap();
        for host in ["server", "10.0.0.1", "::1"] {
            let (mut a, mut c) = connect(
                pki.agency_config(&agency1, 1).unwrap(),
                host,
                pki.server_config(),
            );
            match handshake(&mut a, &mut c) {
                Err(Failed::Agency(rustls::Error::InvalidCertificate(e))) => assert!(
                    matches!(
                        e,
                        CertificateError::NotValidForName
                            | CertificateError::NotValidForNameContext { .. }
                    ),
                    "{host}: {e:?}"
                ),
                other => panic!("{host}: expected the agency to refuse, got {other:?}"),
            }
        }
    }

    #[test]
    fn the_agency_refuses_a_central_of_another_ca() {
        let pki = Pki::new();
        let impostor = Pki::named("impostor CA");
        let agency1 = pki.ca.agency(1).unwrap();
        let (mut a, mut c) = connect(
            pki.agency_config(&agency1, 1).unwrap(),
            "localhost",
            impostor.server_config(),
        );
        match handshake(&mut a, &mut c) {
            Err(Failed::Agency(e)) => assert_eq!(
                e,
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
            ),
            other => panic!("expected the agency to refuse, got {other:?}"),
        }
    }

    #[test]
    fn a_certificate_for_agency_1_with_cli_id_2_is_a_clear_error() {
        let pki = Pki::new();
        let agency1 = pki.ca.agency(1).unwrap();
        let err = pki.agency_config(&agency1, 2).unwrap_err();
        assert_eq!(
            err,
            TlsError::OtherAgency {
                file: "agency.pem".into(),
                named: 1,
                agency: 2
            }
        );
        assert_eq!(
            err.to_string(),
            "agency.pem is agency-1's certificate, but this agency's id is 2"
        );

        let central = pki.central.clone();
        let err = pki.agency_config(&central, 1).unwrap_err();
        assert!(
            matches!(err, TlsError::NotAnAgencyCertificate { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn unusable_files_are_errors_naming_the_file() {
        let pki = Pki::new();
        let cert = Pem::from_bytes("server.pem", pki.central.cert_pem.clone());
        let key = Pem::from_bytes("server.key", pki.central.key_pem.clone());
        let ca = pki.ca_pem();
        let other_key = Pem::from_bytes("agency-1.key", pki.ca.agency(1).unwrap().key_pem);

        let cases: Vec<(Result<Arc<ServerConfig>, TlsError>, TlsError)> = vec![
            (
                server_config(&Pem::from_bytes("empty.pem", " \n"), &key, &ca, 5),
                TlsError::Empty {
                    file: "empty.pem".into(),
                },
            ),
            (
                server_config(
                    &Pem::from_bytes("key-as-cert.pem", pki.central.key_pem.clone()),
                    &key,
                    &ca,
                    5,
                ),
                TlsError::NoCertificate {
                    file: "key-as-cert.pem".into(),
                },
            ),
            (
                server_config(
                    &cert,
                    &Pem::from_bytes("cert-as-key.key", pki.central.cert_pem.clone()),
                    &ca,
                    5,
                ),
                TlsError::NoPrivateKey {
                    file: "cert-as-key.key".into(),
                },
            ),
            (
                server_config(&cert, &other_key, &ca, 5),
                TlsError::KeyMismatch {
                    cert: "server.pem".into(),
                    key: "agency-1.key".into(),
                },
            ),
        ];
        for (got, expected) in cases {
            assert_eq!(got.unwrap_err(), expected);
        }

        let err = server_config(
            &cert,
            &key,
            &Pem::from_bytes("server-as-ca.pem", pki.central.cert_pem.clone()),
            5,
        )
        .unwrap_err();
        assert!(
            matches!(&err, TlsError::BadCa { file, .. } if file == "server-as-ca.pem"),
            "{err:?}"
        );
        assert!(err.to_string().contains("not a CA certificate"), "{err}");

        let truncated = &pki.central.cert_pem[..pki.central.cert_pem.len() / 2];
        let err = server_config(&Pem::from_bytes("half.pem", truncated), &key, &ca, 5).unwrap_err();
        assert!(
            matches!(&err, TlsError::BadPem { file, .. } if file == "half.pem"),
            "{err:?}"
        );

        let missing = std::env::temp_dir().join("lottery-tls-no-such-file.pem");
        let err = Pem::read(&missing).unwrap_err();
        assert!(
            err.to_string().starts_with(&missing.display().to_string()),
            "{err}"
        );
        assert!(matches!(err, TlsError::Unreadable { .. }));
    }

    #[test]
    fn server_name_is_the_host_of_the_address() {
        let ip = |s: &str| ServerName::IpAddress(s.parse::<std::net::IpAddr>().unwrap().into());
        assert_eq!(server_name("127.0.0.1:12345").unwrap(), ip("127.0.0.1"));
        assert_eq!(server_name("[::1]:12345").unwrap(), ip("::1"));
        assert_eq!(
            server_name("server:12345").unwrap(),
            ServerName::try_from("server").unwrap()
        );
        assert_eq!(
            server_name("server").unwrap(),
            ServerName::try_from("server").unwrap()
        );
        for bad in ["", ":12345", "[::1", "a b:1"] {
            let err = server_name(bad).unwrap_err();
            assert!(
                matches!(err, TlsError::BadServerAddress { .. }),
                "{bad}: {err:?}"
            );
        }
    }

    /// Certificates made by openssl for the same names: the central and the
    /// agency must take them as they take lottery-certs' (an EC CA in PKCS#8,
    /// the central's EC key in SEC1, the agency's RSA key in PKCS#8).
    #[test]
    fn openssl_made_certificates_work_for_the_central_and_the_agency() {
        if Command::new("openssl").arg("version").output().is_err() {
            // Not captured by the test harness, so the skip shows.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED openssl_made_certificates_work_for_the_central_and_the_agency: no openssl on PATH"
            );
            return;
        }
        let dir = std::env::temp_dir().join(format!("lottery-tls-openssl-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("openssl.cnf"),
            "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = unused\n\
             [ca_ext]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n\
             subjectKeyIdentifier = hash\n\
             [server_ext]\nbasicConstraints = CA:FALSE\nkeyUsage = critical,digitalSignature\n\
             extendedKeyUsage = serverAuth\nsubjectAltName = DNS:server,DNS:localhost,IP:127.0.0.1\n\
             authorityKeyIdentifier = keyid\n\
             [agency_ext]\nbasicConstraints = CA:FALSE\nkeyUsage = critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage = clientAuth\nauthorityKeyIdentifier = keyid\n",
        )
        .unwrap();
        let openssl = |args: &str| {
            let out = Command::new("openssl")
                .args(args.split_whitespace())
                .current_dir(&dir)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "openssl {args}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        openssl(
            "req -x509 -config openssl.cnf -extensions ca_ext -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
             -nodes -keyout ca.key -out ca.pem -days 30 -subj /CN=openssl-ca",
        );
        openssl("ecparam -name prime256v1 -genkey -noout -out server.key");
        openssl("req -new -config openssl.cnf -key server.key -out server.csr -subj /CN=central");
        openssl(
            "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial 1 -days 30 \
             -extfile openssl.cnf -extensions server_ext -out server.pem",
        );
        openssl(
            "req -new -config openssl.cnf -newkey rsa:2048 -nodes -keyout agency.key -out agency.csr \
             -subj /CN=agency-4",
        );
        openssl(
            "x509 -req -in agency.csr -CA ca.pem -CAkey ca.key -set_serial 2 -days 30 \
             -extfile openssl.cnf -extensions agency_ext -out agency.pem",
        );
        let pem = |name: &str| Pem::read(&dir.join(name)).unwrap();
        assert!(String::from_utf8_lossy(&pem("server.key").bytes).contains("BEGIN EC PRIVATE KEY"));

        let central = server_config(
            &pem("server.pem"),
            &pem("server.key"),
            &pem("ca.pem"),
            AGENCIES,
        )
        .unwrap();
        let agency =
            client_config(&pem("ca.pem"), &pem("agency.pem"), &pem("agency.key"), 4).unwrap();
        for host in ["server", "localhost", "127.0.0.1"] {
            let (mut a, mut c) = connect(agency.clone(), host, central.clone());
            handshake(&mut a, &mut c).unwrap();
            assert_eq!(agency_of(c.peer_certificates(), AGENCIES), Ok(4), "{host}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
