//! Opening one connection: the connection string's TLS keys, rustls, the socket (wrapped in
//! the wire tap), start-up, and the driver task.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_postgres::config::{Host, SslMode, TargetSessionAttrs};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use tokio_postgres::{Client, NoTls};

use super::wire::{drive, Tap, Wire};
use crate::ConfigError;

/// libpq's `sslmode`, all six (tokio-postgres itself parses only the first three).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ssl {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// The TLS keys taken out of a connection string before tokio-postgres parses the rest.
#[derive(Debug, Default)]
pub(crate) struct TlsKeys {
    pub sslmode: Option<Ssl>,
    pub sslrootcert: Option<PathBuf>,
}

fn parse_sslmode(v: &str) -> Result<Ssl, ConfigError> {
    Ok(match v {
        "disable" => Ssl::Disable,
        "allow" | "prefer" => Ssl::Prefer,
        "require" => Ssl::Require,
        "verify-ca" => Ssl::VerifyCa,
        "verify-full" => Ssl::VerifyFull,
        other => {
            return Err(ConfigError::Postgres(format!(
                "sslmode {other:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"
            )))
        }
    })
}

fn take_key(keys: &mut TlsKeys, k: &str, v: &str) -> Result<bool, ConfigError> {
    match k {
        "sslmode" => keys.sslmode = Some(parse_sslmode(v)?),
        "sslrootcert" => keys.sslrootcert = Some(PathBuf::from(v)),
        "sslcert" | "sslkey" | "sslpassword" => {
            return Err(ConfigError::Postgres(format!(
                "{k}: client certificates are not supported; use password or SCRAM authentication"
            )))
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// Splits a libpq connection string (key/value or URL form) into its TLS keys and the rest,
/// which tokio-postgres parses.
pub(crate) fn split_tls_keys(s: &str) -> Result<(String, TlsKeys), ConfigError> {
    let mut keys = TlsKeys::default();
    let t = s.trim_start();
    if t.starts_with("postgres://") || t.starts_with("postgresql://") {
        let Some((head, query)) = t.split_once('?') else {
            return Ok((t.to_owned(), keys));
        };
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode(v).ok_or_else(|| {
                ConfigError::Postgres(format!("bad percent-encoding in {pair:?}"))
            })?;
            if !take_key(&mut keys, k, &v)? {
                kept.push(pair);
            }
        }
        let rest = if kept.is_empty() {
            head.to_owned()
        } else {
            format!("{head}?{}", kept.join("&"))
        };
        return Ok((rest, keys));
    }
    // key = value pairs; values may be single-quoted with \' and \\ escapes.
    let mut out = String::new();
    let mut it = s.chars().peekable();
    loop {
        while it.peek().is_some_and(|c| c.is_whitespace()) {
            it.next();
        }
        if it.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(&c) = it.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            it.next();
        }
        while it.peek().is_some_and(|c| c.is_whitespace()) {
            it.next();
        }
        if it.next() != Some('=') {
            return Err(ConfigError::Postgres(format!(
                "expected `=` after {key:?} in the connection string"
            )));
        }
        while it.peek().is_some_and(|c| c.is_whitespace()) {
            it.next();
        }
        let mut raw = String::new();
        let mut value = String::new();
        if it.peek() == Some(&'\'') {
            raw.push('\'');
            it.next();
            loop {
                match it.next() {
                    None => {
                        return Err(ConfigError::Postgres(format!(
                            "unterminated quoted value for {key:?}"
                        )))
                    }
                    Some('\\') => {
                        let c = it.next().ok_or_else(|| {
                            ConfigError::Postgres(format!("unterminated quoted value for {key:?}"))
                        })?;
                        raw.push('\\');
                        raw.push(c);
                        value.push(c);
                    }
                    Some('\'') => {
                        raw.push('\'');
                        break;
                    }
                    Some(c) => {
                        raw.push(c);
                        value.push(c);
                    }
                }
            }
        } else {
            while let Some(&c) = it.peek() {
                if c.is_whitespace() {
                    break;
                }
                raw.push(c);
                value.push(c);
                it.next();
            }
        }
        if !take_key(&mut keys, &key, &value)? {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(&key);
            out.push('=');
            out.push_str(&raw);
        }
    }
    Ok((out, keys))
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// How connections negotiate TLS.
#[derive(Clone)]
pub(crate) enum TlsSetup {
    /// Plain TCP or a Unix socket.
    Off,
    /// TLS through rustls with this configuration (the mode decides whether it is required).
    On(Arc<ClientConfig>),
}

impl std::fmt::Debug for TlsSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TlsSetup::Off => "Off",
            TlsSetup::On(_) => "On(rustls)",
        })
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(path: &Path) -> Result<RootCertStore, ConfigError> {
    let mut store = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| ConfigError::Postgres(format!("sslrootcert {}: {e}", path.display())))?;
    for c in certs {
        let c =
            c.map_err(|e| ConfigError::Postgres(format!("sslrootcert {}: {e}", path.display())))?;
        store
            .add(c)
            .map_err(|e| ConfigError::Postgres(format!("sslrootcert {}: {e}", path.display())))?;
    }
    if store.is_empty() {
        return Err(ConfigError::Postgres(format!(
            "sslrootcert {}: no certificate in the file",
            path.display()
        )));
    }
    Ok(store)
}

/// A rustls client configuration for `verify-full`: the server's chain must lead to one of
/// `roots`, and its certificate must name the host connected to.
pub(crate) fn verify_full_config(roots: RootCertStore) -> Result<ClientConfig, ConfigError> {
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::Postgres(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn custom_config(verifier: Arc<dyn ServerCertVerifier>) -> Result<ClientConfig, ConfigError> {
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::Postgres(format!("TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// The libpq meanings: `prefer`/`require` encrypt without checking the certificate
/// (`require` with an `sslrootcert` checks the chain, as libpq does), `verify-ca` checks
/// the chain, `verify-full` the chain and the host name.
pub(crate) fn tls_setup(keys: &TlsKeys) -> Result<(SslMode, TlsSetup), ConfigError> {
    let mode = keys.sslmode.unwrap_or(Ssl::Prefer);
    let need_roots = || {
        keys.sslrootcert.as_deref().ok_or_else(|| {
            ConfigError::Postgres(format!(
                "sslmode={} needs sslrootcert (the certificate authority's PEM file)",
                if mode == Ssl::VerifyCa {
                    "verify-ca"
                } else {
                    "verify-full"
                }
            ))
        })
    };
    let chain_only = |path: &Path| -> Result<ClientConfig, ConfigError> {
        let roots = Arc::new(roots(path)?);
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider())
            .build()
            .map_err(|e| ConfigError::Postgres(format!("TLS: {e}")))?;
        custom_config(Arc::new(ChainOnly(inner)))
    };
    Ok(match mode {
        Ssl::Disable => (SslMode::Disable, TlsSetup::Off),
        Ssl::Prefer => (
            SslMode::Prefer,
            TlsSetup::On(Arc::new(custom_config(Arc::new(NoCheck(provider())))?)),
        ),
        Ssl::Require => match &keys.sslrootcert {
            Some(p) => (SslMode::Require, TlsSetup::On(Arc::new(chain_only(p)?))),
            None => (
                SslMode::Require,
                TlsSetup::On(Arc::new(custom_config(Arc::new(NoCheck(provider())))?)),
            ),
        },
        Ssl::VerifyCa => (
            SslMode::Require,
            TlsSetup::On(Arc::new(chain_only(need_roots()?)?)),
        ),
        Ssl::VerifyFull => (
            SslMode::Require,
            TlsSetup::On(Arc::new(verify_full_config(roots(need_roots()?)?)?)),
        ),
    })
}

/// `sslmode=prefer`/`require` without a root certificate: encryption, no authentication of
/// the server (libpq's meaning of those modes). Signatures are still checked.
#[derive(Debug)]
struct NoCheck(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoCheck {
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
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted root; the host name is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
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

/// A TCP or Unix socket.
pub(crate) enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Socket::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Socket::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_flush(cx),
            Socket::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Socket::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// Wraps the TLS connector so the TLS stream is tapped too, and records that TLS is up.
struct TapTls<C> {
    inner: C,
    wire: Arc<Wire>,
}

type BoxFut<O> = Pin<Box<dyn std::future::Future<Output = O> + Send>>;

impl<S, C> TlsConnect<Tap<S>> for TapTls<C>
where
    C: TlsConnect<Tap<S>>,
    C::Future: Send + 'static,
    C::Stream: Send + 'static,
{
    type Stream = Tap<C::Stream>;
    type Error = C::Error;
    type Future = BoxFut<Result<Tap<C::Stream>, C::Error>>;

    fn connect(self, stream: Tap<S>) -> Self::Future {
        let wire = self.wire.clone();
        let fut = self.inner.connect(stream);
        Box::pin(async move {
            let s = fut.await?;
            wire.set_tls();
            Ok(Tap::new(s, wire, 2))
        })
    }
}

impl<S: TlsStream + Unpin> TlsStream for Tap<S> {
    fn channel_binding(&self) -> ChannelBinding {
        self.get_ref().channel_binding()
    }
}

/// A connected client: the `Client`, its wire state, and the handle that ends its driver.
pub(crate) struct Connected {
    pub client: Client,
    pub wire: Arc<Wire>,
    pub closed: tokio::sync::oneshot::Sender<()>,
    /// Where it connected (a cancel request goes there).
    pub peer: Peer,
}

/// The address a connection was opened to, and how it negotiated TLS.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    target: Target,
    port: u16,
    tls: TlsSetup,
    /// The host name TLS verified (and sent as SNI).
    hostname: Option<String>,
}

impl Peer {
    /// Asks the server to cancel whatever `client` is running (a separate short-lived
    /// connection carrying the backend's key, as the protocol specifies), negotiating TLS
    /// as the connection did: the cancel token carries the connection's `sslmode`, so
    /// under `require` a plain socket would fail its handshake and the request never go.
    pub(crate) async fn cancel(
        &self,
        cfg: &tokio_postgres::Config,
        client: &Client,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let sock = open_socket(cfg, &self.target, self.port).await?;
        let token = client.cancel_token();
        match &self.tls {
            TlsSetup::Off => token.cancel_query_raw(sock, NoTls).await?,
            TlsSetup::On(config) => {
                let mut make = tokio_postgres_rustls::MakeRustlsConnect::new((**config).clone());
                let tls = <tokio_postgres_rustls::MakeRustlsConnect as MakeTlsConnect<
                    Socket,
                >>::make_tls_connect(
                    &mut make, self.hostname.as_deref().unwrap_or("localhost")
                )?;
                token.cancel_query_raw(sock, tls).await?;
            }
        }
        Ok(())
    }
}

async fn open_socket(cfg: &tokio_postgres::Config, addr: &Target, port: u16) -> io::Result<Socket> {
    let connect = async {
        match addr {
            Target::Tcp(host) => {
                let mut last = None;
                for a in tokio::net::lookup_host((host.as_str(), port)).await? {
                    match TcpStream::connect(a).await {
                        Ok(s) => return Ok(Socket::Tcp(s)),
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.unwrap_or_else(|| {
                    io::Error::new(io::ErrorKind::NotFound, format!("{host}: no address"))
                }))
            }
            Target::Unix(dir) => Ok(Socket::Unix(
                UnixStream::connect(dir.join(format!(".s.PGSQL.{port}"))).await?,
            )),
        }
    };
    let sock = connect.await?;
    if let Socket::Tcp(s) = &sock {
        s.set_nodelay(true)?;
        let r = socket2::SockRef::from(s);
        if cfg.get_keepalives() {
            let mut ka = socket2::TcpKeepalive::new().with_time(cfg.get_keepalives_idle());
            if let Some(i) = cfg.get_keepalives_interval() {
                ka = ka.with_interval(i);
            }
            if let Some(n) = cfg.get_keepalives_retries() {
                ka = ka.with_retries(n);
            }
            r.set_tcp_keepalive(&ka)?;
        }
        #[cfg(target_os = "linux")]
        if let Some(t) = cfg.get_tcp_user_timeout() {
            r.set_tcp_user_timeout(Some(*t))?;
        }
    }
    Ok(sock)
}

#[derive(Debug, Clone)]
enum Target {
    Tcp(String),
    Unix(PathBuf),
}

/// Opens one connection: each host of the config in turn (as libpq and tokio-postgres do),
/// start-up through the tapped socket, the driver spawned on the current runtime.
pub(crate) async fn connect(
    cfg: &tokio_postgres::Config,
    tls: &TlsSetup,
) -> Result<Connected, Box<dyn std::error::Error + Send + Sync>> {
    let hosts = cfg.get_hosts();
    let addrs = cfg.get_hostaddrs();
    let n = hosts.len().max(addrs.len());
    if n == 0 {
        return Err("the connection string names no host".into());
    }
    let mut last: Option<Box<dyn std::error::Error + Send + Sync>> = None;
    for i in 0..n {
        let port = cfg
            .get_ports()
            .get(i)
            .or_else(|| cfg.get_ports().first())
            .copied()
            .unwrap_or(5432);
        let hostname = match hosts.get(i) {
            Some(Host::Tcp(h)) => Some(h.clone()),
            _ => None,
        };
        let target = match (addrs.get(i), hosts.get(i)) {
            (Some(ip), _) => Target::Tcp(ip.to_string()),
            (None, Some(Host::Tcp(h))) => Target::Tcp(h.clone()),
            (None, Some(Host::Unix(p))) => Target::Unix(p.clone()),
            (None, None) => continue,
        };
        // `connect_timeout` bounds each host's whole attempt, start-up and authentication
        // included (as libpq's does): a server that accepts and never answers is a
        // create error, not a wait as long as `create_timeout`.
        let attempt = connect_one(cfg, tls, &target, hostname.as_deref(), port);
        let r = match cfg.get_connect_timeout() {
            Some(d) => tokio::time::timeout(*d, attempt)
                .await
                .unwrap_or_else(|_| Err(format!("connect_timeout ({d:?}) reached").into())),
            None => attempt.await,
        };
        match r {
            Ok(c) => return Ok(c),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| "no usable host in the connection string".into()))
}

async fn connect_one(
    cfg: &tokio_postgres::Config,
    tls: &TlsSetup,
    target: &Target,
    hostname: Option<&str>,
    port: u16,
) -> Result<Connected, Box<dyn std::error::Error + Send + Sync>> {
    let sock = open_socket(cfg, target, port).await.map_err(|e| {
        let what = match target {
            Target::Tcp(h) => format!("{h}:{port}"),
            Target::Unix(d) => format!("{}/.s.PGSQL.{port}", d.display()),
        };
        Box::new(io::Error::new(
            e.kind(),
            format!("connecting to {what}: {e}"),
        ))
    })?;
    // A cancel request must reach the same server: remember the address actually used.
    let peer = Peer {
        target: match &sock {
            Socket::Tcp(s) => s
                .peer_addr()
                .map(|a| Target::Tcp(a.ip().to_string()))
                .unwrap_or_else(|_| target.clone()),
            Socket::Unix(_) => target.clone(),
        },
        port,
        tls: tls.clone(),
        hostname: hostname.map(str::to_owned),
    };
    let wire = Wire::new();
    let stream = Tap::new(sock, wire.clone(), 1);
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
    let client = match tls {
        TlsSetup::Off => {
            let (client, conn) = cfg
                .connect_raw(stream, NoTls)
                .await
                .map_err(super::ConnectError::new)?;
            wire.activate();
            tokio::spawn(drive(conn, wire.clone(), closed_rx));
            client
        }
        TlsSetup::On(config) => {
            let mut make = tokio_postgres_rustls::MakeRustlsConnect::new((**config).clone());
            let inner = <tokio_postgres_rustls::MakeRustlsConnect as MakeTlsConnect<
                Tap<Socket>,
            >>::make_tls_connect(
                &mut make, hostname.unwrap_or("localhost")
            )?;
            let tls = TapTls {
                inner,
                wire: wire.clone(),
            };
            let (client, conn) = cfg
                .connect_raw(stream, tls)
                .await
                .map_err(super::ConnectError::new)?;
            wire.activate();
            tokio::spawn(drive(conn, wire.clone(), closed_rx));
            client
        }
    };
    let want = cfg.get_target_session_attrs();
    if want != TargetSessionAttrs::Any {
        let rows = client
            .simple_query("SHOW transaction_read_only")
            .await
            .map_err(super::ConnectError::new)?;
        let ro = rows.iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(|v| v == "on"),
            _ => None,
        });
        let ok = match want {
            TargetSessionAttrs::ReadWrite => ro == Some(false),
            TargetSessionAttrs::ReadOnly => ro == Some(true),
            _ => true,
        };
        if !ok {
            return Err(format!("server does not match target_session_attrs={want:?}").into());
        }
    }
    Ok(Connected {
        client,
        wire,
        closed: closed_tx,
        peer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_keys_are_taken_out_of_key_value_strings() {
        let (rest, k) = split_tls_keys(
            "host=db port=5432 sslmode=verify-full sslrootcert='/etc/a b.pem' password='it\\'s'",
        )
        .unwrap();
        assert_eq!(rest, "host=db port=5432 password='it\\'s'");
        assert_eq!(k.sslmode, Some(Ssl::VerifyFull));
        assert_eq!(k.sslrootcert.as_deref(), Some(Path::new("/etc/a b.pem")));
        assert!(rest.parse::<tokio_postgres::Config>().is_ok());
    }

    #[test]
    fn tls_keys_are_taken_out_of_urls() {
        let (rest, k) = split_tls_keys(
            "postgresql://u:p@db:5432/app?sslmode=require&application_name=x&sslrootcert=%2Ftmp%2Fca.pem",
        )
        .unwrap();
        assert_eq!(rest, "postgresql://u:p@db:5432/app?application_name=x");
        assert_eq!(k.sslmode, Some(Ssl::Require));
        assert_eq!(k.sslrootcert.as_deref(), Some(Path::new("/tmp/ca.pem")));
    }

    #[test]
    fn malformed_tls_keys_are_errors() {
        assert!(split_tls_keys("host=db sslmode=sometimes").is_err());
        assert!(split_tls_keys("host=db sslcert=/x").is_err());
        assert!(split_tls_keys("host='db").is_err());
        assert!(split_tls_keys("host db").is_err());
        let keys = TlsKeys {
            sslmode: Some(Ssl::VerifyFull),
            sslrootcert: None,
        };
        assert!(tls_setup(&keys).is_err());
    }
}
