//! What a service's own HTTP client needs to send its calls through the session's egress
//! proxy, when the service does not take [`Session::http_client`] (reqwest 0.13): the proxy's
//! address and the credentials that name the session, kept apart for clients that take them
//! apart (hyper-util's legacy client), and the proxy CA as a file (`SSL_CERT_FILE`).
//! `docs/clients.md` shows reqwest 0.12, hyper-util, ureq and a client built from the
//! environment, each with the code its end-to-end test runs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use base64::Engine as _;

use crate::Session;
use crate::error::{Error, Result};

/// The first line of a CA file [`Session::write_ca_cert`] writes, by which it knows the file
/// is its own to replace (PEM readers skip text outside the certificate).
const CA_FILE_MARK: &str = "# softprobe egress proxy CA (written by Session::write_ca_cert)";

impl Session {
    /// The address the egress proxy listens on (`127.0.0.1:PORT`), for a client that connects
    /// to the proxy itself and sends [`Session::proxy_authorization`] with each `CONNECT` and
    /// each absolute-form request (hyper-util's legacy client with a connector of its own).
    /// Clients that take a proxy URL take [`Session::egress_proxy_url`] instead.
    ///
    /// ```no_run
    /// # fn demo(sp: softprobe::Session) {
    /// let proxy: http::Uri = format!("http://{}", sp.egress_proxy_addr()).parse().unwrap();
    /// # }
    /// ```
    pub fn egress_proxy_addr(&self) -> SocketAddr {
        self.inner.embedded.egress.addr()
    }

    /// The `Proxy-Authorization` value (`Basic ...`) that names this session to the egress
    /// proxy, with the proxy token when the runtime requires one: the credentials of
    /// [`Session::egress_proxy_url`], for clients that send the header themselves.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # softprobe::Run::new(dir.path().join("auth.case.json"))
    /// #     .mode(softprobe::Mode::Capture)
    /// #     .run(|sp: softprobe::Session| {
    /// let auth = http::HeaderValue::from_str(&sp.proxy_authorization()).unwrap();
    /// assert!(auth.to_str().unwrap().starts_with("Basic "));
    /// # })
    /// # .unwrap();
    /// ```
    pub fn proxy_authorization(&self) -> String {
        crate::proxy_env::names_its_session(&self.inner.id);
        let url = self.inner.embedded.egress.uri_for_session(&self.inner.id);
        basic_credentials(&url).unwrap_or_else(|| {
            panic!("softprobe: the egress proxy URL {url} carries no session credentials")
        })
    }

    /// A file holding [`Session::ca_cert_pem`], kept until the test ends: for `SSL_CERT_FILE`
    /// and for clients configured with a path to their roots. [`Session::command`] and
    /// [`Session::command_env`] name it.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # softprobe::Run::new(dir.path().join("ca.case.json"))
    /// #     .mode(softprobe::Mode::Capture)
    /// #     .run(|sp: softprobe::Session| {
    /// let pem = std::fs::read_to_string(sp.ca_cert_file()).unwrap();
    /// assert_eq!(pem, sp.ca_cert_pem());
    /// # })
    /// # .unwrap();
    /// ```
    pub fn ca_cert_file(&self) -> PathBuf {
        PathBuf::from(self.ca_file_path())
    }

    /// Writes the proxy CA to `path`, for a service in this process whose client reads its
    /// roots from a file the process environment names from start (`SSL_CERT_FILE` in
    /// `.cargo/config.toml` `[env]`, beside the `HTTPS_PROXY` of [`Session::proxy_env`]): the CA
    /// is made when the process's first test starts, so that file cannot hold it before.
    ///
    /// The file is replaced whole (written beside it, then renamed), so a service reading it
    /// meanwhile sees the old or the new one, and left alone when it already holds this CA. A
    /// file holding anything else than a CA this method wrote (a system bundle named by
    /// mistake) is never replaced: that is an [`Error::Invalid`] naming the file.
    ///
    /// ```no_run
    /// # fn demo(sp: softprobe::Session) -> softprobe::Result<()> {
    /// let _env = sp.proxy_env();
    /// if let Some(path) = std::env::var_os("SSL_CERT_FILE") {
    ///     sp.write_ca_cert(path)?;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn write_ca_cert(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let text = format!("{CA_FILE_MARK}\n{}", self.ca_cert_pem());
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(old) if old == text => return Ok(()),
            Ok(old) if !old.is_empty() && !old.starts_with(CA_FILE_MARK) => {
                return Err(Error::Invalid(format!(
                    "{}: the file holds something else than a proxy CA softprobe wrote; \
                     Session::write_ca_cert does not replace it (name a file of its own, such \
                     as target/softprobe-ca.pem, in SSL_CERT_FILE)",
                    path.display()
                )));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let mut file = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
        std::io::Write::write_all(&mut file, text.as_bytes()).map_err(io)?;
        file.persist(path).map_err(|e| io(e.error))?;
        Ok(())
    }
}

/// `Basic base64(user:password)` from the user information of a proxy URL
/// (`http://user[:password]@host:port`); `None` when it has none.
fn basic_credentials(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    let (userinfo, _) = authority.rsplit_once('@')?;
    let pair = if userinfo.contains(':') {
        userinfo.to_owned()
    } else {
        format!("{userinfo}:")
    };
    Some(format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    ))
}

#[cfg(test)]
mod tests {
    use super::basic_credentials;

    #[test]
    fn credentials_come_from_the_user_information_of_the_proxy_url() {
        // "sess_a:" and "sess_a:tok" in base64.
        assert_eq!(
            basic_credentials("http://sess_a@127.0.0.1:4000").as_deref(),
            Some("Basic c2Vzc19hOg==")
        );
        assert_eq!(
            basic_credentials("http://sess_a:tok@127.0.0.1:4000/").as_deref(),
            Some("Basic c2Vzc19hOnRvaw==")
        );
        assert_eq!(basic_credentials("http://127.0.0.1:4000"), None);
    }
}
