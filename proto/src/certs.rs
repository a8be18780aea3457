//! Certificates for a lottery over mutual TLS: one CA, the central's
//! certificate, one client certificate per agency (what `lottery-certs`
//! writes), and the odd ones the tests need (expired, wrong usage, any name).
//!
//! Invariants of what [`write_set`] writes: every key is ECDSA P-256 in PKCS#8
//! PEM, mode 0600; every certificate is PEM, mode 0644; an agency's
//! certificate names `agency-N` as its subject common name and is for client
//! authentication only; the central's is for server authentication only and
//! names each server name as a subject alternative name (an IP address SAN
//! for an address, a DNS SAN otherwise). Nothing is overwritten without
//! `force`, and without it nothing is written at all when any of the files is
//! already there.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

/// The central's names when none is given: the compose service, and this
/// machine by name and by address.
pub const DEFAULT_SERVER_NAMES: [&str; 3] = ["server", "localhost", "127.0.0.1"];

/// How long the CA is valid.
const CA_DAYS: i64 = 3650;
/// How long the central's and the agencies' certificates are valid.
const LEAF_DAYS: i64 = 825;
/// Certificates start a little in the past, so that a clock slightly behind
/// the one that made them still accepts them.
const BACKDATE: Duration = Duration::hours(1);

/// File modes: keys for the owner only, certificates for anyone to read.
pub const KEY_MODE: u32 = 0o600;
pub const CERT_MODE: u32 = 0o644;

/// A certificate could not be made or written.
#[derive(Debug)]
pub enum CertsError {
    /// `--agencies 0`.
    NoAgencies,
    /// A server name that is neither an IP address nor a DNS name.
    BadServerName { name: String, reason: String },
    /// rcgen refused (should not happen with the parameters made here).
    Generate(String),
    /// Files already there, and no `force`.
    Exists(Vec<PathBuf>),
    /// Creating the directory or writing a file failed.
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
}

impl fmt::Display for CertsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertsError::NoAgencies => write!(f, "--agencies must be at least 1"),
            CertsError::BadServerName { name, reason } => {
                write!(
                    f,
                    "server name {name:?} is not an IP address or DNS name: {reason}"
                )
            }
            CertsError::Generate(reason) => write!(f, "cannot make a certificate: {reason}"),
            CertsError::Exists(paths) => {
                let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
                write!(
                    f,
                    "refusing to overwrite {} (use --force to replace them)",
                    names.join(", ")
                )
            }
            CertsError::Io { path, error } => write!(f, "{}: {error}", path.display()),
        }
    }
}

impl std::error::Error for CertsError {}

impl From<rcgen::Error> for CertsError {
    fn from(error: rcgen::Error) -> Self {
        CertsError::Generate(error.to_string())
    }
}

/// A certificate and its private key, both PEM.
#[derive(Clone, Debug)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

/// What a certificate is for (its extended key usage).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usage {
    /// TLS client authentication: an agency.
    Client,
    /// TLS server authentication: the central.
    Server,
}

/// The parameters of an end-entity certificate. [`Leaf::agency`] and
/// [`Leaf::central`] are what `lottery-certs` makes; the fields are public so
/// that tests can make the certificates a central must refuse.
#[derive(Clone, Debug)]
pub struct Leaf {
    /// The subject common name; `None` for a certificate without one.
    pub common_name: Option<String>,
    /// Subject alternative names (IP address or DNS name).
    pub names: Vec<String>,
    pub usage: Usage,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl Leaf {
    /// Agency `agency`'s client certificate: CN `agency-N`.
    pub fn agency(agency: u32) -> Leaf {
        Leaf::client(&format!("agency-{agency}"))
    }

    /// A client certificate with any common name (`agency-9`, `central`, ...).
    pub fn client(common_name: &str) -> Leaf {
        let now = OffsetDateTime::now_utc();
        Leaf {
            common_name: Some(common_name.to_string()),
            names: Vec::new(),
            usage: Usage::Client,
            not_before: now - BACKDATE,
            not_after: now + Duration::days(LEAF_DAYS),
        }
    }

    /// The central's server certificate, valid for each of `names`.
    pub fn central(names: &[String]) -> Leaf {
        let now = OffsetDateTime::now_utc();
        Leaf {
            common_name: Some("lottery central".to_string()),
            names: names.to_vec(),
            usage: Usage::Server,
            not_before: now - BACKDATE,
            not_after: now + Duration::days(LEAF_DAYS),
        }
    }

    /// The same certificate, but it stopped being valid yesterday.
    pub fn expired(mut self) -> Leaf {
        let now = OffsetDateTime::now_utc();
        self.not_before = now - Duration::days(30);
        self.not_after = now - Duration::days(1);
        self
    }
}

/// A certificate authority that signs the central's and the agencies'
/// certificates.
pub struct Authority {
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Authority {
    /// A new CA with a fresh key, self-signed, named `common_name`.
    pub fn new(common_name: &str) -> Result<Authority, CertsError> {
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        // Path length 0: it signs end-entity certificates only.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = now - BACKDATE;
        params.not_after = now + Duration::days(CA_DAYS);
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        Ok(Authority { ca })
    }

    /// The CA's certificate, PEM: what both sides trust.
    pub fn cert_pem(&self) -> String {
        self.ca.pem()
    }

    /// The CA's private key, PEM.
    pub fn key_pem(&self) -> String {
        self.ca.key().serialize_pem()
    }

    /// Agency `agency`'s certificate and key.
    pub fn agency(&self, agency: u32) -> Result<Issued, CertsError> {
        self.issue(&Leaf::agency(agency))
    }

    /// The central's certificate and key, valid for each of `names`.
    pub fn central(&self, names: &[String]) -> Result<Issued, CertsError> {
        self.issue(&Leaf::central(names))
    }

    /// Any end-entity certificate, signed by this CA, with a fresh key.
    pub fn issue(&self, leaf: &Leaf) -> Result<Issued, CertsError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        if let Some(common_name) = &leaf.common_name {
            params
                .distinguished_name
                .push(DnType::CommonName, common_name.as_str());
        }
        params.subject_alt_names = leaf
            .names
            .iter()
            .map(|name| subject_alt_name(name))
            .collect::<Result<_, _>>()?;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![match leaf.usage {
            Usage::Client => ExtendedKeyUsagePurpose::ClientAuth,
            Usage::Server => ExtendedKeyUsagePurpose::ServerAuth,
        }];
        params.use_authority_key_identifier_extension = true;
        params.not_before = leaf.not_before;
        params.not_after = leaf.not_after;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.ca)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// An IP address SAN for an address, a DNS SAN for anything else that is a
/// valid DNS name (the same test the agency applies to its `server.address`).
fn subject_alt_name(name: &str) -> Result<SanType, CertsError> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let bad = |reason: String| CertsError::BadServerName {
        name: name.to_string(),
        reason,
    };
    rustls::pki_types::DnsName::try_from(name).map_err(|e| bad(e.to_string()))?;
    Ia5String::try_from(name)
        .map(SanType::DnsName)
        .map_err(|e| bad(e.to_string()))
}

/// One file [`write_set`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    pub path: PathBuf,
    pub mode: u32,
}

/// The files [`write_set`] writes for `agencies` agencies, in order.
pub fn set_files(out: &Path, agencies: u32) -> Vec<(PathBuf, u32)> {
    let mut files = vec![
        (out.join("ca.pem"), CERT_MODE),
        (out.join("ca.key"), KEY_MODE),
        (out.join("server.pem"), CERT_MODE),
        (out.join("server.key"), KEY_MODE),
    ];
    for agency in 1..=agencies {
        files.push((out.join(format!("agency-{agency}.pem")), CERT_MODE));
        files.push((out.join(format!("agency-{agency}.key")), KEY_MODE));
    }
    files
}

/// Makes a CA, the central's certificate (for `server_names`, or
/// [`DEFAULT_SERVER_NAMES`] when empty) and one certificate per agency, and
/// writes them into `out` (created if missing). Without `force`, refuses to
/// write anything when any of the files is already there.
pub fn write_set(
    out: &Path,
    agencies: u32,
    server_names: &[String],
    force: bool,
) -> Result<Vec<Written>, CertsError> {
    if agencies == 0 {
        return Err(CertsError::NoAgencies);
    }
    let server_names: Vec<String> = if server_names.is_empty() {
        DEFAULT_SERVER_NAMES.iter().map(|s| s.to_string()).collect()
    } else {
        server_names.to_vec()
    };
    for name in &server_names {
        subject_alt_name(name)?;
    }
    let files = set_files(out, agencies);
    if !force {
        let existing: Vec<PathBuf> = files
            .iter()
            .filter(|(path, _)| path.symlink_metadata().is_ok())
            .map(|(path, _)| path.clone())
            .collect();
        if !existing.is_empty() {
            return Err(CertsError::Exists(existing));
        }
    }

    // Everything is made before anything is written, so a refusal from rcgen
    // leaves no half set behind.
    let authority = Authority::new("lottery CA")?;
    let central = authority.central(&server_names)?;
    let mut contents = vec![
        authority.cert_pem(),
        authority.key_pem(),
        central.cert_pem,
        central.key_pem,
    ];
    for agency in 1..=agencies {
        let issued = authority.agency(agency)?;
        contents.push(issued.cert_pem);
        contents.push(issued.key_pem);
    }

    fs::create_dir_all(out).map_err(|error| CertsError::Io {
        path: out.to_path_buf(),
        error,
    })?;
    let mut written = Vec::with_capacity(files.len());
    for ((path, mode), content) in files.into_iter().zip(contents) {
        write_file(&path, content.as_bytes(), mode, force)?;
        written.push(Written { path, mode });
    }
    Ok(written)
}

/// Writes a new file created with `mode` (so a key is never readable by
/// others, not even for a moment), then sets `mode` exactly, whatever the
/// umask. With `force` an existing file is removed first, because opening
/// it would keep its old mode.
fn write_file(path: &Path, content: &[u8], mode: u32, force: bool) -> Result<(), CertsError> {
    let io = |error| CertsError::Io {
        path: path.to_path_buf(),
        error,
    };
    if force {
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io)?;
    file.write_all(content).map_err(io)?;
    file.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("lottery-certs-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn write_set_writes_a_ca_the_central_and_each_agency_with_owner_only_keys() {
        let dir = scratch_dir("set");
        let written = write_set(&dir, 3, &[], false).unwrap();
        let names: Vec<String> = written
            .iter()
            .map(|w| w.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "ca.pem",
                "ca.key",
                "server.pem",
                "server.key",
                "agency-1.pem",
                "agency-1.key",
                "agency-2.pem",
                "agency-2.key",
                "agency-3.pem",
                "agency-3.key"
            ]
        );
        for w in &written {
            let expected = if w.path.extension().unwrap() == "key" {
                0o600
            } else {
                0o644
            };
            assert_eq!(mode_of(&w.path), expected, "{}", w.path.display());
            let text = fs::read_to_string(&w.path).unwrap();
            let header = if expected == 0o600 {
                "-----BEGIN PRIVATE KEY-----"
            } else {
                "-----BEGIN CERTIFICATE-----"
            };
            assert!(text.starts_with(header), "{}: {text}", w.path.display());
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn write_set_refuses_to_overwrite_and_writes_nothing_without_force() {
        let dir = scratch_dir("exists");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("agency-2.key"), "mine").unwrap();
        let err = write_set(&dir, 2, &[], false).unwrap_err();
        match &err {
            CertsError::Exists(paths) => assert_eq!(paths, &[dir.join("agency-2.key")]),
            other => panic!("expected Exists, got {other:?}"),
        }
        assert!(err.to_string().contains("agency-2.key"), "{err}");
        assert!(
            !dir.join("ca.pem").exists(),
            "nothing is written when one file exists"
        );
        assert_eq!(
            fs::read_to_string(dir.join("agency-2.key")).unwrap(),
            "mine"
        );

        // With force, the old file is replaced and gets the key's mode.
        fs::set_permissions(dir.join("agency-2.key"), fs::Permissions::from_mode(0o666)).unwrap();
        write_set(&dir, 2, &[], true).unwrap();
        assert!(
            fs::read_to_string(dir.join("agency-2.key"))
                .unwrap()
                .contains("PRIVATE KEY")
        );
        assert_eq!(mode_of(&dir.join("agency-2.key")), 0o600);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn write_set_refuses_no_agencies_and_bad_server_names() {
        let dir = scratch_dir("bad");
        assert!(matches!(
            write_set(&dir, 0, &[], false),
            Err(CertsError::NoAgencies)
        ));
        let err = write_set(&dir, 1, &["not a name".to_string()], false).unwrap_err();
        assert!(matches!(err, CertsError::BadServerName { .. }), "{err:?}");
        assert!(err.to_string().contains("\"not a name\""), "{err}");
        assert!(!dir.exists(), "nothing is written for bad arguments");
    }

    #[test]
    fn server_names_become_ip_or_dns_subject_alt_names() {
        assert_eq!(
            subject_alt_name("127.0.0.1").unwrap(),
            SanType::IpAddress("127.0.0.1".parse().unwrap())
        );
        assert_eq!(
            subject_alt_name("::1").unwrap(),
            SanType::IpAddress("::1".parse().unwrap())
        );
        assert_eq!(
            subject_alt_name("server").unwrap(),
            SanType::DnsName(Ia5String::try_from("server").unwrap())
        );
        assert!(subject_alt_name("").is_err());
        assert!(subject_alt_name("a b").is_err());
    }
}
