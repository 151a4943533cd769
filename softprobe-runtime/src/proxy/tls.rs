//! TLS for the egress proxy: the per-run certificate authority that terminates `CONNECT`
//! tunnels (one cached leaf certificate per host), and the client configuration used to reach
//! real HTTPS upstreams (webpki roots plus extra roots from `SOFTPROBE_UPSTREAM_CA_FILE`).

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Leaf configurations kept before the cache starts over.
const MAX_CACHED_LEAVES: usize = 1024;

/// Environment variable naming a PEM file of extra roots trusted for upstream HTTPS.
pub const UPSTREAM_CA_FILE_ENV: &str = "SOFTPROBE_UPSTREAM_CA_FILE";

/// Why a TLS set-up step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// Generating or signing a certificate failed.
    #[error("cannot {action}: {source}")]
    Certificate {
        /// What was being done.
        action: String,
        /// The cause.
        #[source]
        source: rcgen::Error,
    },
    /// A PEM input could not be read.
    #[error("{what}: {message}")]
    Pem {
        /// Which input (a file path or a description).
        what: String,
        /// What is wrong.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {action}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
    /// What was asked needs a feature this build of softprobe-runtime does not have (the
    /// message names it and the Cargo line that turns it on).
    #[error("{0}")]
    NotBuilt(&'static str),
}

/// Whether this build can load an existing CA ([`CertificateAuthority::from_pem`]): the
/// `ca-import` feature.
pub const CA_IMPORT_BUILT: bool = cfg!(feature = "ca-import");

/// Why loading an existing CA fails in a build without the `ca-import` feature.
pub const CA_IMPORT_NOT_BUILT: &str = "loading an existing CA certificate and key needs \
    softprobe-runtime's `ca-import` feature: this build has none; add it to the dependency's \
    line in Cargo.toml (softprobe-runtime = { version = \"0.1\", features = [\"ca-import\"] }) \
    or let the egress generate its CA";

fn cert_err(action: impl Into<String>) -> impl FnOnce(rcgen::Error) -> TlsError {
    let action = action.into();
    move |source| TlsError::Certificate { action, source }
}

/// The crypto provider every config of the proxy uses (ring keeps the build light).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate authority that signs leaf certificates for the hosts the egress proxy
/// intercepts. Clients trust it through [`CertificateAuthority::cert_pem`].
pub struct CertificateAuthority {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
    leaves: Mutex<HashMap<String, Arc<rustls::ServerConfig>>>,
}

impl fmt::Debug for CertificateAuthority {
    // The key never appears in logs or debug output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// A fresh CA with a new ECDSA P-256 key, valid from yesterday for ten years.
    pub fn generate() -> Result<Self, TlsError> {
        let key = KeyPair::generate().map_err(cert_err("generate the CA key"))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "softprobe proxy CA");
        dn.push(DnType::OrganizationName, "softprobe");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(3650);
        let cert = params
            .self_signed(&key)
            .map_err(cert_err("self-sign the CA certificate"))?;
        let cert_pem = cert.pem();
        let key_pem = key.serialize_pem();
        Ok(CertificateAuthority {
            cert_der: cert.der().clone(),
            cert_pem,
            key_pem,
            issuer: Issuer::new(params, key),
            leaves: Mutex::new(HashMap::new()),
        })
    }

    /// A CA from an existing certificate and private key, both PEM. Needs the `ca-import`
    /// feature; without it this is [`TlsError::NotBuilt`].
    #[cfg(not(feature = "ca-import"))]
    pub fn from_pem(_cert_pem: &str, _key_pem: &str) -> Result<Self, TlsError> {
        Err(TlsError::NotBuilt(CA_IMPORT_NOT_BUILT))
    }

    /// A CA from an existing certificate and private key, both PEM. Needs the `ca-import`
    /// feature; without it this is [`TlsError::NotBuilt`].
    #[cfg(feature = "ca-import")]
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, TlsError> {
        let key = KeyPair::from_pem(key_pem).map_err(|e| TlsError::Pem {
            what: "CA private key".into(),
            message: e.to_string(),
        })?;
        let cert_der =
            CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|e| TlsError::Pem {
                what: "CA certificate".into(),
                message: e.to_string(),
            })?;
        let issuer = Issuer::from_ca_cert_der(&cert_der, key).map_err(|e| TlsError::Pem {
            what: "CA certificate".into(),
            message: e.to_string(),
        })?;
        Ok(CertificateAuthority {
            cert_pem: cert_pem.to_owned(),
            cert_der,
            key_pem: key_pem.to_owned(),
            issuer,
            leaves: Mutex::new(HashMap::new()),
        })
    }

    /// A CA read from two PEM files (see [`CertificateAuthority::from_pem`]).
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let read = |path: &Path, action| {
            std::fs::read_to_string(path).map_err(|source| TlsError::Io {
                path: path.to_owned(),
                action,
                source,
            })
        };
        let cert_pem = read(cert, "cannot read the CA certificate")?;
        let key_pem = read(key, "cannot read the CA key")?;
        Self::from_pem(&cert_pem, &key_pem).map_err(|e| match e {
            TlsError::Pem { what, message } => TlsError::Pem {
                what: format!("{what} ({} / {})", cert.display(), key.display()),
                message,
            },
            other => other,
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// Writes the CA certificate (public) to `path`, creating parent directories.
    pub fn write_cert(&self, path: impl AsRef<Path>) -> Result<(), TlsError> {
        let path = path.as_ref();
        crate::case::write_atomic(path, self.cert_pem.as_bytes()).map_err(|e| TlsError::Io {
            path: path.to_owned(),
            action: "cannot write the CA certificate",
            source: std::io::Error::other(e.to_string()),
        })
    }

    /// Writes the CA private key to `path` with mode 0600 (owner only).
    pub fn write_key(&self, path: impl AsRef<Path>) -> Result<(), TlsError> {
        use std::io::Write as _;
        let path = path.as_ref();
        let io = |action| {
            move |source| TlsError::Io {
                path: path.to_owned(),
                action,
                source,
            }
        };
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            opts.mode(0o600);
        }
        let mut file = opts
            .open(path)
            .map_err(io("cannot create the CA key file"))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            // An existing file keeps its old mode through open(); force owner-only.
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(io("cannot restrict the CA key file"))?;
        }
        file.write_all(self.key_pem.as_bytes())
            .map_err(io("cannot write the CA key file"))
    }

    /// The TLS server configuration presenting a leaf certificate for `host` (a DNS name or
    /// an IP address), signed by this CA. Cached per host.
    pub fn server_config(&self, host: &str) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        if let Some(cfg) = self.leaves.lock().expect("leaf cache poisoned").get(&host) {
            return Ok(cfg.clone());
        }
        let cfg = Arc::new(self.build_server_config(&host)?);
        let mut leaves = self.leaves.lock().expect("leaf cache poisoned");
        // A proxy sees few hosts; a flood of names must not grow memory without bound.
        if leaves.len() >= MAX_CACHED_LEAVES {
            leaves.clear();
        }
        leaves.insert(host, cfg.clone());
        Ok(cfg)
    }

    fn build_server_config(&self, host: &str) -> Result<rustls::ServerConfig, TlsError> {
        let key = KeyPair::generate().map_err(cert_err(format!("generate a key for {host}")))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, host);
        params.distinguished_name = dn;
        params.subject_alt_names = vec![match host.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(
                host.try_into()
                    .map_err(cert_err(format!("use {host:?} as a certificate name")))?,
            ),
        }];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(365);
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(cert_err(format!("sign a certificate for {host}")))?;
        let key_der = PrivateKeyDer::try_from(key.serialize_der()).map_err(|e| TlsError::Pem {
            what: format!("leaf key for {host}"),
            message: e.to_string(),
        })?;
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone(), self.cert_der.clone()], key_der)?;
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(cfg)
    }
}

/// Parses every certificate of a PEM document; `what` names it in errors.
pub fn parse_certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem {
            what: what.to_owned(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            what: what.to_owned(),
            message: "no CERTIFICATE block found".into(),
        });
    }
    Ok(certs)
}

/// The client configuration for upstream HTTPS: the webpki roots, the roots in the file named
/// by `SOFTPROBE_UPSTREAM_CA_FILE` when set, and `extra_roots`.
pub fn upstream_client_config(
    extra_roots: &[CertificateDer<'static>],
) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = std::env::var_os(UPSTREAM_CA_FILE_ENV).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        let pem = std::fs::read(&path).map_err(|source| TlsError::Io {
            path: path.clone(),
            action: "cannot read the upstream CA file",
            source,
        })?;
        for cert in parse_certs(&pem, &path.display().to_string())? {
            roots.add(cert)?;
        }
    }
    for cert in extra_roots {
        roots.add(cert.clone())?;
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

// Each test loads a CA from PEM: the `ca-import` feature.
#[cfg(all(test, feature = "ca-import"))]
mod tests {
    use super::*;

    #[test]
    fn generated_ca_round_trips_through_pem_and_signs_leaves() {
        let ca = CertificateAuthority::generate().unwrap();
        assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(!format!("{ca:?}").contains("PRIVATE KEY"));
        let again = CertificateAuthority::from_pem(ca.cert_pem(), &ca.key_pem).unwrap();
        assert_eq!(again.cert_der(), ca.cert_der());
        let a = ca.server_config("api.example.test").unwrap();
        let b = ca.server_config("API.example.test").unwrap();
        assert!(Arc::ptr_eq(&a, &b), "leaves are cached per host, any case");
        again.server_config("127.0.0.1").unwrap();
    }

    #[test]
    fn bad_pem_is_named() {
        let err = CertificateAuthority::from_pem("nope", "nope").unwrap_err();
        assert!(err.to_string().contains("CA private key"), "{err}");
        let err = parse_certs(b"", "roots.pem").unwrap_err();
        assert_eq!(err.to_string(), "roots.pem: no CERTIFICATE block found");
    }

    #[test]
    fn key_file_is_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::generate().unwrap();
        let key = dir.path().join("ca.key");
        ca.write_key(&key).unwrap();
        ca.write_cert(dir.path().join("ca.pem")).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let loaded = CertificateAuthority::from_files(&dir.path().join("ca.pem"), &key).unwrap();
        assert_eq!(loaded.cert_der(), ca.cert_der());
    }
}
