//! Services that build their own HTTP client from `HTTP_PROXY` / `HTTPS_PROXY`.
//!
//! The process environment is one for every test of the process, so a session cannot ride in
//! it the way it rides in the credentials of [`Session::http_client`]: a service of one test
//! could read a value another test set. Instead the variables name the egress proxy without a
//! session ([`ProxyEnv::proxy_url`]), and the egress gives a call that names no session to the
//! one test that holds the [`ProxyEnv`] lease (one at a time in a process; the others wait for
//! it). With no lease held, such a call belongs to the only open session, or, when several
//! tests are open, to none: it is refused with a message naming the ways out, and each open
//! test that could have made it fails with that message.
//!
//! The harness never writes the process environment itself (writing it while other threads
//! run is not sound); the test sets the variables from [`ProxyEnv::vars`], or the process gets
//! them at start (`.cargo/config.toml` `[env]`) with `SOFTPROBE_EGRESS_ADDR` fixing the
//! address the embedded egress proxy listens on.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::Session;
use crate::embedded::Embedded;

/// The session the egress is bound to while several tests are open and none holds the lease:
/// the observer answers its calls with the refusal instead of deciding them.
pub(crate) const UNATTRIBUTED: &str = "sess_softprobe_unattributed";

/// How long [`Session::proxy_env`] waits for another test to release the lease.
const LEASE_WAIT: Duration = Duration::from_secs(120);

#[derive(Debug, Default)]
struct Registry {
    /// Open sessions, with whether their test built a client or command that names the
    /// session (such a test is not the author of a call that names none).
    open: Vec<(String, String, bool)>,
    /// Sessions whose test took the proxy URL with the session in it
    /// ([`Session::egress_proxy_url`]), which a test may put in `HTTP_PROXY` itself.
    raw_url: Vec<String>,
    /// The session holding the lease, and how many guards it holds.
    lease: Option<(String, usize)>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    open: Vec::new(),
    raw_url: Vec::new(),
    lease: None,
});
static RELEASED: Condvar = Condvar::new();

/// The registry; a panic while it was held leaves it consistent (every change is one push,
/// remove or assignment), so a poisoned lock is recovered rather than skipped.
fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Binds the egress to whoever owns calls without a session now.
fn rebind(embedded: &Embedded, reg: &Registry) {
    let bound = match (&reg.lease, reg.open.as_slice()) {
        (Some((holder, _)), _) => Some(holder.clone()),
        (None, []) => None,
        (None, [(only, _, _)]) => Some(only.clone()),
        (None, _) => Some(UNATTRIBUTED.to_owned()),
    };
    embedded.egress.bind_session(bound);
}

/// A session opened: calls without a session may now be its own, or nobody's.
pub(crate) fn opened(embedded: &Embedded, id: &str, test_name: &str) {
    let mut reg = registry();
    reg.open.push((id.to_owned(), test_name.to_owned(), false));
    rebind(embedded, &reg);
}

/// A session closed: its lease (if a guard outlived the test) is released. Returns the
/// problem to report when the test took its session's proxy URL while the process
/// environment now names another open test's session: if the service read `HTTP_PROXY`, its
/// calls may have been recorded in that test.
pub(crate) fn closed(embedded: &Embedded, id: &str) -> Option<String> {
    let mut reg = registry();
    let problem = reg
        .raw_url
        .iter()
        .any(|r| r == id)
        .then(|| env_session(embedded))
        .flatten()
        .filter(|named| named != id && reg.open.iter().any(|(open, _, _)| open == named))
        .map(|named| {
            let other = test_of(&reg, &named);
            format!(
                "the process environment's HTTP_PROXY / HTTPS_PROXY names the session of another \
                 open test ({other}), while this test took its own sp.egress_proxy_url(): if the \
                 service builds its client from those variables, its calls may have been \
                 recorded or answered in {other}. {WAYS_OUT}"
            )
        });
    reg.raw_url.retain(|r| r != id);
    reg.open.retain(|(open, _, _)| open != id);
    if reg.lease.as_ref().is_some_and(|(holder, _)| holder == id) {
        reg.lease = None;
        RELEASED.notify_all();
    }
    rebind(embedded, &reg);
    problem
}

/// How to test a service whose calls cannot be attributed to its test.
const WAYS_OUT: &str = "Either hold `let _env = sp.proxy_env();` in each test whose service \
    reads HTTP_PROXY, with the variables naming the proxy without a session (such tests then run \
    one at a time), or inject the client (sp.http_client()), or run the tests one per process \
    (cargo nextest run), or start the service in a process of its own with sp.command(...).";

fn test_of(reg: &Registry, id: &str) -> String {
    reg.open
        .iter()
        .find(|(open, _, _)| open == id)
        .map(|(_, name, _)| name.clone())
        .unwrap_or_else(|| id.to_owned())
}

/// The session named in the credentials of `HTTP_PROXY` / `HTTPS_PROXY` (either case), when
/// one of them points at this process's egress proxy with a session in it.
fn env_session(embedded: &Embedded) -> Option<String> {
    let addr = embedded.egress.addr().to_string();
    ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .find_map(|url| session_in_proxy_url(&url, &addr))
}

/// The session in the user name of a proxy URL pointing at `addr`
/// (`http://sess_x@127.0.0.1:PORT`).
fn session_in_proxy_url(url: &str, addr: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let (user, host) = rest.split_once('@')?;
    let host = host.trim_end_matches('/');
    let user = user.split(':').next().unwrap_or(user);
    (host == addr && !user.is_empty()).then(|| user.to_owned())
}

/// The lease holder a call under `id` may belong to instead: another test holds the lease,
/// `id`'s test took its raw proxy URL, and the environment names `id`.
fn rival_holder<'a>(reg: &'a Registry, id: &str, env_named: Option<&str>) -> Option<&'a str> {
    let (holder, _) = reg.lease.as_ref()?;
    (holder != id && env_named == Some(id) && reg.raw_url.iter().any(|r| r == id))
        .then_some(holder.as_str())
}

/// The test of `id` took its session's proxy URL ([`Session::egress_proxy_url`]).
pub(crate) fn took_raw_url(id: &str) {
    let mut reg = registry();
    if !reg.raw_url.iter().any(|r| r == id) {
        reg.raw_url.push(id.to_owned());
    }
}

/// The refusal of a call under session `id` while another test holds the lease and the
/// process environment names `id`: the call may come from the lease holder's service, which
/// read the variable while it named `id`. Returns the text and the sessions to tell.
pub(crate) fn misattributed(
    embedded: &Embedded,
    id: &str,
    method: &str,
    url: &str,
) -> Option<(String, Vec<String>)> {
    let reg = registry();
    reg.lease.as_ref()?;
    let holder = rival_holder(&reg, id, env_session(embedded).as_deref())?;
    let text = format!(
        "the service called {method} {url} through softprobe's egress proxy under the session \
         of test {}, taken from HTTP_PROXY / HTTPS_PROXY, while test {} holds the process's \
         proxy environment (sp.proxy_env()): the call may belong to either, so it was refused. \
         {WAYS_OUT}",
        test_of(&reg, id),
        test_of(&reg, holder)
    );
    Some((text, vec![id.to_owned(), holder.to_owned()]))
}

/// The test of `id` built a client or command that names its session.
pub(crate) fn names_its_session(id: &str) {
    let mut reg = registry();
    if let Some(open) = reg.open.iter_mut().find(|(open, _, _)| open == id) {
        open.2 = true;
    }
}

/// The refusal of a call that reached the egress without a session while several tests were
/// open and none held the lease, and the sessions whose tests may have made it (those that
/// never built a client naming their session; all open ones when each did).
pub(crate) fn refusal(method: &str, url: &str) -> (String, Vec<String>) {
    let reg = registry();
    let suspects: Vec<&(String, String, bool)> = {
        let quiet: Vec<_> = reg.open.iter().filter(|(_, _, named)| !*named).collect();
        if quiet.is_empty() {
            reg.open.iter().collect()
        } else {
            quiet
        }
    };
    let tests: Vec<String> = reg.open.iter().map(|(_, name, _)| name.clone()).collect();
    let text = format!(
        "the service called {method} {url} through softprobe's egress proxy without naming a \
         session (a client built from HTTP_PROXY / HTTPS_PROXY), while {} tests of this process \
         were open ({}) and none held sp.proxy_env(): the call cannot be given to the right test, \
         so it was refused. {WAYS_OUT}",
        tests.len(),
        tests.join(", ")
    );
    (
        text,
        suspects.into_iter().map(|(id, _, _)| id.clone()).collect(),
    )
}

/// While held, the calls of the service that reach the egress proxy without naming a session
/// (a client it built from `HTTP_PROXY` / `HTTPS_PROXY`) belong to this test. Other tests of
/// the process that ask for it wait until it is dropped or their own test ends.
///
/// ```no_run
/// # mod my_service { pub fn router_from_env() -> axum::Router { axum::Router::new() } }
/// #[softprobe::case("cases/checkout.case.json")]
/// async fn checkout(sp: softprobe::Session) {
///     let env = sp.proxy_env();
///     // The process environment already names env.proxy_url() (set at start, see the
///     // attribute reference); the service builds its client from it.
///     assert_eq!(std::env::var("HTTP_PROXY").ok(), Some(env.proxy_url()));
///     let base = sp.serve(my_service::router_from_env()).await;
///     sp.client().post(format!("{base}/checkout")).send().await.unwrap();
/// }
/// # fn main() {}
/// ```
#[must_use = "the calls without a session belong to this test only while the guard lives"]
pub struct ProxyEnv {
    session: Session,
}

impl std::fmt::Debug for ProxyEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyEnv")
            .field("session", &self.session.id())
            .field("proxy_url", &self.proxy_url())
            .finish()
    }
}

impl ProxyEnv {
    pub(crate) fn acquire(session: &Session) -> ProxyEnv {
        let id = session.id().to_owned();
        let deadline = Instant::now() + LEASE_WAIT;
        let mut reg = registry();
        loop {
            match reg.lease.clone() {
                None => {
                    reg.lease = Some((id.clone(), 1));
                    break;
                }
                Some((holder, count)) if holder == id => {
                    reg.lease = Some((holder, count + 1));
                    break;
                }
                Some((holder, _)) => {
                    let now = Instant::now();
                    if now >= deadline {
                        let holder = reg
                            .open
                            .iter()
                            .find(|(open, _, _)| *open == holder)
                            .map(|(_, name, _)| name.clone())
                            .unwrap_or(holder);
                        panic!(
                            "softprobe: sp.proxy_env(): test {holder} has held the process's \
                             proxy environment for {LEASE_WAIT:?}; {} cannot take it (drop the \
                             guard when the service no longer calls out, or run the tests one \
                             per process with cargo nextest)",
                            session.test_name()
                        );
                    }
                    reg = RELEASED
                        .wait_timeout(reg, deadline - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        }
        rebind(session.inner.embedded, &reg);
        ProxyEnv {
            session: session.clone(),
        }
    }

    /// The egress proxy URL without a session (`http://127.0.0.1:PORT`): the value of
    /// `HTTP_PROXY` / `HTTPS_PROXY` for every test of the process.
    pub fn proxy_url(&self) -> String {
        self.session.inner.embedded.egress.uri()
    }

    /// The variables a service reading its proxy from the environment needs: `HTTP_PROXY`,
    /// `HTTPS_PROXY` (both cases) naming [`ProxyEnv::proxy_url`], `NO_PROXY` empty, and
    /// `SSL_CERT_FILE` naming a file with the proxy CA (for HTTPS calls).
    pub fn vars(&self) -> Vec<(&'static str, String)> {
        let url = self.proxy_url();
        let ca = self.session.ca_file_path();
        vec![
            ("HTTP_PROXY", url.clone()),
            ("HTTPS_PROXY", url.clone()),
            ("http_proxy", url.clone()),
            ("https_proxy", url),
            ("NO_PROXY", String::new()),
            ("no_proxy", String::new()),
            ("SSL_CERT_FILE", ca),
        ]
    }
}

impl Drop for ProxyEnv {
    fn drop(&mut self) {
        let mut reg = registry();
        let id = self.session.id();
        if let Some((holder, count)) = &mut reg.lease
            && holder == id
        {
            *count -= 1;
            if *count == 0 {
                reg.lease = None;
                RELEASED.notify_all();
            }
        }
        rebind(self.session.inner.embedded, &reg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_is_read_from_a_proxy_url_of_this_egress_only() {
        let addr = "127.0.0.1:4000";
        assert_eq!(
            session_in_proxy_url("http://sess_a@127.0.0.1:4000", addr).as_deref(),
            Some("sess_a")
        );
        assert_eq!(
            session_in_proxy_url("http://sess_b:x@127.0.0.1:4000/", addr).as_deref(),
            Some("sess_b")
        );
        assert_eq!(session_in_proxy_url("http://127.0.0.1:4000", addr), None);
        assert_eq!(
            session_in_proxy_url("http://sess_a@127.0.0.1:4001", addr),
            None
        );
    }

    #[test]
    fn a_call_under_a_session_named_by_the_environment_is_suspect_while_another_test_holds_the_lease()
     {
        let reg = Registry {
            open: vec![
                ("sess_a".into(), "t::a".into(), false),
                ("sess_b".into(), "t::b".into(), false),
            ],
            raw_url: vec!["sess_a".into()],
            lease: Some(("sess_b".into(), 1)),
        };
        assert_eq!(rival_holder(&reg, "sess_a", Some("sess_a")), Some("sess_b"));
        // The environment names nobody, or someone else: the call is a's own client's.
        assert_eq!(rival_holder(&reg, "sess_a", None), None);
        assert_eq!(rival_holder(&reg, "sess_a", Some("sess_b")), None);
        // The holder's own calls, and a test that never took its raw URL, are never suspect.
        assert_eq!(rival_holder(&reg, "sess_b", Some("sess_b")), None);
        let without_raw = Registry {
            raw_url: Vec::new(),
            ..reg
        };
        assert_eq!(rival_holder(&without_raw, "sess_a", Some("sess_a")), None);
    }
}
