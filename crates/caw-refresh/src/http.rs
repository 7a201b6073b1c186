//! The one HTTP client caw talks to token endpoints with: ureq over rustls,
//! trusting the system's CA certificates (`SSL_CERT_FILE` and
//! `SSL_CERT_DIR` honoured, as OpenSSL does), following no redirect, and
//! reading at most [`MAX_ANSWER`] bytes of an answer.

use std::fmt;
use std::time::Duration;

use ureq::tls::{Certificate, RootCerts, TlsConfig};

use crate::protocol::Request;

/// The largest answer read from a token endpoint.
pub const MAX_ANSWER: u64 = 256 * 1024;
/// How long establishing a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What became of a request.
#[derive(Clone, PartialEq, Eq)]
pub enum Reply {
    /// The server answered with this status and body.
    Status(u16, Vec<u8>),
    /// The request never reached the server (no route, refused, DNS, TLS):
    /// nothing was spent.
    NotSent(String),
    /// The request may have reached the server, but no answer came (a
    /// timeout, a reset): the refresh token may have been spent.
    Unanswered(String),
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Status(s, body) => write!(f, "Status({s}, {} bytes)", body.len()),
            Reply::NotSent(why) => write!(f, "NotSent({why})"),
            Reply::Unanswered(why) => write!(f, "Unanswered({why})"),
        }
    }
}

/// An HTTPS client for token endpoints.
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Client")
    }
}

impl Client {
    /// A client whose whole exchange is bounded by `timeout`.
    ///
    /// Fails when the system has no CA certificate caw can read.
    pub fn new(timeout: Duration) -> Result<Client, String> {
        let found = rustls_native_certs::load_native_certs();
        let roots: Vec<Certificate<'static>> = found
            .certs
            .iter()
            .map(|der| Certificate::from_der(der.as_ref()).to_owned())
            .collect();
        if roots.is_empty() {
            let why = found
                .errors
                .first()
                .map_or_else(|| "none found".to_string(), |e| e.to_string());
            return Err(format!(
                "no CA certificates to check token endpoints with ({why}); set SSL_CERT_FILE"
            ));
        }
        let tls = TlsConfig::builder()
            .root_certs(RootCerts::new_with_certs(&roots))
            .build();
        let config = ureq::Agent::config_builder()
            .tls_config(tls)
            .timeout_connect(Some(CONNECT_TIMEOUT.min(timeout)))
            .timeout_global(Some(timeout))
            .max_redirects(0)
            .http_status_as_error(false)
            .user_agent(concat!("caw/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Client {
            agent: config.into(),
        })
    }

    /// `POST` `request` to `url`.
    pub fn post(&self, url: &str, request: &Request) -> Reply {
        let sent = self
            .agent
            .post(url)
            .header("Content-Type", request.content_type)
            .header("Accept", "application/json")
            .send(&request.body[..]);
        answer(sent)
    }

    /// `GET` `url` with `headers` (an `Authorization` among them is sent,
    /// never logged).
    pub fn get(&self, url: &str, headers: &[(&str, &str)]) -> Reply {
        let mut request = self.agent.get(url).header("Accept", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        answer(request.call())
    }
}

/// Read a response, bounded, or sort its failure.
fn answer(sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
    {
        let mut response = match sent {
            Ok(r) => r,
            Err(e) => return failure(e),
        };
        let status = response.status().as_u16();
        match response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_vec()
        {
            Ok(body) => Reply::Status(status, body),
            Err(e) => Reply::Unanswered(format!("HTTP {status}, then {}", describe(&e))),
        }
    }
}

/// Sort a transport error by whether the request can have been seen.
fn failure(e: ureq::Error) -> Reply {
    use ureq::Timeout as T;
    let why = describe(&e);
    match e {
        ureq::Error::HostNotFound
        | ureq::Error::ConnectionFailed
        | ureq::Error::BadUri(_)
        | ureq::Error::Tls(_)
        | ureq::Error::Rustls(_)
        | ureq::Error::Timeout(T::Resolve | T::Connect) => Reply::NotSent(why),
        ureq::Error::Io(io)
            if matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::NetworkUnreachable
                    | std::io::ErrorKind::HostUnreachable
                    | std::io::ErrorKind::AddrNotAvailable
            ) =>
        {
            Reply::NotSent(why)
        }
        _ => Reply::Unanswered(why),
    }
}

/// An error in words; ureq's errors name hosts and causes, never bodies.
fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(t) => format!("timed out ({t})"),
        other => other.to_string(),
    }
}
