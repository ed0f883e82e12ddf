//! A throw-away PostgreSQL server (and PgBouncer in front of it), for tests and examples.
//!
//! [`EmbeddedPostgres::start`] runs the machine's own PostgreSQL binaries: `initdb` into a
//! fresh temporary directory, then `postgres` listening on a free port of 127.0.0.1 and on
//! a socket directory of its own; it returns once the server accepts connections, and
//! stops it (and removes the directory) when dropped. The binaries are found through
//! `RIPTIDE_PG_BINDIR`, `pg_config --bindir`, or the newest `/usr/lib/postgresql/*/bin`
//! (Debian's layout). PostgreSQL refuses to run as root: as root, the server runs as the
//! `postgres` system user (which the distribution's package creates) and owns its
//! directory.
//!
//! The server is made for speed, not durability (`fsync=off`, `synchronous_commit=off`),
//! listens with TLS on (a certificate authority and a server certificate for `localhost`
//! and 127.0.0.1 generated at start, see [`EmbeddedPostgres::ca_cert_path`]), and has one
//! superuser, `riptide`, with password `riptide` (password authentication over TCP).
//!
//! ```no_run
//! use riptide_adapters::postgres::{embedded::EmbeddedPostgres, PgFactory};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let server = EmbeddedPostgres::start()?;
//! let pool = PgFactory::new(&server.connection_string())?.into_pool_builder().build()?;
//! let conn = pool.get().await?;
//! let row = conn.query_one("SELECT 1 + 1", &[]).await?;
//! assert_eq!(row.get::<_, i32>(0), 2);
//! # Ok(()) }
//! ```

use std::fmt;
use std::io::{self, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Why the embedded server could not be set up.
#[derive(Debug)]
#[non_exhaustive]
pub enum EmbeddedError {
    /// No PostgreSQL binaries were found (install the distribution's `postgresql` package,
    /// or set `RIPTIDE_PG_BINDIR`).
    NotInstalled(String),
    /// A step failed; the message names it and carries the tool's output.
    Failed(String),
    /// An I/O error, with what was being done.
    Io(String, io::Error),
}

impl fmt::Display for EmbeddedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmbeddedError::NotInstalled(m) => write!(f, "PostgreSQL binaries not found: {m}"),
            EmbeddedError::Failed(m) => write!(f, "embedded PostgreSQL: {m}"),
            EmbeddedError::Io(what, e) => write!(f, "embedded PostgreSQL: {what}: {e}"),
        }
    }
}

impl std::error::Error for EmbeddedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            EmbeddedError::Io(_, e) => Some(e),
            _ => None,
        }
    }
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> EmbeddedError {
    let what = what.into();
    move |e| EmbeddedError::Io(what, e)
}

/// The superuser's name and password.
pub const SUPERUSER: &str = "riptide";
/// The superuser's password.
pub const PASSWORD: &str = "riptide";

/// The directory holding `initdb`, `postgres`, `pg_ctl`, `pg_isready`.
pub fn bindir() -> Result<PathBuf, EmbeddedError> {
    let has = |d: &Path| d.join("initdb").is_file() && d.join("postgres").is_file();
    if let Some(d) = std::env::var_os("RIPTIDE_PG_BINDIR") {
        let d = PathBuf::from(d);
        return if has(&d) {
            Ok(d)
        } else {
            Err(EmbeddedError::NotInstalled(format!(
                "RIPTIDE_PG_BINDIR={} has no initdb/postgres",
                d.display()
            )))
        };
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let d = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has(&d) {
            return Ok(d);
        }
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let d = e.path().join("bin");
            has(&d).then_some((v, d))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, d)| d).ok_or_else(|| {
        EmbeddedError::NotInstalled(
            "no pg_config --bindir and no /usr/lib/postgresql/*/bin (apt-get install postgresql)"
                .into(),
        )
    })
}

/// The uid/gid to run servers as: `postgres` when running as root, else nobody else.
fn run_as() -> Result<Option<(u32, u32)>, EmbeddedError> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let me = std::fs::metadata("/proc/self").map(|m| {
        use std::os::unix::fs::MetadataExt;
        m.uid()
    });
    if me.map_or(true, |uid| uid != 0) {
        return Ok(None);
    }
    for line in passwd.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() > 3 && f[0] == "postgres" {
            let uid = f[2].parse().ok();
            let gid = f[3].parse().ok();
            if let (Some(u), Some(g)) = (uid, gid) {
                return Ok(Some((u, g)));
            }
        }
    }
    Err(EmbeddedError::NotInstalled(
        "running as root, and there is no `postgres` system user to run the server as".into(),
    ))
}

fn free_port() -> Result<u16, EmbeddedError> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(io_err("finding a free port"))?;
    Ok(l.local_addr()
        .map_err(io_err("finding a free port"))?
        .port())
}

fn temp_dir(prefix: &str) -> Result<PathBuf, EmbeddedError> {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let d = std::env::temp_dir().join(format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).map_err(io_err(format!("creating {}", d.display())))?;
    Ok(d)
}

fn command(bin: &Path, user: Option<(u32, u32)>) -> Command {
    let mut c = Command::new(bin);
    if let Some((uid, gid)) = user {
        c.uid(uid).gid(gid);
    }
    c.stdin(Stdio::null());
    #[cfg(target_os = "linux")]
    // SAFETY: the closure runs in the forked child before exec and calls only prctl(2),
    // which is async-signal-safe; it allocates nothing and touches no lock.
    unsafe {
        // If the thread that started it dies (a test process that panicked or was killed,
        // an example stopped with Ctrl-C), the child gets SIGQUIT: PostgreSQL's immediate
        // shutdown. Set after the uid change above, which would clear it.
        c.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    c
}

/// Removes the directories of earlier servers whose process is gone (killed before
/// their `Drop` ran).
fn sweep_stale(prefix: &str) {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else {
            continue;
        };
        let Some(pid) = rest.strip_prefix('-').and_then(|r| r.split('-').next()) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn run(mut c: Command, what: &str) -> Result<(), EmbeddedError> {
    let out = c.output().map_err(io_err(what.to_owned()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(EmbeddedError::Failed(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}

fn chown_tree(p: &Path, user: Option<(u32, u32)>) -> Result<(), EmbeddedError> {
    let Some((uid, gid)) = user else {
        return Ok(());
    };
    std::os::unix::fs::chown(p, Some(uid), Some(gid))
        .map_err(io_err(format!("chown {}", p.display())))?;
    if p.is_dir() {
        for e in std::fs::read_dir(p).map_err(io_err(format!("reading {}", p.display())))? {
            chown_tree(&e.map_err(io_err("reading a directory"))?.path(), user)?;
        }
    }
    Ok(())
}

fn write_file(p: &Path, text: &str, mode: u32) -> Result<(), EmbeddedError> {
    let mut f = std::fs::File::create(p).map_err(io_err(format!("writing {}", p.display())))?;
    f.write_all(text.as_bytes())
        .map_err(io_err(format!("writing {}", p.display())))?;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .map_err(io_err(format!("chmod {}", p.display())))
}

/// Options for [`EmbeddedPostgres`]; from [`EmbeddedPostgres::builder`].
#[derive(Debug, Clone)]
pub struct EmbeddedBuilder {
    max_connections: u32,
    settings: Vec<(String, String)>,
}

impl EmbeddedBuilder {
    /// The server's `max_connections` (default 200).
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n;
        self
    }
    /// Any other server setting (`-c name=value`).
    pub fn setting(mut self, name: &str, value: &str) -> Self {
        self.settings.push((name.into(), value.into()));
        self
    }
    /// Creates the cluster and starts the server.
    pub fn start(self) -> Result<EmbeddedPostgres, EmbeddedError> {
        EmbeddedPostgres::create(self)
    }
}

/// A throw-away PostgreSQL server; stopped and removed when dropped.
pub struct EmbeddedPostgres {
    dir: PathBuf,
    bin: PathBuf,
    user: Option<(u32, u32)>,
    port: u16,
    args: Vec<String>,
    child: Mutex<Option<Child>>,
}

impl fmt::Debug for EmbeddedPostgres {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedPostgres")
            .field("dir", &self.dir)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl EmbeddedPostgres {
    /// Options; [`EmbeddedBuilder::start`] starts it.
    pub fn builder() -> EmbeddedBuilder {
        EmbeddedBuilder {
            max_connections: 200,
            settings: Vec::new(),
        }
    }

    /// Starts a server with the default options.
    pub fn start() -> Result<EmbeddedPostgres, EmbeddedError> {
        Self::builder().start()
    }

    fn create(b: EmbeddedBuilder) -> Result<EmbeddedPostgres, EmbeddedError> {
        let bin = bindir()?;
        let user = run_as()?;
        sweep_stale("riptide-pg");
        sweep_stale("riptide-pgbouncer");
        let dir = temp_dir("riptide-pg")?;
        let guard = DirGuard(Some(dir.clone()));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io_err("chmod the server directory"))?;
        let data = dir.join("data");
        let sock = dir.join("sock");
        std::fs::create_dir_all(&sock).map_err(io_err("creating the socket directory"))?;
        write_file(&dir.join("pwfile"), PASSWORD, 0o600)?;
        // The certificate authority and the server's certificate.
        let tls = make_certs()?;
        write_file(&dir.join("ca.crt"), &tls.ca_pem, 0o644)?;
        write_file(&dir.join("server.crt"), &tls.cert_pem, 0o600)?;
        write_file(&dir.join("server.key"), &tls.key_pem, 0o600)?;
        chown_tree(&dir, user)?;
        let mut init = command(&bin.join("initdb"), user);
        init.arg("-D")
            .arg(&data)
            .args(["-U", SUPERUSER, "-E", "UTF8", "--locale=C", "--no-sync"])
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .arg(format!("--pwfile={}", dir.join("pwfile").display()));
        run(init, "initdb")?;
        let port = free_port()?;
        let mut args: Vec<String> = vec![
            "-D".into(),
            data.display().to_string(),
            "-p".into(),
            port.to_string(),
            "-k".into(),
            sock.display().to_string(),
        ];
        let mut settings: Vec<(String, String)> = vec![
            ("listen_addresses".into(), "127.0.0.1".into()),
            ("max_connections".into(), b.max_connections.to_string()),
            ("fsync".into(), "off".into()),
            ("synchronous_commit".into(), "off".into()),
            ("full_page_writes".into(), "off".into()),
            ("ssl".into(), "on".into()),
            (
                "ssl_cert_file".into(),
                dir.join("server.crt").display().to_string(),
            ),
            (
                "ssl_key_file".into(),
                dir.join("server.key").display().to_string(),
            ),
            ("logging_collector".into(), "off".into()),
            // A backend whose client went away stops its query within a second.
            ("client_connection_check_interval".into(), "1s".into()),
        ];
        settings.extend(b.settings);
        for (k, v) in settings {
            args.push("-c".into());
            args.push(format!("{k}={v}"));
        }
        let pg = EmbeddedPostgres {
            dir,
            bin,
            user,
            port,
            args,
            child: Mutex::new(None),
        };
        std::mem::forget(guard); // `pg` owns the directory now
        pg.start_server()?;
        Ok(pg)
    }

    fn start_server(&self) -> Result<(), EmbeddedError> {
        let log = std::fs::File::create(self.dir.join("server.log"))
            .map_err(io_err("creating server.log"))?;
        if let Some((uid, gid)) = self.user {
            let _ = std::os::unix::fs::chown(self.dir.join("server.log"), Some(uid), Some(gid));
        }
        let log2 = log.try_clone().map_err(io_err("server.log"))?;
        let child = command(&self.bin.join("postgres"), self.user)
            .args(&self.args)
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(io_err("starting postgres"))?;
        *self.child.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
        self.wait_ready(Duration::from_secs(60))
    }

    fn wait_ready(&self, limit: Duration) -> Result<(), EmbeddedError> {
        let t0 = Instant::now();
        loop {
            {
                let mut g = self.child.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(c) = g.as_mut() {
                    if let Ok(Some(status)) = c.try_wait() {
                        *g = None;
                        return Err(EmbeddedError::Failed(format!(
                            "postgres exited ({status}): {}",
                            self.log_tail()
                        )));
                    }
                }
            }
            let ok = command(&self.bin.join("pg_isready"), None)
                .args([
                    "-q",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-t",
                    "1",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                return Ok(());
            }
            if t0.elapsed() > limit {
                return Err(EmbeddedError::Failed(format!(
                    "postgres did not accept connections within {limit:?}: {}",
                    self.log_tail()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The socket directory (for `host=<dir>` connection strings).
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.join("sock")
    }

    /// The certificate authority's PEM file (for `sslrootcert`).
    pub fn ca_cert_path(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// A plain-TCP connection string for the superuser and database `postgres`
    /// (`sslmode=disable`).
    pub fn connection_string(&self) -> String {
        self.connection_string_for(SUPERUSER, PASSWORD, "postgres")
    }

    /// A plain-TCP connection string for another role and database.
    pub fn connection_string_for(&self, user: &str, password: &str, dbname: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={user} password={password} dbname={dbname} sslmode=disable",
            self.port
        )
    }

    /// Runs SQL as the superuser through `psql` over the socket (for set-up in tests).
    pub fn psql(&self, sql: &str) -> Result<String, EmbeddedError> {
        let out = command(&self.bin.join("psql"), None)
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                SUPERUSER,
                "-d",
                "postgres",
            ])
            .args(["-c", sql])
            .env("PGPASSWORD", PASSWORD)
            .env("PGSSLMODE", "disable")
            .output()
            .map_err(io_err("running psql"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(EmbeddedError::Failed(format!(
                "psql: {}",
                String::from_utf8_lossy(&out.stderr)
            )))
        }
    }

    /// Stops the server the hard way (`pg_ctl stop -m immediate`: no checkpoint, every
    /// backend killed), as a crash would.
    pub fn stop_immediate(&self) -> Result<(), EmbeddedError> {
        let mut c = command(&self.bin.join("pg_ctl"), self.user);
        c.args(["stop", "-m", "immediate", "-w", "-D"])
            .arg(self.dir.join("data"));
        let r = run(c, "pg_ctl stop -m immediate");
        if let Some(mut child) = self.child.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = child.wait();
        }
        r
    }

    /// Starts the server again after [`stop_immediate`](Self::stop_immediate) (same port,
    /// same data; it recovers from the crash first).
    pub fn restart(&self) -> Result<(), EmbeddedError> {
        if self
            .child
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
        {
            return Err(EmbeddedError::Failed("the server is still running".into()));
        }
        self.start_server()
    }

    /// Starts PgBouncer in front of this server, on another port of 127.0.0.1, in
    /// `pool_mode` (`session`, `transaction` or `statement`), with at most `server_pool`
    /// server connections. It logs in as the superuser whatever the client's user.
    pub fn pgbouncer(&self, pool_mode: &str, server_pool: u32) -> Result<PgBouncer, EmbeddedError> {
        let exe = which("pgbouncer").ok_or_else(|| {
            EmbeddedError::NotInstalled(
                "pgbouncer is not on PATH (apt-get install pgbouncer)".into(),
            )
        })?;
        let dir = temp_dir("riptide-pgbouncer")?;
        let guard = DirGuard(Some(dir.clone()));
        let port = free_port()?;
        let ini = format!(
            "[databases]\n* = host=127.0.0.1 port={pg} user={SUPERUSER} password={PASSWORD}\n\n\
             [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
             auth_type = any\npool_mode = {pool_mode}\ndefault_pool_size = {server_pool}\n\
             max_client_conn = 1000\nlogfile = {dir}/pgbouncer.log\npidfile = {dir}/pgbouncer.pid\n\
             ignore_startup_parameters = extra_float_digits,options\nserver_tls_sslmode = disable\n",
            pg = self.port,
            dir = dir.display(),
        );
        write_file(&dir.join("pgbouncer.ini"), &ini, 0o644)?;
        chown_tree(&dir, self.user)?;
        let child = command(&exe, self.user)
            .arg(dir.join("pgbouncer.ini"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io_err("starting pgbouncer"))?;
        std::mem::forget(guard);
        let mut b = PgBouncer {
            dir,
            port,
            child: Some(child),
        };
        let t0 = Instant::now();
        while std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            if let Some(Ok(Some(status))) = b.child.as_mut().map(|c| c.try_wait()) {
                let log = std::fs::read_to_string(b.dir.join("pgbouncer.log")).unwrap_or_default();
                return Err(EmbeddedError::Failed(format!(
                    "pgbouncer exited ({status}): {log}"
                )));
            }
            if t0.elapsed() > Duration::from_secs(20) {
                return Err(EmbeddedError::Failed(
                    "pgbouncer did not listen within 20 s".into(),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(b)
    }
}

impl EmbeddedPostgres {
    /// Stops the server and removes its directory now (what dropping it does), for a
    /// server kept in a `static` that is never dropped. Using it afterwards fails.
    pub fn stop_and_remove(&self) {
        let running = self
            .child
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some();
        if running {
            let _ = self.stop_immediate();
        }
        if let Some(mut c) = self.child.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        self.stop_and_remove();
    }
}

/// PgBouncer in front of an [`EmbeddedPostgres`]; stopped when dropped.
#[derive(Debug)]
pub struct PgBouncer {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl PgBouncer {
    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }
    /// A connection string through PgBouncer (any user; the server side logs in as the
    /// embedded server's superuser).
    pub fn connection_string(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user={SUPERUSER} password={PASSWORD} dbname=postgres sslmode=disable",
            self.port
        )
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct DirGuard(Option<PathBuf>);

impl Drop for DirGuard {
    fn drop(&mut self) {
        if let Some(d) = self.0.take() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/bin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

struct Certs {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn make_certs() -> Result<Certs, EmbeddedError> {
    let fail = |e: rcgen::Error| EmbeddedError::Failed(format!("generating certificates: {e}"));
    let (ca_cert, issuer) = new_ca("riptide embedded test CA").map_err(fail)?;
    let key = rcgen::KeyPair::generate().map_err(fail)?;
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .map_err(fail)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    let cert = params.signed_by(&key, &issuer).map_err(fail)?;
    Ok(Certs {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A self-signed certificate authority: its certificate and the issuer that signs with it.
/// Public so tests can make a second, unrelated authority (a wrong `sslrootcert`).
pub fn new_ca(
    name: &str,
) -> Result<(rcgen::Certificate, rcgen::Issuer<'static, rcgen::KeyPair>), rcgen::Error> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let cert = params.self_signed(&key)?;
    Ok((cert, rcgen::Issuer::new(params, key)))
}
