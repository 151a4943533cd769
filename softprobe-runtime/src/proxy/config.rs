//! Starting the proxies from flat settings, as the `softprobe-runtime` binary does: which
//! proxies run, where, in front of what, with which CA.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::backend::SharedBackend;
use super::{
    CertificateAuthority, EgressProxy, IngressProxy, ProxyError, RunningEgress, RunningProxy,
};

/// The seed's ingress port.
pub const DEFAULT_INGRESS_LISTEN: &str = "127.0.0.1:8082";
/// The seed's egress port.
pub const DEFAULT_EGRESS_LISTEN: &str = "127.0.0.1:8084";

/// Everything the binary's proxy flags say. The ingress runs when it has an upstream; the
/// egress runs when it has a listen address or a default upstream.
#[derive(Debug, Clone, Default)]
pub struct ProxyConfig {
    /// Ingress listen address (default [`DEFAULT_INGRESS_LISTEN`]).
    pub ingress_listen: Option<SocketAddr>,
    /// The application behind the ingress.
    pub ingress_upstream: Option<String>,
    /// Egress listen address (default [`DEFAULT_EGRESS_LISTEN`]).
    pub egress_listen: Option<SocketAddr>,
    /// Default upstream for origin-form requests to the egress.
    pub egress_upstream: Option<String>,
    /// PEM file of the CA certificate (with `ca_key`; otherwise a CA is generated).
    pub ca_cert: Option<PathBuf>,
    /// PEM file of the CA private key.
    pub ca_key: Option<PathBuf>,
    /// Where to write the CA certificate for clients to trust.
    pub ca_out: Option<PathBuf>,
    /// Extra root certificates the egress trusts when it calls HTTPS upstreams, besides the
    /// webpki roots and `SOFTPROBE_UPSTREAM_CA_FILE` ([`super::ProxyBuilder::upstream_root`]).
    pub egress_upstream_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// Refuse traffic without an open session.
    pub require_session: bool,
    /// Service name recorded on hops.
    pub service: Option<String>,
    /// Threads serving the ingress's connections (see [`super::ProxyBuilder::threads`]):
    /// `None` is one per CPU, `Some(0)` serves them on the runtime that starts the proxies.
    pub ingress_threads: Option<usize>,
    /// Time a client gets to send a request head (default 10 s).
    pub header_read_timeout: Option<Duration>,
    /// Allow non-loopback listen addresses (refused otherwise: the proxies would be an open
    /// relay for anyone who can reach them).
    pub allow_remote: bool,
    /// The runtime's API token: when set, the egress proxy requires it as the password of
    /// its proxy credentials ([`super::EgressBuilder::proxy_token`]).
    pub token: Option<String>,
}

/// The proxies a [`ProxyConfig`] started.
#[derive(Debug, Default)]
pub struct RunningProxies {
    /// The ingress, when configured.
    pub ingress: Option<RunningProxy>,
    /// The egress, when configured.
    pub egress: Option<RunningEgress>,
}

impl RunningProxies {
    /// The egress CA certificate, PEM, when an egress runs.
    pub fn ca_cert_pem(&self) -> Option<&str> {
        self.egress.as_ref().map(RunningEgress::ca_cert_pem)
    }

    /// Stops both proxies and waits for their connections to finish.
    pub async fn shutdown(self) {
        if let Some(i) = self.ingress {
            i.shutdown().await;
        }
        if let Some(e) = self.egress {
            e.shutdown().await;
        }
    }
}

fn default_addr(s: &str) -> SocketAddr {
    s.parse().unwrap_or(super::DEFAULT_LISTEN)
}

impl ProxyConfig {
    /// Whether any proxy is configured.
    pub fn is_enabled(&self) -> bool {
        self.runs_ingress() || self.runs_egress()
    }

    fn runs_ingress(&self) -> bool {
        self.ingress_upstream.is_some()
    }

    fn runs_egress(&self) -> bool {
        self.egress_listen.is_some() || self.egress_upstream.is_some()
    }

    /// Refuses a non-loopback listen address of a configured proxy unless
    /// [`ProxyConfig::allow_remote`] is set (then warns). [`ProxyConfig::start`] checks it too;
    /// call it first to fail before starting anything else.
    pub fn check_listen(&self) -> Result<(), ProxyError> {
        let listens = [
            (self.runs_ingress(), "ingress", self.ingress_listen_addr()),
            (self.runs_egress(), "egress", self.egress_listen_addr()),
        ];
        for (_, which, addr) in listens
            .iter()
            .filter(|(runs, _, addr)| *runs && !addr.ip().is_loopback())
        {
            if !self.allow_remote {
                return Err(ProxyError::Config(format!(
                    "refusing to run the {which} proxy on {addr}: it is not a loopback address, \
                     so anyone who can reach it could relay traffic through it; pass \
                     --allow-remote (SOFTPROBE_ALLOW_REMOTE=true) to do it on purpose"
                )));
            }
        }
        Ok(())
    }

    fn ingress_listen_addr(&self) -> SocketAddr {
        self.ingress_listen
            .unwrap_or_else(|| default_addr(DEFAULT_INGRESS_LISTEN))
    }

    fn egress_listen_addr(&self) -> SocketAddr {
        self.egress_listen
            .unwrap_or_else(|| default_addr(DEFAULT_EGRESS_LISTEN))
    }

    /// Starts the configured proxies over `backend`.
    pub async fn start(self, backend: SharedBackend) -> Result<RunningProxies, ProxyError> {
        if self.ingress_listen.is_some() && self.ingress_upstream.is_none() {
            return Err(ProxyError::Config(
                "--ingress-listen needs --ingress-upstream (the application's URL)".into(),
            ));
        }
        if self.ca_cert.is_some() != self.ca_key.is_some() {
            return Err(ProxyError::Config(
                "--ca-cert and --ca-key go together: give both or neither".into(),
            ));
        }
        self.check_listen()?;
        let ingress_listen = self.ingress_listen_addr();
        let egress_listen = self.egress_listen_addr();
        for (runs, which, addr) in [
            (self.runs_ingress(), "ingress", ingress_listen),
            (self.runs_egress(), "egress", egress_listen),
        ] {
            if runs && !addr.ip().is_loopback() {
                tracing::warn!(
                    "the {which} proxy listens on {addr}, which is not a loopback address: \
                     every machine that can reach it can send traffic through it"
                );
            }
        }
        let header_read_timeout = self
            .header_read_timeout
            .unwrap_or(super::DEFAULT_HEADER_READ_TIMEOUT);
        let mut running = RunningProxies::default();
        if self.runs_egress() {
            let ca = match (&self.ca_cert, &self.ca_key) {
                (Some(cert), Some(key)) => CertificateAuthority::from_files(cert, key)?,
                _ => CertificateAuthority::generate()?,
            };
            if let Some(out) = &self.ca_out {
                ca.write_cert(out)?;
            }
            let mut egress = EgressProxy::builder()
                .listen(egress_listen)
                .header_read_timeout(header_read_timeout)
                .shared_ca(Arc::new(ca))
                .backend(backend.clone())
                .require_session(self.require_session)
                .proxy_token(self.token.clone());
            for root in &self.egress_upstream_roots {
                egress = egress.upstream_root(root.clone());
            }
            if let Some(up) = &self.egress_upstream {
                egress = egress.upstream(up.clone());
            }
            if let Some(s) = &self.service {
                egress = egress.service(s.clone());
            }
            running.egress = Some(egress.start().await?);
        }
        if let Some(upstream) = &self.ingress_upstream {
            let threads = self.ingress_threads.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
            });
            let mut ingress = IngressProxy::builder()
                .listen(ingress_listen)
                .threads(threads)
                .header_read_timeout(header_read_timeout)
                .upstream(upstream.clone())
                .backend(backend)
                .require_session(self.require_session);
            if let Some(s) = &self.service {
                ingress = ingress.service(s.clone());
            }
            running.ingress = Some(ingress.start().await?);
        }
        Ok(running)
    }
}
