//! Mutual TLS for the QUIC transport: the federation CA, certificates that carry an identity, and
//! the rustls and quinn configurations that enforce the key exchange policy.
//!
//! # Certificate directory
//!
//! A federation keeps its certificates in one directory:
//!
//! | file | content |
//! |---|---|
//! | `ca.pem`, `ca.key` | the federation CA, made once by [`init_ca`] |
//! | `<name>.pem`, `<name>.key` | an identity issued by [`issue`]: a federate, an admin, the RTI |
//! | `crl.pem` | the revocation list signed by the CA: empty from [`init_ca`], grown by [`revoke`] |
//!
//! Key files are written with mode 0600 on unix. A certificate's subject common name (CN) is the
//! identity's name and its organizational unit (OU) the [`Role`]; [`identity_from_certificate`]
//! reads both back from a verified peer certificate.
//!
//! # Handshake policy
//!
//! [`server_config`] and [`client_config`] use the aws-lc-rs provider explicitly (never the
//! process default), TLS 1.3 only, ALPN [`ALPN`], mutual authentication against the CA in
//! `ca.pem`, and no session resumption, so every connection presents and checks a certificate.
//! The post-quantum hybrid group X25519MLKEM768 is offered first; the classical X25519 and
//! secp256r1 only when `allow_classical` is set.
//!
//! # Revocation
//!
//! When the endpoint's [`TlsFiles`] name a CRL, or `crl.pem` lies beside `ca.pem`, both sides
//! refuse a peer whose certificate it lists: the handshake fails with the TLS alert
//! `certificate_revoked`. The file is checked when it is loaded ([`Revocations::load`]): each
//! list must be signed by a CA in `ca.pem`. Two choices keep a federation running on a stale
//! or partial file rather than locking everyone out:
//!
//! - an expired list (its next update in the past) is still used, with a warning: the file is
//!   local, written by `fedtwin certs revoke`, and only ever grows, so an old list is never
//!   less strict than it was; refusing everyone would turn a forgotten refresh into an outage;
//! - a certificate of a CA that has no list in the file (during a CA rotation, say) is
//!   accepted as it was before CRLs existed, instead of being refused as "status unknown".
//!
//! # Negotiated group
//!
//! quinn 0.11 keeps the negotiated group behind a private test feature of `quinn-proto`, and its
//! crypto traits cannot be implemented without depending on `quinn-proto` directly. This module
//! therefore observes the group itself: the key exchange groups in the provider are thin wrappers
//! that note the group completed on the current thread, and a key log that only accepts two labels
//! ties that group to the connection's TLS exporter. [`negotiated_group`] derives the same
//! exporter value from the connection and looks the group up. No secret is kept: the key log
//! derives one exporter value under a private label at once and drops the secret.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};

use aws_lc_rs::{digest, hkdf};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SanType, SerialNumber,
};
use rustls::client::Resumption;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::aws_lc_rs::kx_group;
use rustls::crypto::{
    ActiveKeyExchange, CompletedKeyExchange, CryptoProvider, SharedSecret, SupportedKxGroup,
};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{KeyLog, NamedGroup, RootCertStore};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, DnsName, PrivateKeyDer};
use time::{Duration, OffsetDateTime};
use tracing::{debug, warn};

/// The ALPN protocol identifier both ends require. The number changes with every change of
/// the wire messages: postcard numbers enum variants by position, so an old peer would
/// misread a new one's messages instead of being refused at the handshake.
pub const ALPN: &[u8] = b"fedtwin/2";

/// A federate's (or admin's) identity, taken from its verified certificate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    /// The certificate's subject common name.
    pub name: String,
    /// The role stored in the certificate's subject organizational unit.
    pub role: Role,
}

/// What an identity may do beyond what the policy file grants it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Role {
    /// A federate: joins federations and exchanges data, as the policy allows.
    Federate,
    /// An administrator: may also administer federations.
    Admin,
}

impl Role {
    /// The organizational unit value that stores this role: `federate` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Federate => "federate",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = TlsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "federate" => Ok(Role::Federate),
            "admin" => Ok(Role::Admin),
            other => Err(TlsError::UnknownRole(other.to_owned())),
        }
    }
}

/// PEM files of one endpoint: its certificate chain, its private key, the CA to trust and the
/// certificates to refuse although the CA signed them.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The endpoint's certificate chain, end-entity certificate first.
    pub cert: PathBuf,
    /// The endpoint's private key (PKCS#8, SEC1 or PKCS#1).
    pub key: PathBuf,
    /// The federation CA certificate: the only trust anchor.
    pub ca: PathBuf,
    /// Certificate revocation lists (PEM) to check the peer's certificate against; a file named
    /// here must exist. `None`: [`CRL_FILE`] beside `ca` if that file exists, else no check.
    pub crl: Option<PathBuf>,
}

impl TlsFiles {
    /// `<dir>/<name>.pem`, `<dir>/<name>.key`, `<dir>/ca.pem`; `<dir>/crl.pem` is checked when
    /// it exists (`crl` is `None`).
    pub fn in_dir(dir: &Path, name: &str) -> Self {
        Self {
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}.key")),
            ca: dir.join(CA_CERT_FILE),
            crl: None,
        }
    }

    /// The revocation list file these files check: [`TlsFiles::crl`], or [`CRL_FILE`] in the
    /// folder of `ca`. Whether it must exist is [`TlsFiles::crl_required`].
    pub fn crl_path(&self) -> PathBuf {
        match &self.crl {
            Some(path) => path.clone(),
            None => self.ca.with_file_name(CRL_FILE),
        }
    }

    /// Whether [`TlsFiles::crl_path`] was named explicitly, so that its absence is an error.
    pub fn crl_required(&self) -> bool {
        self.crl.is_some()
    }
}

/// Why a certificate is revoked (RFC 5280, section 5.3.1), as far as it applies to the
/// certificate of a federate, an admin or the daemon.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RevocationReason {
    /// No reason given.
    #[default]
    Unspecified,
    /// The private key is known or suspected to be in the wrong hands.
    KeyCompromise,
    /// The holder's name or affiliation changed.
    AffiliationChanged,
    /// A new certificate replaces this one.
    Superseded,
    /// The holder no longer takes part.
    CessationOfOperation,
    /// The holder may no longer do what the certificate allowed.
    PrivilegeWithdrawn,
}

impl RevocationReason {
    /// Every reason, in the order of RFC 5280.
    pub const ALL: [RevocationReason; 6] = [
        RevocationReason::Unspecified,
        RevocationReason::KeyCompromise,
        RevocationReason::AffiliationChanged,
        RevocationReason::Superseded,
        RevocationReason::CessationOfOperation,
        RevocationReason::PrivilegeWithdrawn,
    ];

    /// The reason in kebab case, as the command line takes it: `key-compromise`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            RevocationReason::Unspecified => "unspecified",
            RevocationReason::KeyCompromise => "key-compromise",
            RevocationReason::AffiliationChanged => "affiliation-changed",
            RevocationReason::Superseded => "superseded",
            RevocationReason::CessationOfOperation => "cessation-of-operation",
            RevocationReason::PrivilegeWithdrawn => "privilege-withdrawn",
        }
    }

    fn to_rcgen(self) -> rcgen::RevocationReason {
        match self {
            RevocationReason::Unspecified => rcgen::RevocationReason::Unspecified,
            RevocationReason::KeyCompromise => rcgen::RevocationReason::KeyCompromise,
            RevocationReason::AffiliationChanged => rcgen::RevocationReason::AffiliationChanged,
            RevocationReason::Superseded => rcgen::RevocationReason::Superseded,
            RevocationReason::CessationOfOperation => rcgen::RevocationReason::CessationOfOperation,
            RevocationReason::PrivilegeWithdrawn => rcgen::RevocationReason::PrivilegeWithdrawn,
        }
    }
}

impl fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RevocationReason {
    type Err = TlsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|reason| reason.as_str() == s)
            .ok_or_else(|| TlsError::UnknownRevocationReason(s.to_owned()))
    }
}

/// What [`revoke`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Revoked {
    /// The revoked certificate's serial number, as colon-separated hex bytes.
    pub serial: String,
    /// The number of the list written, or of the list kept when `already` is true.
    pub crl_number: u64,
    /// How many certificates the list revokes now.
    pub revoked: usize,
    /// The certificate was revoked already; the list was left as it was.
    pub already: bool,
}

/// The certificate revocation lists of an endpoint, read and checked against its CA.
#[derive(Debug, Clone)]
pub struct Revocations {
    path: PathBuf,
    lists: Vec<CertificateRevocationListDer<'static>>,
    /// Serial numbers (big-endian, without leading zero bytes) of every listed certificate.
    serials: BTreeSet<Vec<u8>>,
}

impl Revocations {
    /// Reads [`TlsFiles::crl_path`]: `None` when no list is named and none lies beside the CA.
    ///
    /// Every list in the file must parse and carry the signature of a CA in `files.ca`. A list
    /// past its next update is used all the same, with a warning (see the module
    /// documentation).
    ///
    /// # Errors
    ///
    /// [`TlsError::Io`] if a named file is missing or any file unreadable; [`TlsError::Crl`],
    /// naming the file, if it holds no list, a malformed one or one the CA did not sign.
    pub fn load(files: &TlsFiles) -> Result<Option<Self>, TlsError> {
        Ok(Self::read(files)?.map(|(_, revocations)| revocations))
    }

    /// [`Revocations::load`], returning the file's bytes too: for a caller that watches the
    /// file for changes.
    ///
    /// # Errors
    ///
    /// As [`Revocations::load`].
    pub fn read(files: &TlsFiles) -> Result<Option<(Vec<u8>, Self)>, TlsError> {
        let path = files.crl_path();
        let pem = match fs::read(&path) {
            Ok(pem) => pem,
            Err(e) if e.kind() == io::ErrorKind::NotFound && !files.crl_required() => {
                return Ok(None);
            }
            Err(source) => return Err(TlsError::Io { path, source }),
        };
        let revocations = Self::parse(path, &pem, &files.ca)?;
        Ok(Some((pem, revocations)))
    }

    /// Parses and checks `pem`, the contents of [`TlsFiles::crl_path`] read by the caller, as
    /// [`Revocations::load`] does: for a caller that also needs the bytes, to notice changes.
    ///
    /// # Errors
    ///
    /// As [`Revocations::load`].
    pub fn from_pem(files: &TlsFiles, pem: &[u8]) -> Result<Self, TlsError> {
        Self::parse(files.crl_path(), pem, &files.ca)
    }

    fn parse(path: PathBuf, pem: &[u8], ca: &Path) -> Result<Self, TlsError> {
        let invalid = |reason: String| TlsError::Crl {
            path: path.clone(),
            reason,
        };
        let lists = CertificateRevocationListDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(format!("not valid PEM: {e}")))?;
        if lists.is_empty() {
            return Err(invalid(
                "no `-----BEGIN X509 CRL-----` section in it".to_owned(),
            ));
        }
        let ca_ders = load_chain(ca)?;
        let cas = ca_ders
            .iter()
            .map(|der| {
                x509_parser::parse_x509_certificate(der.as_ref())
                    .map(|(_, cert)| cert)
                    .map_err(|e| {
                        TlsError::Certificate(format!("cannot parse `{}`: {e}", ca.display()))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;

        let now = OffsetDateTime::now_utc();
        let mut serials = BTreeSet::new();
        for der in &lists {
            let (_, list) = x509_parser::parse_x509_crl(der.as_ref())
                .map_err(|e| invalid(format!("cannot parse it: {e}")))?;
            let issuer = cas
                .iter()
                .find(|cert| cert.subject().as_raw() == list.issuer().as_raw())
                .ok_or_else(|| {
                    invalid(format!(
                        "it was issued by `{}`, which is not a CA in `{}`",
                        list.issuer(),
                        ca.display()
                    ))
                })?;
            list.verify_signature(issuer.public_key()).map_err(|e| {
                invalid(format!(
                    "its signature does not verify with the CA in `{}`: {e}",
                    ca.display()
                ))
            })?;
            if let Some(next_update) = list.next_update()
                && next_update.to_datetime() < now
            {
                warn!(
                    crl = %path.display(),
                    %next_update,
                    "certificate revocation list past its next update; still used (`fedtwin \
                     certs revoke` writes lists valid until the CA expires)"
                );
            }
            serials.extend(
                list.iter_revoked_certificates()
                    .map(|entry| unsigned(entry.raw_serial()).to_vec()),
            );
        }
        Ok(Self {
            path,
            lists,
            serials,
        })
    }

    /// The file the lists were read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many certificates the lists revoke.
    pub fn len(&self) -> usize {
        self.serials.len()
    }

    /// How many certificates this list revokes that `other` does not.
    pub fn missing_from(&self, other: &Revocations) -> usize {
        self.serials.difference(&other.serials).count()
    }

    /// Whether the lists revoke no certificate.
    pub fn is_empty(&self) -> bool {
        self.serials.is_empty()
    }

    /// Whether the certificate with this serial number (as [`certificate_serial`] returns it)
    /// is revoked.
    pub fn contains(&self, serial: &[u8]) -> bool {
        self.serials.contains(unsigned(serial))
    }

    /// Refuses an endpoint whose own certificate (the first in `files.cert`) is revoked: its
    /// peers would refuse it.
    ///
    /// # Errors
    ///
    /// [`TlsError::OwnCertificateRevoked`]; as [`certificate_serial`] if the certificate cannot
    /// be read.
    pub fn check_own(&self, files: &TlsFiles) -> Result<(), TlsError> {
        let chain = load_chain(&files.cert)?;
        let Some(own) = chain.first() else {
            return Ok(());
        };
        if self.contains(&certificate_serial(own.as_ref())?) {
            return Err(TlsError::OwnCertificateRevoked {
                cert: files.cert.clone(),
                crl: self.path.clone(),
            });
        }
        Ok(())
    }
}

/// Errors of certificate management and TLS configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file or directory could not be read or written.
    #[error("cannot access `{path}`: {source}{}", io_hint(path, source))]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A file holds no PEM section of the expected kind.
    #[error("`{path}` holds no {what} in PEM format; issue it again with `fedtwin certs issue`")]
    NoPem {
        /// The file.
        path: PathBuf,
        /// What was expected, e.g. "certificate" or "private key".
        what: &'static str,
    },
    /// The directory has no CA to sign with.
    #[error("no CA in `{0}`: run `fedtwin certs init --dir {0}` first")]
    NoCa(PathBuf),
    /// [`init_ca`] found a CA already and left it untouched.
    #[error(
        "a CA already exists in `{0}`; refusing to overwrite it (delete `ca.pem` and `ca.key` to \
         start a new federation, which invalidates every certificate it issued)"
    )]
    CaExists(PathBuf),
    /// A name cannot be used for a certificate and its files.
    #[error(
        "invalid certificate name `{0}`: use 1 to 64 ASCII letters, digits, `-`, `_` or `.`, \
         starting with a letter or digit; `ca` and `crl` are reserved"
    )]
    InvalidName(String),
    /// A certificate or key could not be made, parsed or used.
    #[error("certificate error: {0}")]
    Certificate(String),
    /// The TLS or QUIC configuration could not be built.
    #[error("TLS configuration error: {0}")]
    Config(String),
    /// The peer presented no certificate.
    #[error("the peer presented no certificate; every endpoint needs one issued by the CA")]
    NoPeerCertificate,
    /// The certificate has no subject common name, so no identity.
    #[error("the certificate has no subject common name (CN); issue it with `fedtwin certs issue`")]
    MissingCommonName,
    /// The certificate's organizational unit names no known role.
    #[error(
        "unknown role `{0}` in the certificate's organizational unit (OU): expected `admin` or \
         `federate`"
    )]
    UnknownRole(String),
    /// A certificate revocation list cannot be used.
    #[error("`{path}` is not a usable certificate revocation list: {reason}")]
    Crl {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// [`revoke`] found no certificate of that name in the folder.
    #[error(
        "no certificate `{name}` in `{dir}` (no `{name}.pem` there): give the name it was issued \
         under, as `fedtwin certs issue --name` did"
    )]
    UnknownIdentity {
        /// The certificate folder.
        dir: PathBuf,
        /// The name asked for.
        name: String,
    },
    /// An endpoint's own certificate is listed in its revocation list.
    #[error(
        "the certificate `{cert}` is revoked by `{crl}`: issue a new one with `fedtwin certs \
         issue` (peers refuse a revoked certificate)"
    )]
    OwnCertificateRevoked {
        /// The endpoint's certificate.
        cert: PathBuf,
        /// The list that revokes it.
        crl: PathBuf,
    },
    /// A revocation reason the command line does not know.
    #[error(
        "unknown revocation reason `{0}`: expected unspecified, key-compromise, \
         affiliation-changed, superseded, cessation-of-operation or privilege-withdrawn"
    )]
    UnknownRevocationReason(String),
}

/// File name of the CA certificate inside a certificate directory.
const CA_CERT_FILE: &str = "ca.pem";
/// File name of the CA private key inside a certificate directory.
const CA_KEY_FILE: &str = "ca.key";
/// File name of the certificate revocation list inside a certificate directory.
pub const CRL_FILE: &str = "crl.pem";
/// Organization of every certificate the federation CA makes.
const ORGANIZATION: &str = "fedtwin";
/// Longest name accepted by [`issue`].
const MAX_NAME_LEN: usize = 64;

/// Creates a federation CA in `dir` (creating the directory): a self-signed certificate that may
/// sign end-entity certificates, valid from an hour ago for `validity_days`, and an empty
/// revocation list `crl.pem` (replacing one left by an earlier CA), so that a daemon started on
/// the folder watches a list from the start.
///
/// # Errors
///
/// [`TlsError::CaExists`] if `dir` already holds `ca.pem` or `ca.key`; [`TlsError::Io`] if the
/// files cannot be written; [`TlsError::Certificate`] if `validity_days` is 0 or signing fails.
pub fn init_ca(dir: &Path, validity_days: u32) -> Result<(), TlsError> {
    let (not_before, not_after) = validity_from_now(validity_days)?;
    fs::create_dir_all(dir).map_err(io_error(dir))?;
    let cert_path = dir.join(CA_CERT_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    if fs::symlink_metadata(&cert_path).is_ok() || fs::symlink_metadata(&key_path).is_ok() {
        return Err(TlsError::CaExists(dir.to_path_buf()));
    }

    let mut suffix = [0u8; 8];
    aws_lc_rs::rand::fill(&mut suffix)
        .map_err(|_| TlsError::Certificate("no randomness for the CA name".to_owned()))?;
    let common_name = format!("fedtwin federation CA {}", hex(&suffix));
    let mut params = ca_params(&common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.not_before = not_before;
    params.not_after = not_after;
    params.serial_number = Some(random_serial()?);
    let key = KeyPair::generate().map_err(certificate_error("cannot generate the CA key"))?;
    let cert = params
        .self_signed(&key)
        .map_err(certificate_error("cannot sign the CA"))?;

    // `create_new` on the key makes a concurrent `init_ca` lose cleanly instead of overwriting.
    write_private(&key_path, key.serialize_pem().as_bytes(), true).map_err(
        |error| match error {
            TlsError::Io { source, .. } if source.kind() == io::ErrorKind::AlreadyExists => {
                TlsError::CaExists(dir.to_path_buf())
            }
            other => other,
        },
    )?;
    if let Err(error) = write_new(&cert_path, cert.pem().as_bytes()) {
        let _ = fs::remove_file(&key_path);
        return Err(error);
    }
    let issuer = Issuer::new(ca_params(&common_name), key);
    if let Err(error) = write_crl(dir, &issuer, not_after, 1, Vec::new()) {
        let _ = fs::remove_file(&cert_path);
        let _ = fs::remove_file(&key_path);
        return Err(error);
    }
    debug!(dir = %dir.display(), %common_name, "created federation CA");
    Ok(())
}

/// Issues a certificate for `name` signed by the CA in `dir`, valid from `not_before` to
/// `not_after`, and writes `<name>.pem` and `<name>.key` (replacing an earlier issue).
///
/// The subject CN is `name` and the OU the role (`admin` or `federate`). The certificate carries
/// `name` as a DNS subject alternative name when it is a valid DNS name, and may serve both as a
/// client and as a server certificate (the RTI daemon uses an issued certificate too; clients
/// must connect with its name as the server name).
///
/// # Errors
///
/// [`TlsError::InvalidName`] if `name` is not a plain file name or is `ca` or `crl`;
/// [`TlsError::NoCa`]
/// if `dir` has no CA; [`TlsError::Certificate`] if the validity is empty, the CA files do not
/// match or signing fails; [`TlsError::Io`] if files cannot be read or written.
pub fn issue(
    dir: &Path,
    name: &str,
    role: Role,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<(), TlsError> {
    check_name(name)?;
    if not_before >= not_after {
        return Err(TlsError::Certificate(format!(
            "the validity of `{name}` ends ({not_after}) before it starts ({not_before})"
        )));
    }
    let (ca_common_name, ca_key) = load_ca(dir)?;
    let issuer = Issuer::new(ca_params(&ca_common_name), ca_key);

    let mut params = CertificateParams::default();
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, name);
    subject.push(DnType::OrganizationalUnitName, role.as_str());
    params.distinguished_name = subject;
    if DnsName::try_from(name).is_ok()
        && let Ok(dns_name) = Ia5String::try_from(name)
    {
        params.subject_alt_names = vec![SanType::DnsName(dns_name)];
    }
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ClientAuth,
        ExtendedKeyUsagePurpose::ServerAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params.not_before = not_before;
    params.not_after = not_after;
    // Revocation names a certificate by its serial: random, so that no two issues share one.
    params.serial_number = Some(random_serial()?);

    let key = KeyPair::generate().map_err(certificate_error("cannot generate a key"))?;
    let context = format!("cannot sign `{name}` with the CA in `{}`", dir.display());
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(certificate_error(&context))?;
    let files = TlsFiles::in_dir(dir, name);
    write_private(&files.key, key.serialize_pem().as_bytes(), false)?;
    fs::write(&files.cert, cert.pem()).map_err(io_error(&files.cert))?;
    debug!(dir = %dir.display(), name, %role, %not_after, "issued certificate");
    Ok(())
}

/// Issues a certificate for `name` (see [`issue`]) valid from an hour ago for `validity_days`.
///
/// # Errors
///
/// As [`issue`]; also [`TlsError::Certificate`] if `validity_days` is 0.
pub fn issue_for_days(
    dir: &Path,
    name: &str,
    role: Role,
    validity_days: u32,
) -> Result<(), TlsError> {
    let (not_before, not_after) = validity_from_now(validity_days)?;
    issue(dir, name, role, not_before, not_after)
}

/// Whether `dir` holds a certificate issued to `name` (`<name>.pem`), revoked or not: issuing
/// again replaces the file but leaves the earlier certificate valid until it is revoked.
///
/// # Errors
///
/// [`TlsError::InvalidName`]; [`TlsError::Io`] if the folder cannot be read.
pub fn is_issued(dir: &Path, name: &str) -> Result<bool, TlsError> {
    check_name(name)?;
    let path = dir.join(format!("{name}.pem"));
    path.try_exists().map_err(io_error(&path))
}

/// Revokes the certificate issued to `name` in `dir` (its serial number is read from
/// `<name>.pem`) and writes `crl.pem` again, signed by the folder's CA: the earlier revocations
/// kept, the list's number one higher, valid until the CA expires. The file is replaced in one
/// rename, so that a daemon that watches it never reads half of it.
///
/// Revoking a certificate that the list holds already changes nothing. Concurrent revocations
/// in one folder may lose one another: run them one at a time.
///
/// # Errors
///
/// [`TlsError::InvalidName`]; [`TlsError::NoCa`] without a CA; [`TlsError::UnknownIdentity`]
/// if `<name>.pem` does not exist; [`TlsError::Certificate`] if it was not issued by this CA;
/// [`TlsError::Crl`] if the existing `crl.pem` cannot be read back (it is then left alone);
/// [`TlsError::Io`] if files cannot be read or written.
pub fn revoke(dir: &Path, name: &str, reason: RevocationReason) -> Result<Revoked, TlsError> {
    check_name(name)?;
    let (ca_common_name, ca_key) = load_ca(dir)?;
    let ca_path = dir.join(CA_CERT_FILE);
    let ca_der = load_chain(&ca_path)?.swap_remove(0);
    let (_, ca) = x509_parser::parse_x509_certificate(ca_der.as_ref())
        .map_err(|e| TlsError::Certificate(format!("cannot parse `{}`: {e}", ca_path.display())))?;

    // The certificate to revoke, which this CA must have issued.
    let cert_path = dir.join(format!("{name}.pem"));
    let cert_der = match load_chain(&cert_path) {
        Ok(mut chain) => chain.swap_remove(0),
        Err(TlsError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            return Err(TlsError::UnknownIdentity {
                dir: dir.to_path_buf(),
                name: name.to_owned(),
            });
        }
        Err(other) => return Err(other),
    };
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der.as_ref()).map_err(|e| {
        TlsError::Certificate(format!("cannot parse `{}`: {e}", cert_path.display()))
    })?;
    if cert.issuer().as_raw() != ca.subject().as_raw() {
        return Err(TlsError::Certificate(format!(
            "`{}` was issued by `{}`, not by the CA in `{}`: this folder cannot revoke it",
            cert_path.display(),
            cert.issuer(),
            ca_path.display()
        )));
    }
    let serial = unsigned(cert.raw_serial()).to_vec();

    // What the list holds now (a folder made before lists existed has none yet).
    let crl_path = dir.join(CRL_FILE);
    let (number, mut entries) = match fs::read(&crl_path) {
        Ok(pem) => read_crl(crl_path.clone(), &pem, &ca_path, ca.subject().as_raw())?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => (0, Vec::new()),
        Err(source) => {
            return Err(TlsError::Io {
                path: crl_path,
                source,
            });
        }
    };
    let serial_text = SerialNumber::from_slice(&serial).to_string();
    if entries
        .iter()
        .any(|entry| unsigned(entry.serial_number.as_ref()) == serial.as_slice())
    {
        return Ok(Revoked {
            serial: serial_text,
            crl_number: number,
            revoked: entries.len(),
            already: true,
        });
    }
    entries.push(RevokedCertParams {
        serial_number: SerialNumber::from_slice(&serial),
        revocation_time: OffsetDateTime::now_utc(),
        reason_code: Some(reason.to_rcgen()),
        invalidity_date: None,
    });
    let number = number.checked_add(1).ok_or_else(|| TlsError::Crl {
        path: crl_path.clone(),
        reason: "its number cannot grow any more".to_owned(),
    })?;
    let revoked = entries.len();
    let ca_not_after = ca.validity().not_after.to_datetime();
    let issuer = Issuer::new(ca_params(&ca_common_name), ca_key);
    write_crl(dir, &issuer, ca_not_after, number, entries)?;
    debug!(
        dir = %dir.display(),
        name,
        serial = %serial_text,
        %reason,
        number,
        "revoked certificate"
    );
    Ok(Revoked {
        serial: serial_text,
        crl_number: number,
        revoked,
        already: false,
    })
}

/// Server side: requires a client certificate signed by the CA (mutual TLS), TLS 1.3 only, ALPN
/// [`ALPN`], and key exchange group X25519MLKEM768, then X25519 and secp256r1 only when
/// `allow_classical` is true. Missing, wrong-CA, expired and revoked client certificates are
/// refused during the handshake; the revocation lists are read by [`Revocations::load`].
///
/// # Errors
///
/// [`TlsError::Io`], [`TlsError::NoPem`] if a file is missing or holds no PEM of its kind;
/// [`TlsError::Crl`] for an unusable revocation list; [`TlsError::Config`] if the certificate
/// and key do not match or rustls refuses the settings.
pub fn server_config(
    files: &TlsFiles,
    allow_classical: bool,
) -> Result<quinn::ServerConfig, TlsError> {
    let revocations = Revocations::load(files)?;
    server_config_with(files, allow_classical, revocations.as_ref())
}

/// [`server_config`] with revocation lists read already (or none), e.g. by a daemon that
/// reloads them and needs to know what it loaded.
///
/// # Errors
///
/// As [`server_config`].
pub fn server_config_with(
    files: &TlsFiles,
    allow_classical: bool,
    revocations: Option<&Revocations>,
) -> Result<quinn::ServerConfig, TlsError> {
    let provider = Arc::new(provider(allow_classical));
    let roots = Arc::new(load_roots(&files.ca)?);
    let chain = load_chain(&files.cert)?;
    let key = load_key(&files.key)?;

    let mut builder = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
    if let Some(revocations) = revocations {
        builder = builder
            .with_crls(revocations.lists.iter().cloned())
            .allow_unknown_revocation_status();
    }
    let verifier = builder
        .build()
        .map_err(verifier_error(files, revocations))?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(format!("TLS 1.3 unavailable: {e}")))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(mismatch_error(files))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.key_log = Arc::new(GroupLog);
    // No resumption: a resumed session would skip the certificate check of a later connection.
    tls.session_storage = Arc::new(NoServerSessionStorage {});
    tls.send_tls13_tickets = 0;

    let quic = QuicServerConfig::try_from(Arc::new(tls))
        .map_err(|e| TlsError::Config(format!("unusable for QUIC: {e}")))?;
    Ok(quinn::ServerConfig::with_crypto(Arc::new(quic)))
}

/// Client side: presents the certificate in `files`, trusts only the CA in `files.ca` and refuses
/// a server certificate that its revocation lists revoke, with the same protocol, ALPN and key
/// exchange policy as [`server_config`].
///
/// # Errors
///
/// As [`server_config`].
pub fn client_config(
    files: &TlsFiles,
    allow_classical: bool,
) -> Result<quinn::ClientConfig, TlsError> {
    let provider = Arc::new(provider(allow_classical));
    let roots = Arc::new(load_roots(&files.ca)?);
    let chain = load_chain(&files.cert)?;
    let key = load_key(&files.key)?;
    let revocations = Revocations::load(files)?;

    let mut builder = WebPkiServerVerifier::builder_with_provider(roots, provider.clone());
    if let Some(revocations) = &revocations {
        builder = builder
            .with_crls(revocations.lists.iter().cloned())
            .allow_unknown_revocation_status();
    }
    let verifier = builder
        .build()
        .map_err(verifier_error(files, revocations.as_ref()))?;
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(format!("TLS 1.3 unavailable: {e}")))?
        .with_webpki_verifier(verifier)
        .with_client_auth_cert(chain, key)
        .map_err(mismatch_error(files))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.key_log = Arc::new(GroupLog);
    tls.resumption = Resumption::disabled();

    let quic = QuicClientConfig::try_from(Arc::new(tls))
        .map_err(|e| TlsError::Config(format!("unusable for QUIC: {e}")))?;
    Ok(quinn::ClientConfig::new(Arc::new(quic)))
}

/// Reads the identity out of a peer's end-entity certificate (DER), e.g. the first of
/// `connection.peer_identity()` downcast to `Vec<rustls_pki_types::CertificateDer<'static>>`.
///
/// Call it only on a certificate the handshake verified: this function checks no signature.
///
/// # Errors
///
/// [`TlsError::Certificate`] if the DER does not parse or a name is ambiguous;
/// [`TlsError::MissingCommonName`] without a CN; [`TlsError::UnknownRole`] if the OU is neither
/// `admin` nor `federate` (a certificate without OU is a federate's).
pub fn identity_from_certificate(der: &[u8]) -> Result<Identity, TlsError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| TlsError::Certificate(format!("cannot parse the peer certificate: {e}")))?;
    let subject = cert.subject();
    let name = match single(subject.iter_common_name(), "common name")? {
        Some(name) => name,
        None => return Err(TlsError::MissingCommonName),
    };
    if name.is_empty() {
        return Err(TlsError::MissingCommonName);
    }
    let role = match single(subject.iter_organizational_unit(), "organizational unit")? {
        Some(unit) => unit.parse()?,
        None => Role::Federate,
    };
    Ok(Identity {
        name: name.to_owned(),
        role,
    })
}

/// The identity of a quinn connection's peer, from its verified end-entity certificate.
///
/// # Errors
///
/// [`TlsError::NoPeerCertificate`] if the peer presented none (or the connection does not use
/// rustls); otherwise as [`identity_from_certificate`].
pub fn peer_identity(connection: &quinn::Connection) -> Result<Identity, TlsError> {
    identity_from_certificate(peer_certificate(connection)?.as_ref())
}

/// The serial number of a quinn connection's peer certificate, for [`Revocations::contains`].
///
/// # Errors
///
/// As [`peer_identity`].
pub fn peer_serial(connection: &quinn::Connection) -> Result<Vec<u8>, TlsError> {
    certificate_serial(peer_certificate(connection)?.as_ref())
}

/// The serial number of a certificate (DER): big-endian, without leading zero bytes.
///
/// # Errors
///
/// [`TlsError::Certificate`] if the DER does not parse.
pub fn certificate_serial(der: &[u8]) -> Result<Vec<u8>, TlsError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| TlsError::Certificate(format!("cannot parse the certificate: {e}")))?;
    Ok(unsigned(cert.raw_serial()).to_vec())
}

fn peer_certificate(connection: &quinn::Connection) -> Result<CertificateDer<'static>, TlsError> {
    let chain = connection
        .peer_identity()
        .and_then(|any| any.downcast::<Vec<CertificateDer<'static>>>().ok())
        .ok_or(TlsError::NoPeerCertificate)?;
    chain.first().cloned().ok_or(TlsError::NoPeerCertificate)
}

/// Whether a connection failed in its handshake because a certificate is revoked: the local
/// end refused the peer's (the TLS alert it sent), or the peer refused this end's (the alert
/// it received).
pub fn is_revocation(error: &quinn::ConnectionError) -> bool {
    let revoked =
        quinn::TransportErrorCode::crypto(u8::from(rustls::AlertDescription::CertificateRevoked));
    match error {
        quinn::ConnectionError::TransportError(error) => error.code == revoked,
        quinn::ConnectionError::ConnectionClosed(close) => close.error_code == revoked,
        _ => false,
    }
}

/// The key exchange group a quinn connection negotiated, e.g. `"X25519MLKEM768"`.
///
/// Known for connections made with [`server_config`] or [`client_config`] in this process once
/// the handshake has finished; `None` otherwise. The most recent 4096 handshakes are remembered.
pub fn negotiated_group(connection: &quinn::Connection) -> Option<String> {
    let mut fingerprint = [0u8; FINGERPRINT_LEN];
    connection
        .export_keying_material(&mut fingerprint, GROUP_EXPORTER_LABEL, b"")
        .ok()?;
    let group = lock_groups().by_fingerprint.get(&fingerprint)?;
    Some(match group.as_str() {
        Some(name) => name.to_owned(),
        None => format!("{group:?}"),
    })
}

/// The aws-lc-rs provider with the key exchange groups allowed by the policy, each wrapped so
/// that [`negotiated_group`] can learn which one a handshake used.
fn provider(allow_classical: bool) -> CryptoProvider {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.kx_groups = if allow_classical {
        vec![
            &RECORDED_X25519MLKEM768,
            &RECORDED_X25519,
            &RECORDED_SECP256R1,
        ]
    } else {
        vec![&RECORDED_X25519MLKEM768]
    };
    provider
}

/// The subject and key usages of a federation CA, shared by [`init_ca`] and [`issue`] so that
/// issued certificates name their issuer exactly as the CA names itself.
fn ca_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, common_name);
    subject.push(DnType::OrganizationName, ORGANIZATION);
    params.distinguished_name = subject;
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// Reads the CA in `dir`: its common name and its key, checked to belong together.
fn load_ca(dir: &Path) -> Result<(String, KeyPair), TlsError> {
    let cert_path = dir.join(CA_CERT_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    let read_ca = |path: &Path| match fs::read(path) {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(TlsError::NoCa(dir.to_path_buf())),
        Err(e) => Err(TlsError::Io {
            path: path.to_path_buf(),
            source: e,
        }),
    };
    let cert_pem = read_ca(&cert_path)?;
    let key_pem = read_ca(&key_path)?;

    let der =
        CertificateDer::from_pem_slice(&cert_pem).map_err(pem_error(&cert_path, "certificate"))?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).map_err(|e| {
        TlsError::Certificate(format!("cannot parse `{}`: {e}", cert_path.display()))
    })?;
    let common_name = single(cert.subject().iter_common_name(), "common name")?
        .ok_or_else(|| {
            TlsError::Certificate(format!("`{}` has no common name", cert_path.display()))
        })?
        .to_owned();
    let key_text = String::from_utf8(key_pem).map_err(|_| TlsError::NoPem {
        path: key_path.clone(),
        what: "private key",
    })?;
    let key = KeyPair::from_pem(&key_text).map_err(|e| {
        TlsError::Certificate(format!(
            "cannot read the CA key `{}`: {e}",
            key_path.display()
        ))
    })?;
    if key.public_key_raw() != cert.public_key().subject_public_key.data.as_ref() {
        return Err(TlsError::Certificate(format!(
            "`{}` is not the key of `{}`; restore the pair made by `fedtwin certs init`",
            key_path.display(),
            cert_path.display()
        )));
    }
    Ok((common_name, key))
}

/// All certificates in the PEM file at `path`, as trust anchors.
fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for der in load_chain(path)? {
        roots.add(der).map_err(|e| {
            TlsError::Certificate(format!("`{}` is not a usable CA: {e}", path.display()))
        })?;
    }
    Ok(roots)
}

/// All certificates in the PEM file at `path`, in file order; at least one.
fn load_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = fs::read(path).map_err(io_error(path))?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error(path, "certificate"))?;
    if chain.is_empty() {
        return Err(TlsError::NoPem {
            path: path.to_path_buf(),
            what: "certificate",
        });
    }
    Ok(chain)
}

/// The first private key in the PEM file at `path`.
fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = fs::read(path).map_err(io_error(path))?;
    // A warning, not a refusal: deployments that share a key with a service group (0640)
    // are legitimate, and refusing would turn a hardening hint into an outage.
    #[cfg(unix)]
    if let Ok(metadata) = fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            warn!(
                key = %path.display(),
                mode = format_args!("{mode:04o}"),
                "the private key can be read by other users than its owner; `chmod 600` it"
            );
        }
    }
    PrivateKeyDer::from_pem_slice(&pem).map_err(pem_error(path, "private key"))
}

/// Reads the list in `crl.pem` back for [`revoke`]: its number and entries.
fn read_crl(
    path: PathBuf,
    pem: &[u8],
    ca_path: &Path,
    ca_subject: &[u8],
) -> Result<(u64, Vec<RevokedCertParams>), TlsError> {
    let checked = Revocations::parse(path.clone(), pem, ca_path)?;
    let invalid = |reason: String| TlsError::Crl {
        path: path.clone(),
        reason,
    };
    let mut number = 0u64;
    let mut entries = Vec::new();
    for der in &checked.lists {
        let (_, list) = x509_parser::parse_x509_crl(der.as_ref())
            .map_err(|e| invalid(format!("cannot parse it: {e}")))?;
        // Rewriting the file would drop another CA's list: keep that in a file of its own.
        if list.issuer().as_raw() != ca_subject {
            return Err(invalid(format!(
                "it also holds the list of `{}`; `fedtwin certs revoke` writes only this folder's \
                 CA's list: move the other one to a file of its own",
                list.issuer()
            )));
        }
        if let Some(found) = list.crl_number() {
            let found = u64::try_from(found)
                .map_err(|_| invalid(format!("its number {found} is too large")))?;
            number = number.max(found);
        }
        for entry in list.iter_revoked_certificates() {
            let reason_code = entry
                .reason_code()
                .and_then(|(_, code)| rcgen_reason(code.0));
            let invalidity_date = entry.invalidity_date().map(|(_, date)| date.to_datetime());
            entries.push(RevokedCertParams {
                serial_number: SerialNumber::from_slice(unsigned(entry.raw_serial())),
                revocation_time: entry.revocation_date.to_datetime(),
                reason_code,
                invalidity_date,
            });
        }
    }
    Ok((number, entries))
}

/// Signs a revocation list with `issuer` and replaces `crl.pem` with it, in one rename. It
/// claims validity until `ca_not_after`, or a day when the CA is about to expire: the list is
/// the federation's only source of revocations, written again on every change, so a short next
/// update would only make well-behaved checkers call it stale.
fn write_crl(
    dir: &Path,
    issuer: &Issuer<'_, KeyPair>,
    ca_not_after: OffsetDateTime,
    number: u64,
    revoked_certs: Vec<RevokedCertParams>,
) -> Result<(), TlsError> {
    let now = OffsetDateTime::now_utc();
    let params = CertificateRevocationListParams {
        this_update: now,
        next_update: ca_not_after.max(now + Duration::days(1)),
        crl_number: SerialNumber::from(number),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let list = params
        .signed_by(issuer)
        .map_err(certificate_error("cannot sign the revocation list"))?;
    let pem = list
        .pem()
        .map_err(certificate_error("cannot encode the revocation list"))?;

    let path = dir.join(CRL_FILE);
    let temporary = dir.join(format!(".{CRL_FILE}.{}.tmp", std::process::id()));
    let written = fs::write(&temporary, pem.as_bytes())
        .and_then(|()| fs::File::open(&temporary)?.sync_all())
        .and_then(|()| fs::rename(&temporary, &path));
    if let Err(source) = written {
        let _ = fs::remove_file(&temporary);
        return Err(TlsError::Io { path, source });
    }
    Ok(())
}

/// The RFC 5280 reason with this code, if rcgen can write it.
fn rcgen_reason(code: u8) -> Option<rcgen::RevocationReason> {
    use rcgen::RevocationReason as R;
    Some(match code {
        0 => R::Unspecified,
        1 => R::KeyCompromise,
        2 => R::CaCompromise,
        3 => R::AffiliationChanged,
        4 => R::Superseded,
        5 => R::CessationOfOperation,
        6 => R::CertificateHold,
        8 => R::RemoveFromCrl,
        9 => R::PrivilegeWithdrawn,
        10 => R::AaCompromise,
        _ => return None,
    })
}

/// 16 random bytes as a positive serial number (the top bit clear, so DER needs no sign byte).
fn random_serial() -> Result<SerialNumber, TlsError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| TlsError::Certificate("no randomness for a serial number".to_owned()))?;
    bytes[0] &= 0x7f;
    Ok(SerialNumber::from_slice(&bytes))
}

/// A DER integer's content bytes without leading zero bytes: the same serial number whether or
/// not its encoding needed a sign byte.
fn unsigned(bytes: &[u8]) -> &[u8] {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    &bytes[zeros..]
}

/// Refuses names that are not plain, portable file names, and the CA's own name.
fn check_name(name: &str) -> Result<(), TlsError> {
    let first_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    let all_ok = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    // `ca` and `crl` would overwrite the CA's or the revocation list's files.
    let reserved = name.eq_ignore_ascii_case("ca") || name.eq_ignore_ascii_case("crl");
    if !first_ok || !all_ok || name.len() > MAX_NAME_LEN || reserved {
        return Err(TlsError::InvalidName(name.to_owned()));
    }
    Ok(())
}

/// The only value `values` yields, `None` if it yields none; an error if several or not text.
fn single<'a, 'b: 'a>(
    mut values: impl Iterator<Item = &'a x509_parser::x509::AttributeTypeAndValue<'b>>,
    what: &str,
) -> Result<Option<&'a str>, TlsError> {
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(TlsError::Certificate(format!(
            "the subject has more than one {what}"
        )));
    }
    let text = first
        .as_str()
        .map_err(|e| TlsError::Certificate(format!("the subject's {what} is not text: {e}")))?;
    Ok(Some(text))
}

/// From an hour ago (tolerating clock skew) for `days`.
fn validity_from_now(days: u32) -> Result<(OffsetDateTime, OffsetDateTime), TlsError> {
    if days == 0 {
        return Err(TlsError::Certificate(
            "a validity of 0 days; give at least 1".to_owned(),
        ));
    }
    let not_before = OffsetDateTime::now_utc() - Duration::hours(1);
    Ok((not_before, not_before + Duration::days(i64::from(days))))
}

/// Writes a private key file readable by its owner only (mode 0600 on unix), either creating
/// it (`create_new`) or replacing an earlier one.
fn write_private(path: &Path, contents: &[u8], create_new: bool) -> Result<(), TlsError> {
    let mut options = OpenOptions::new();
    options.write(true);
    if create_new {
        options.create_new(true);
    } else {
        options.create(true).truncate(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io_error(path))?;
    // `mode` only applies to new files: tighten a replaced one before writing the new key.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(io_error(path))?;
    }
    file.write_all(contents).map_err(io_error(path))?;
    file.sync_all().map_err(io_error(path))
}

/// Writes a file that must not exist yet.
fn write_new(path: &Path, contents: &[u8]) -> Result<(), TlsError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io_error(path))?;
    file.write_all(contents).map_err(io_error(path))?;
    file.sync_all().map_err(io_error(path))
}

/// What to do about a certificate file that cannot be used, by what went wrong.
fn io_hint(path: &Path, error: &io::Error) -> String {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| ".".to_owned(), |d| d.display().to_string());
    let name = path.file_stem().map(|s| s.to_string_lossy().into_owned());
    let pem_or_key = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("pem" | "key")
    );
    match (error.kind(), name.as_deref()) {
        (io::ErrorKind::NotFound, Some("ca")) => format!(
            "; create the federation CA with `fedtwin certs init --dir {dir}` (or copy its \
             ca.pem there)"
        ),
        (io::ErrorKind::NotFound, Some(name)) if pem_or_key && name != "crl" => format!(
            "; issue it with `fedtwin certs issue --dir {dir} --name {name}` (or copy \
             {name}.pem and {name}.key there)"
        ),
        (io::ErrorKind::NotFound, _) => "; check the path".to_owned(),
        (io::ErrorKind::PermissionDenied, _) => {
            "; check the file's and its folder's permissions".to_owned()
        }
        _ => String::new(),
    }
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn pem_error<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(pem::Error) -> TlsError + 'a {
    move |error| match error {
        pem::Error::NoItemsFound => TlsError::NoPem {
            path: path.to_path_buf(),
            what,
        },
        other => TlsError::Certificate(format!("`{}` is not valid PEM: {other}", path.display())),
    }
}

fn certificate_error(context: &str) -> impl FnOnce(rcgen::Error) -> TlsError + '_ {
    move |error| TlsError::Certificate(format!("{context}: {error}"))
}

fn verifier_error<'a>(
    files: &'a TlsFiles,
    revocations: Option<&'a Revocations>,
) -> impl FnOnce(rustls::client::VerifierBuilderError) -> TlsError + 'a {
    move |error| match (error, revocations) {
        (rustls::client::VerifierBuilderError::InvalidCrl(reason), Some(revocations)) => {
            TlsError::Crl {
                path: revocations.path.clone(),
                reason: format!("{reason:?}"),
            }
        }
        (other, _) => TlsError::Config(format!("cannot trust `{}`: {other}", files.ca.display())),
    }
}

fn mismatch_error(files: &TlsFiles) -> impl FnOnce(rustls::Error) -> TlsError + '_ {
    move |error| {
        TlsError::Config(format!(
            "`{}` and `{}` are not a usable certificate and key: {error}",
            files.cert.display(),
            files.key.display()
        ))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------------
// Observing the negotiated key exchange group (see the module documentation).
//
// rustls runs a handshake step synchronously inside quinn's call into the TLS session, and within
// one such step completes the key exchange and then logs the client handshake traffic secret. So
// the group noted on the current thread by a wrapper below is the one of the connection whose
// client random the key log sees next. The exporter secret is logged later (on the client, in a
// later step) under the same client random; from it the key log derives the exporter value that
// `negotiated_group` computes from the connection, and files the group under that value.
// ---------------------------------------------------------------------------------------------

/// Exporter label (private use labels start with "EXPERIMENTAL", RFC 5705).
const GROUP_EXPORTER_LABEL: &[u8] = b"EXPERIMENTAL fedtwin key exchange group";
/// Length of the exporter value the groups are filed under.
const FINGERPRINT_LEN: usize = 32;
/// Handshakes waiting for their exporter secret that are remembered.
const PENDING_CAPACITY: usize = 1024;
/// Finished handshakes whose group is remembered.
const FINGERPRINT_CAPACITY: usize = 4096;

static RECORDED_X25519MLKEM768: RecordedGroup = RecordedGroup(kx_group::X25519MLKEM768);
static RECORDED_X25519: RecordedGroup = RecordedGroup(kx_group::X25519);
static RECORDED_SECP256R1: RecordedGroup = RecordedGroup(kx_group::SECP256R1);

thread_local! {
    /// The group whose key exchange last completed on this thread, until the key log takes it.
    static COMPLETED_GROUP: Cell<Option<NamedGroup>> = const { Cell::new(None) };
}

static GROUPS: Mutex<GroupRegistry> = Mutex::new(GroupRegistry {
    pending: Recent::new(PENDING_CAPACITY),
    by_fingerprint: Recent::new(FINGERPRINT_CAPACITY),
});

fn lock_groups() -> std::sync::MutexGuard<'static, GroupRegistry> {
    GROUPS.lock().unwrap_or_else(PoisonError::into_inner)
}

fn note_completed(group: NamedGroup) {
    COMPLETED_GROUP.with(|cell| cell.set(Some(group)));
}

/// Groups of handshakes in progress (by client random) and finished (by exporter value).
struct GroupRegistry {
    pending: Recent<[u8; 32]>,
    by_fingerprint: Recent<[u8; FINGERPRINT_LEN]>,
}

/// A map that forgets its oldest entries beyond a capacity.
struct Recent<K> {
    entries: BTreeMap<K, (u64, NamedGroup)>,
    order: VecDeque<(u64, K)>,
    next_stamp: u64,
    capacity: usize,
}

impl<K: Ord + Copy> Recent<K> {
    const fn new(capacity: usize) -> Self {
        Self {
            entries: BTreeMap::new(),
            order: VecDeque::new(),
            next_stamp: 0,
            capacity,
        }
    }

    fn insert(&mut self, key: K, group: NamedGroup) {
        let stamp = self.next_stamp;
        self.next_stamp = self.next_stamp.wrapping_add(1);
        self.entries.insert(key, (stamp, group));
        self.order.push_back((stamp, key));
        while self.order.len() > self.capacity {
            let Some((old_stamp, old_key)) = self.order.pop_front() else {
                break;
            };
            // Only forget the entry this stamp made, not a later insert under the same key.
            if self
                .entries
                .get(&old_key)
                .is_some_and(|(s, _)| *s == old_stamp)
            {
                self.entries.remove(&old_key);
            }
        }
    }

    fn remove(&mut self, key: &K) -> Option<NamedGroup> {
        self.entries.remove(key).map(|(_, group)| group)
    }

    fn get(&self, key: &K) -> Option<NamedGroup> {
        self.entries.get(key).map(|(_, group)| *group)
    }
}

/// A key exchange group of the aws-lc-rs provider that notes when it completes.
#[derive(Debug)]
struct RecordedGroup(&'static dyn SupportedKxGroup);

impl SupportedKxGroup for RecordedGroup {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, rustls::Error> {
        Ok(Box::new(RecordedExchange(self.0.start()?)))
    }

    fn start_and_complete(
        &self,
        peer_pub_key: &[u8],
    ) -> Result<CompletedKeyExchange, rustls::Error> {
        let completed = self.0.start_and_complete(peer_pub_key)?;
        note_completed(completed.group);
        Ok(completed)
    }

    fn ffdhe_group(&self) -> Option<rustls::ffdhe_groups::FfdheGroup<'static>> {
        self.0.ffdhe_group()
    }

    fn name(&self) -> NamedGroup {
        self.0.name()
    }

    fn fips(&self) -> bool {
        self.0.fips()
    }

    fn usable_for_version(&self, version: rustls::ProtocolVersion) -> bool {
        self.0.usable_for_version(version)
    }
}

/// A client's key exchange in progress that notes which group completes it.
struct RecordedExchange(Box<dyn ActiveKeyExchange>);

impl ActiveKeyExchange for RecordedExchange {
    fn complete(self: Box<Self>, peer_pub_key: &[u8]) -> Result<SharedSecret, rustls::Error> {
        let group = self.0.group();
        let secret = self.0.complete(peer_pub_key)?;
        note_completed(group);
        Ok(secret)
    }

    fn complete_for_tls_version(
        self: Box<Self>,
        peer_pub_key: &[u8],
        tls_version: &rustls::SupportedProtocolVersion,
    ) -> Result<SharedSecret, rustls::Error> {
        let group = self.0.group();
        let secret = self.0.complete_for_tls_version(peer_pub_key, tls_version)?;
        note_completed(group);
        Ok(secret)
    }

    fn hybrid_component(&self) -> Option<(NamedGroup, &[u8])> {
        self.0.hybrid_component()
    }

    fn complete_hybrid_component(
        self: Box<Self>,
        peer_pub_key: &[u8],
    ) -> Result<SharedSecret, rustls::Error> {
        let group = self.0.hybrid_component().map(|(group, _)| group);
        let secret = self.0.complete_hybrid_component(peer_pub_key)?;
        if let Some(group) = group {
            note_completed(group);
        }
        Ok(secret)
    }

    fn pub_key(&self) -> &[u8] {
        self.0.pub_key()
    }

    fn ffdhe_group(&self) -> Option<rustls::ffdhe_groups::FfdheGroup<'static>> {
        self.0.ffdhe_group()
    }

    fn group(&self) -> NamedGroup {
        self.0.group()
    }
}

/// A key log that files the completed group under the connection's exporter value. It accepts
/// only the two labels it needs and keeps no secret.
#[derive(Debug)]
struct GroupLog;

impl GroupLog {
    const HANDSHAKE_LABEL: &'static str = "CLIENT_HANDSHAKE_TRAFFIC_SECRET";
    const EXPORTER_LABEL: &'static str = "EXPORTER_SECRET";
}

impl KeyLog for GroupLog {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        let Ok(client_random) = <[u8; 32]>::try_from(client_random) else {
            return;
        };
        if label == Self::HANDSHAKE_LABEL {
            if let Some(group) = COMPLETED_GROUP.with(Cell::take) {
                lock_groups().pending.insert(client_random, group);
            }
        } else if label == Self::EXPORTER_LABEL {
            let mut groups = lock_groups();
            if let Some(group) = groups.pending.remove(&client_random)
                && let Some(fingerprint) = exporter_fingerprint(secret)
            {
                groups.by_fingerprint.insert(fingerprint, group);
            }
        }
    }

    fn will_log(&self, label: &str) -> bool {
        label == Self::HANDSHAKE_LABEL || label == Self::EXPORTER_LABEL
    }
}

/// The TLS 1.3 exporter value (RFC 8446, section 7.5) for [`GROUP_EXPORTER_LABEL`] and an empty
/// context, as `export_keying_material` computes it. The hash is the cipher suite's, known from
/// the secret's length.
fn exporter_fingerprint(exporter_secret: &[u8]) -> Option<[u8; FINGERPRINT_LEN]> {
    let (algorithm, hash) = match exporter_secret.len() {
        32 => (hkdf::HKDF_SHA256, &digest::SHA256),
        48 => (hkdf::HKDF_SHA384, &digest::SHA384),
        _ => return None,
    };
    let empty_hash = digest::digest(hash, b"");

    // Derive-Secret(exporter secret, label, "") keeps the hash's length.
    let exporter = hkdf::Prk::new_less_safe(algorithm, exporter_secret);
    let info = hkdf_label(hash.output_len, GROUP_EXPORTER_LABEL, empty_hash.as_ref())?;
    let label_secret: hkdf::Prk = exporter.expand(&[info.as_slice()], algorithm).ok()?.into();

    // HKDF-Expand-Label(that, "exporter", Hash(context), length).
    let info = hkdf_label(FINGERPRINT_LEN, b"exporter", empty_hash.as_ref())?;
    let mut out = [0u8; FINGERPRINT_LEN];
    label_secret
        .expand(&[info.as_slice()], OutputLen(FINGERPRINT_LEN))
        .ok()?
        .fill(&mut out)
        .ok()?;
    Some(out)
}

/// The `HkdfLabel` structure of HKDF-Expand-Label (RFC 8446, section 7.1).
fn hkdf_label(len: usize, label: &[u8], context: &[u8]) -> Option<Vec<u8>> {
    const PREFIX: &[u8] = b"tls13 ";
    let mut info = Vec::with_capacity(4 + PREFIX.len() + label.len() + context.len());
    info.extend_from_slice(&u16::try_from(len).ok()?.to_be_bytes());
    info.push(u8::try_from(PREFIX.len() + label.len()).ok()?);
    info.extend_from_slice(PREFIX);
    info.extend_from_slice(label);
    info.push(u8::try_from(context.len()).ok()?);
    info.extend_from_slice(context);
    Some(info)
}

/// An HKDF output length.
struct OutputLen(usize);

impl hkdf::KeyType for OutputLen {
    fn len(&self) -> usize {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration as StdDuration;

    use super::*;

    /// Bound on every await of a test, so that a test fails instead of hanging.
    const BOUND: StdDuration = StdDuration::from_secs(5);
    /// The server name of the RTI's certificate.
    const RTI: &str = "rti";

    /// A directory under the system's temporary directory, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let unique = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir()
                .join(format!("fedtwin-tls-{tag}-{}-{unique}", std::process::id()));
            let _ = fs::remove_dir_all(&path);
            Self(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// A CA with a certificate for the RTI and one for the federate `plant-1`.
    fn federation(tag: &str) -> TempDir {
        let dir = TempDir::new(tag);
        init_ca(&dir.0, 30).unwrap();
        issue_for_days(&dir.0, RTI, Role::Federate, 30).unwrap();
        issue_for_days(&dir.0, "plant-1", Role::Federate, 30).unwrap();
        dir
    }

    fn identity_in(dir: &Path, name: &str) -> Identity {
        let chain = load_chain(&TlsFiles::in_dir(dir, name).cert).unwrap();
        identity_from_certificate(chain[0].as_ref()).unwrap()
    }

    /// A rustls client configuration built by hand, for clients that break the policy.
    fn custom_client(
        ca: &Path,
        kx_groups: Vec<&'static dyn SupportedKxGroup>,
        certificate: Option<&TlsFiles>,
    ) -> quinn::ClientConfig {
        let mut provider = rustls::crypto::aws_lc_rs::default_provider();
        provider.kx_groups = kx_groups;
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(load_roots(ca).unwrap());
        let mut tls = match certificate {
            Some(files) => builder
                .with_client_auth_cert(
                    load_chain(&files.cert).unwrap(),
                    load_key(&files.key).unwrap(),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        tls.alpn_protocols = vec![ALPN.to_vec()];
        quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(Arc::new(tls)).unwrap()))
    }

    /// What one side saw of a connection: the peer's identity and the negotiated group.
    type Seen = Result<(Identity, Option<String>), String>;

    /// One connection attempt on 127.0.0.1: the server accepts one connection and echoes one
    /// stream; the client connects, sends `ping` on a stream and reads the echo.
    async fn attempt(server: quinn::ServerConfig, client: quinn::ClientConfig) -> (Seen, Seen) {
        let localhost = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let server_endpoint = quinn::Endpoint::server(server, localhost).unwrap();
        let address = server_endpoint.local_addr().unwrap();
        let accepting = server_endpoint.clone();
        let server_side = tokio::spawn(async move {
            let incoming = accepting.accept().await.ok_or("endpoint closed")?;
            let connection = incoming.await.map_err(|e| format!("accept: {e}"))?;
            let identity = peer_identity(&connection).map_err(|e| e.to_string())?;
            let group = negotiated_group(&connection);
            let (mut send, mut recv) = connection
                .accept_bi()
                .await
                .map_err(|e| format!("accept_bi: {e}"))?;
            let data = recv
                .read_to_end(64)
                .await
                .map_err(|e| format!("read: {e}"))?;
            send.write_all(&data)
                .await
                .map_err(|e| format!("write: {e}"))?;
            send.finish().map_err(|e| format!("finish: {e}"))?;
            // Keep the connection until the client has read the echo and closes.
            connection.closed().await;
            Ok::<_, String>((identity, group))
        });

        let client_endpoint = quinn::Endpoint::client(localhost).unwrap();
        let client_side = async {
            let connecting = client_endpoint
                .connect_with(client, address, RTI)
                .map_err(|e| e.to_string())?;
            let connection = connecting.await.map_err(|e| format!("connect: {e}"))?;
            let identity = peer_identity(&connection).map_err(|e| e.to_string())?;
            let group = negotiated_group(&connection);
            let (mut send, mut recv) = connection
                .open_bi()
                .await
                .map_err(|e| format!("open_bi: {e}"))?;
            send.write_all(b"ping")
                .await
                .map_err(|e| format!("write: {e}"))?;
            send.finish().map_err(|e| format!("finish: {e}"))?;
            let echo = recv
                .read_to_end(64)
                .await
                .map_err(|e| format!("read: {e}"))?;
            if echo != b"ping" {
                return Err(format!("echo {echo:?}"));
            }
            connection.close(0u32.into(), b"done");
            Ok((identity, group))
        };
        let client_seen = match tokio::time::timeout(BOUND, client_side).await {
            Ok(seen) => seen,
            Err(_) => panic!("the client neither finished nor failed within {BOUND:?}"),
        };
        let server_seen = match tokio::time::timeout(BOUND, server_side).await {
            Ok(joined) => joined.unwrap(),
            Err(_) => panic!("the server neither finished nor failed within {BOUND:?}"),
        };
        server_endpoint.close(0u32.into(), b"");
        client_endpoint.close(0u32.into(), b"");
        (server_seen, client_seen)
    }

    fn assert_refused((server, client): (Seen, Seen), case: &str) {
        let server_error = server.expect_err(&format!("{case}: the server accepted"));
        assert!(
            server_error.starts_with("accept:"),
            "{case}: server failed late: {server_error}"
        );
        client.expect_err(&format!("{case}: the client got through"));
    }

    #[test]
    fn init_ca_refuses_to_overwrite_a_ca() {
        let dir = TempDir::new("init-twice");
        init_ca(&dir.0, 10).unwrap();
        let before = fs::read(dir.0.join(CA_KEY_FILE)).unwrap();
        let error = init_ca(&dir.0, 10).unwrap_err();
        assert!(
            matches!(&error, TlsError::CaExists(path) if *path == dir.0),
            "{error}"
        );
        assert!(
            error.to_string().contains("refusing to overwrite"),
            "{error}"
        );
        assert_eq!(fs::read(dir.0.join(CA_KEY_FILE)).unwrap(), before);
    }

    #[cfg(unix)]
    #[test]
    fn key_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = federation("modes");
        for file in [CA_KEY_FILE, "rti.key", "plant-1.key"] {
            let mode = fs::metadata(dir.0.join(file)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
    }

    /// A key file other users can read is used, with a warning that names it and its mode.
    #[cfg(unix)]
    #[test]
    fn a_key_others_can_read_is_used_with_a_warning() {
        use std::os::unix::fs::PermissionsExt;
        use std::sync::Mutex;

        #[derive(Clone, Default)]
        struct Log(Arc<Mutex<Vec<u8>>>);
        impl Write for Log {
            fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }

        let dir = TempDir::new("key-mode");
        init_ca(&dir.0, 10).unwrap();
        issue_for_days(&dir.0, "plant", Role::Federate, 10).unwrap();
        let files = TlsFiles::in_dir(&dir.0, "plant");
        let loaded = || {
            let log = Log::default();
            let writer = log.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .finish();
            tracing::subscriber::with_default(subscriber, || {
                client_config(&files, false).unwrap();
            });
            String::from_utf8(log.0.lock().unwrap().clone()).unwrap()
        };
        assert_eq!(loaded(), "", "issued keys are the owner's alone");
        fs::set_permissions(&files.key, fs::Permissions::from_mode(0o644)).unwrap();
        let log = loaded();
        assert!(
            log.contains("WARN") && log.contains("mode=0644") && log.contains("chmod 600"),
            "{log}"
        );
    }

    #[test]
    fn issued_certificates_carry_name_and_role() {
        let dir = TempDir::new("identity");
        init_ca(&dir.0, 10).unwrap();
        issue_for_days(&dir.0, "ops", Role::Admin, 10).unwrap();
        issue_for_days(&dir.0, "plant-1", Role::Federate, 10).unwrap();
        assert_eq!(
            identity_in(&dir.0, "ops"),
            Identity {
                name: "ops".into(),
                role: Role::Admin
            }
        );
        assert_eq!(
            identity_in(&dir.0, "plant-1"),
            Identity {
                name: "plant-1".into(),
                role: Role::Federate
            }
        );
    }

    #[test]
    fn issue_without_a_ca_says_how_to_make_one() {
        let dir = TempDir::new("no-ca");
        let error = issue_for_days(&dir.0, "plant-1", Role::Federate, 1).unwrap_err();
        assert!(matches!(error, TlsError::NoCa(_)), "{error}");
        assert!(
            error.to_string().contains("fedtwin certs init --dir"),
            "{error}"
        );
    }

    #[test]
    fn a_missing_file_says_how_to_make_it() {
        let missing = |path: &str| {
            TlsError::Io {
                path: PathBuf::from(path),
                source: io::Error::from(io::ErrorKind::NotFound),
            }
            .to_string()
        };
        assert!(
            missing("certs/ca.pem").ends_with("create the federation CA with `fedtwin certs init --dir certs` (or copy its ca.pem there)"),
            "{}",
            missing("certs/ca.pem")
        );
        assert!(
            missing("pki/rti.key").contains("`fedtwin certs issue --dir pki --name rti`"),
            "{}",
            missing("pki/rti.key")
        );
        assert!(missing("x/revoked.txt").ends_with("; check the path"));
    }

    #[test]
    fn issue_refuses_names_that_are_not_plain_file_names() {
        let dir = TempDir::new("names");
        init_ca(&dir.0, 10).unwrap();
        for name in [
            "",
            "ca",
            "CA",
            "crl",
            "Crl",
            "../escape",
            ".hidden",
            "a/b",
            "with space",
        ] {
            let error = issue_for_days(&dir.0, name, Role::Federate, 1).unwrap_err();
            assert!(
                matches!(error, TlsError::InvalidName(_)),
                "{name:?}: {error}"
            );
        }
        let now = OffsetDateTime::now_utc();
        let error = issue(&dir.0, "late", Role::Federate, now, now).unwrap_err();
        assert!(matches!(error, TlsError::Certificate(_)), "{error}");
    }

    #[test]
    fn identity_needs_a_common_name_and_a_known_role() {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, "admin");
        let der = params.self_signed(&key).unwrap().der().to_vec();
        assert!(matches!(
            identity_from_certificate(&der),
            Err(TlsError::MissingCommonName)
        ));

        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, "x");
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, "root");
        let der = params.self_signed(&key).unwrap().der().to_vec();
        let error = identity_from_certificate(&der).unwrap_err();
        assert!(
            matches!(&error, TlsError::UnknownRole(role) if role == "root"),
            "{error}"
        );

        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, "x");
        let der = params.self_signed(&key).unwrap().der().to_vec();
        assert_eq!(
            identity_from_certificate(&der).unwrap().role,
            Role::Federate
        );
        assert!(identity_from_certificate(b"not a certificate").is_err());
    }

    #[test]
    fn configurations_name_missing_files() {
        let dir = TempDir::new("missing");
        init_ca(&dir.0, 10).unwrap();
        let error = server_config(&TlsFiles::in_dir(&dir.0, "nobody"), false).unwrap_err();
        assert!(
            matches!(&error, TlsError::Io { path, .. } if path.ends_with("nobody.pem")),
            "{error}"
        );
        fs::write(dir.0.join("empty.pem"), "").unwrap();
        fs::write(dir.0.join("empty.key"), "").unwrap();
        let error = client_config(&TlsFiles::in_dir(&dir.0, "empty"), false).unwrap_err();
        assert!(
            matches!(
                error,
                TlsError::NoPem {
                    what: "certificate",
                    ..
                }
            ),
            "{error}"
        );
    }

    #[tokio::test]
    async fn valid_client_connects_with_post_quantum_key_exchange() {
        let dir = federation("valid");
        for allow_classical in [false, true] {
            let server = server_config(&TlsFiles::in_dir(&dir.0, RTI), allow_classical).unwrap();
            let client =
                client_config(&TlsFiles::in_dir(&dir.0, "plant-1"), allow_classical).unwrap();
            let (server_seen, client_seen) = attempt(server, client).await;
            let (client_identity, server_group) = server_seen.unwrap();
            let (server_identity, client_group) = client_seen.unwrap();
            assert_eq!(
                client_identity,
                Identity {
                    name: "plant-1".into(),
                    role: Role::Federate
                }
            );
            assert_eq!(server_identity.name, RTI);
            assert_eq!(
                server_group.as_deref(),
                Some("X25519MLKEM768"),
                "{allow_classical}"
            );
            assert_eq!(
                client_group.as_deref(),
                Some("X25519MLKEM768"),
                "{allow_classical}"
            );
        }
    }

    #[tokio::test]
    async fn client_certificate_from_another_ca_is_refused() {
        let dir = federation("wrong-ca");
        let other = federation("other-ca");
        let server = server_config(&TlsFiles::in_dir(&dir.0, RTI), false).unwrap();
        let files = TlsFiles {
            ca: dir.0.join(CA_CERT_FILE),
            ..TlsFiles::in_dir(&other.0, "plant-1")
        };
        let client = client_config(&files, false).unwrap();
        assert_refused(attempt(server, client).await, "wrong CA");
    }

    #[tokio::test]
    async fn expired_client_certificate_is_refused() {
        let dir = federation("expired");
        let now = OffsetDateTime::now_utc();
        issue(
            &dir.0,
            "late",
            Role::Federate,
            now - Duration::days(10),
            now - Duration::days(1),
        )
        .unwrap();
        let server = server_config(&TlsFiles::in_dir(&dir.0, RTI), false).unwrap();
        let client = client_config(&TlsFiles::in_dir(&dir.0, "late"), false).unwrap();
        assert_refused(attempt(server, client).await, "expired");
    }

    #[tokio::test]
    async fn client_without_certificate_is_refused() {
        let dir = federation("anonymous");
        let server = server_config(&TlsFiles::in_dir(&dir.0, RTI), false).unwrap();
        let client = custom_client(
            &dir.0.join(CA_CERT_FILE),
            vec![kx_group::X25519MLKEM768],
            None,
        );
        assert_refused(attempt(server, client).await, "no certificate");
    }

    #[tokio::test]
    async fn classical_key_exchange_only_when_allowed() {
        let dir = federation("classical");
        let files = TlsFiles::in_dir(&dir.0, "plant-1");
        let classical = || custom_client(&files.ca, vec![kx_group::X25519], Some(&files));

        let strict = server_config(&TlsFiles::in_dir(&dir.0, RTI), false).unwrap();
        let (server_seen, client_seen) = attempt(strict, classical()).await;
        let server_error = server_seen.unwrap_err();
        assert!(server_error.starts_with("accept:"), "{server_error}");
        let client_error = client_seen.unwrap_err();
        assert!(client_error.starts_with("connect:"), "{client_error}");

        let lenient = server_config(&TlsFiles::in_dir(&dir.0, RTI), true).unwrap();
        let (server_seen, client_seen) = attempt(lenient, classical()).await;
        client_seen.unwrap();
        assert_eq!(server_seen.unwrap().1.as_deref(), Some("X25519"));
    }

    #[test]
    fn exporter_fingerprint_matches_rustls() {
        // One in-memory TLS 1.3 handshake (no QUIC) checks the exporter derivation.
        let dir = federation("exporter");
        let server_files = TlsFiles::in_dir(&dir.0, RTI);
        let provider = Arc::new(provider(false));
        let verifier = WebPkiClientVerifier::builder_with_provider(
            Arc::new(load_roots(&server_files.ca).unwrap()),
            provider.clone(),
        )
        .build()
        .unwrap();
        let mut server_tls = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                load_chain(&server_files.cert).unwrap(),
                load_key(&server_files.key).unwrap(),
            )
            .unwrap();
        server_tls.key_log = Arc::new(GroupLog);
        let client_files = TlsFiles::in_dir(&dir.0, "plant-1");
        let client_tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(load_roots(&client_files.ca).unwrap())
            .with_client_auth_cert(
                load_chain(&client_files.cert).unwrap(),
                load_key(&client_files.key).unwrap(),
            )
            .unwrap();
        let mut server = rustls::ServerConnection::new(Arc::new(server_tls)).unwrap();
        let mut client = rustls::ClientConnection::new(
            Arc::new(client_tls),
            rustls_pki_types::ServerName::try_from(RTI).unwrap(),
        )
        .unwrap();
        while server.is_handshaking() || client.is_handshaking() {
            let mut buffer = Vec::new();
            client.write_tls(&mut buffer).unwrap();
            server.read_tls(&mut buffer.as_slice()).unwrap();
            server.process_new_packets().unwrap();
            buffer.clear();
            server.write_tls(&mut buffer).unwrap();
            client.read_tls(&mut buffer.as_slice()).unwrap();
            client.process_new_packets().unwrap();
        }
        let mut fingerprint = [0u8; FINGERPRINT_LEN];
        server
            .export_keying_material(&mut fingerprint, GROUP_EXPORTER_LABEL, None)
            .unwrap();
        assert_eq!(
            lock_groups().by_fingerprint.get(&fingerprint),
            Some(NamedGroup::X25519MLKEM768)
        );
        assert_eq!(
            client
                .negotiated_key_exchange_group()
                .map(|group| group.name()),
            Some(NamedGroup::X25519MLKEM768)
        );
    }

    fn serial_in(dir: &Path, name: &str) -> Vec<u8> {
        let chain = load_chain(&TlsFiles::in_dir(dir, name).cert).unwrap();
        certificate_serial(chain[0].as_ref()).unwrap()
    }

    #[test]
    fn init_writes_an_empty_list_and_serials_are_random() {
        let dir = federation("empty-list");
        let files = TlsFiles::in_dir(&dir.0, RTI);
        let revocations = Revocations::load(&files).unwrap().unwrap();
        assert!(revocations.is_empty());
        assert_eq!(revocations.path(), dir.0.join(CRL_FILE));

        let before = serial_in(&dir.0, "plant-1");
        issue_for_days(&dir.0, "plant-1", Role::Federate, 30).unwrap();
        let after = serial_in(&dir.0, "plant-1");
        assert_ne!(before, after);
        assert!(after.len() >= 14, "{after:?}");
    }

    #[test]
    fn revoke_keeps_earlier_entries_and_counts_up() {
        let dir = federation("revoke");
        issue_for_days(&dir.0, "plant-2", Role::Federate, 30).unwrap();
        let first = revoke(&dir.0, "plant-1", RevocationReason::KeyCompromise).unwrap();
        assert_eq!(
            (first.crl_number, first.revoked, first.already),
            (2, 1, false)
        );
        let second = revoke(&dir.0, "plant-2", RevocationReason::default()).unwrap();
        assert_eq!((second.crl_number, second.revoked), (3, 2));
        let again = revoke(&dir.0, "plant-1", RevocationReason::Superseded).unwrap();
        assert_eq!(
            (again.crl_number, again.revoked, again.already),
            (3, 2, true)
        );

        let revocations = Revocations::load(&TlsFiles::in_dir(&dir.0, RTI))
            .unwrap()
            .unwrap();
        assert_eq!(revocations.len(), 2);
        assert!(revocations.contains(&serial_in(&dir.0, "plant-1")));
        assert!(revocations.contains(&serial_in(&dir.0, "plant-2")));
        assert!(!revocations.contains(&serial_in(&dir.0, RTI)));
        // The reason of the first entry survived the rewrite.
        let pem = fs::read(dir.0.join(CRL_FILE)).unwrap();
        let der = CertificateRevocationListDer::from_pem_slice(&pem).unwrap();
        let (_, list) = x509_parser::parse_x509_crl(der.as_ref()).unwrap();
        let reasons: Vec<_> = list
            .iter_revoked_certificates()
            .map(|entry| entry.reason_code().map(|(_, code)| code.0))
            .collect();
        assert_eq!(reasons, vec![Some(1), None]);
    }

    #[test]
    fn revoking_an_unknown_name_says_which_and_where() {
        let dir = federation("revoke-unknown");
        let error = revoke(&dir.0, "plant-9", RevocationReason::default()).unwrap_err();
        assert!(
            matches!(&error, TlsError::UnknownIdentity { name, .. } if name == "plant-9"),
            "{error}"
        );
        assert!(error.to_string().contains("plant-9.pem"), "{error}");
        assert!(matches!(
            revoke(&dir.0, "../x", RevocationReason::default()),
            Err(TlsError::InvalidName(_))
        ));
        let other = federation("revoke-foreign");
        fs::copy(other.0.join("plant-1.pem"), dir.0.join("stray.pem")).unwrap();
        let error = revoke(&dir.0, "stray", RevocationReason::default()).unwrap_err();
        assert!(error.to_string().contains("cannot revoke it"), "{error}");
    }

    #[test]
    fn unusable_lists_are_errors_naming_the_file() {
        let dir = federation("bad-list");
        let files = TlsFiles::in_dir(&dir.0, RTI);
        let crl = dir.0.join(CRL_FILE);

        fs::write(&crl, "not a list").unwrap();
        let error = server_config(&files, false).unwrap_err();
        assert!(
            matches!(&error, TlsError::Crl { path, .. } if *path == crl),
            "{error}"
        );
        assert!(error.to_string().contains("crl.pem"), "{error}");

        fs::write(
            &crl,
            "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
        )
        .unwrap();
        let error = client_config(&files, false).unwrap_err();
        assert!(matches!(error, TlsError::Crl { .. }), "{error}");
        // And revoking does not overwrite a list it cannot read back.
        let error = revoke(&dir.0, "plant-1", RevocationReason::default()).unwrap_err();
        assert!(matches!(error, TlsError::Crl { .. }), "{error}");
        assert!(fs::read_to_string(&crl).unwrap().contains("AAAA"));

        let other = federation("bad-list-other");
        fs::copy(other.0.join(CRL_FILE), &crl).unwrap();
        let error = server_config(&files, false).unwrap_err();
        assert!(error.to_string().contains("not a CA in"), "{error}");

        let named = TlsFiles {
            crl: Some(dir.0.join("missing.pem")),
            ..TlsFiles::in_dir(&other.0, RTI)
        };
        let error = server_config(&named, false).unwrap_err();
        assert!(
            matches!(&error, TlsError::Io { path, .. } if path.ends_with("missing.pem")),
            "{error}"
        );
        fs::remove_file(other.0.join(CRL_FILE)).unwrap();
        server_config(&TlsFiles::in_dir(&other.0, RTI), false).unwrap();
    }

    #[tokio::test]
    async fn revoked_client_is_refused_and_others_still_connect() {
        let dir = federation("revoked-client");
        issue_for_days(&dir.0, "plant-2", Role::Federate, 30).unwrap();
        revoke(&dir.0, "plant-1", RevocationReason::KeyCompromise).unwrap();
        let files = TlsFiles::in_dir(&dir.0, RTI);
        let revocations = Revocations::load(&files).unwrap().unwrap();
        revocations.check_own(&files).unwrap();

        let server = server_config(&files, false).unwrap();
        let client = client_config(&TlsFiles::in_dir(&dir.0, "plant-1"), false).unwrap();
        let seen = attempt(server, client).await;
        let server_error = seen.0.clone().unwrap_err();
        assert!(server_error.contains("Revoked"), "{server_error}");
        assert_refused(seen, "revoked");

        let server = server_config(&files, false).unwrap();
        let client = client_config(&TlsFiles::in_dir(&dir.0, "plant-2"), false).unwrap();
        let (server_seen, client_seen) = attempt(server, client).await;
        assert_eq!(server_seen.unwrap().0.name, "plant-2");
        client_seen.unwrap();
    }

    #[tokio::test]
    async fn revoked_server_is_refused_by_a_client_with_the_list() {
        let dir = federation("revoked-server");
        revoke(&dir.0, RTI, RevocationReason::KeyCompromise).unwrap();
        let files = TlsFiles::in_dir(&dir.0, RTI);
        let error = Revocations::load(&files)
            .unwrap()
            .unwrap()
            .check_own(&files)
            .unwrap_err();
        assert!(
            matches!(error, TlsError::OwnCertificateRevoked { .. }),
            "{error}"
        );

        let server = server_config(&files, false).unwrap();
        let client = client_config(&TlsFiles::in_dir(&dir.0, "plant-1"), false).unwrap();
        let (_, client_seen) = attempt(server, client).await;
        let client_error = client_seen.unwrap_err();
        assert!(
            client_error.starts_with("connect:") && client_error.contains("Revoked"),
            "{client_error}"
        );
    }

    #[tokio::test]
    async fn a_list_past_its_next_update_still_revokes() {
        let dir = federation("stale-list");
        let (common_name, key) = load_ca(&dir.0).unwrap();
        let now = OffsetDateTime::now_utc();
        let list = CertificateRevocationListParams {
            this_update: now - Duration::days(2),
            next_update: now - Duration::days(1),
            crl_number: SerialNumber::from(7),
            issuing_distribution_point: None,
            revoked_certs: vec![RevokedCertParams {
                serial_number: SerialNumber::from_slice(&serial_in(&dir.0, "plant-1")),
                revocation_time: now - Duration::days(2),
                reason_code: None,
                invalidity_date: None,
            }],
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&Issuer::new(ca_params(&common_name), key))
        .unwrap();
        fs::write(dir.0.join(CRL_FILE), list.pem().unwrap()).unwrap();

        let server = server_config(&TlsFiles::in_dir(&dir.0, RTI), false).unwrap();
        let client = client_config(&TlsFiles::in_dir(&dir.0, "plant-1"), false).unwrap();
        assert_refused(attempt(server, client).await, "stale list");
        // Revoking more continues from its number.
        issue_for_days(&dir.0, "plant-2", Role::Federate, 30).unwrap();
        let revoked = revoke(&dir.0, "plant-2", RevocationReason::default()).unwrap();
        assert_eq!((revoked.crl_number, revoked.revoked), (8, 2));
    }

    #[test]
    fn revocation_reasons_round_trip() {
        for reason in RevocationReason::ALL {
            assert_eq!(reason.as_str().parse::<RevocationReason>().unwrap(), reason);
        }
        assert!(matches!(
            "ca-compromise".parse::<RevocationReason>(),
            Err(TlsError::UnknownRevocationReason(_))
        ));
    }

    #[test]
    fn recent_forgets_the_oldest_entries() {
        let mut recent = Recent::new(2);
        recent.insert(1u8, NamedGroup::X25519);
        recent.insert(2, NamedGroup::X25519);
        recent.insert(1, NamedGroup::X25519MLKEM768);
        recent.insert(3, NamedGroup::secp256r1);
        assert_eq!(recent.get(&1), Some(NamedGroup::X25519MLKEM768));
        assert_eq!(recent.get(&2), None);
        assert_eq!(recent.remove(&3), Some(NamedGroup::secp256r1));
        assert!(recent.entries.len() <= 2 && recent.order.len() <= 2);
    }
}
