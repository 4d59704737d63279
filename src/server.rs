//! `voltyard serve`: opens the store, binds the OCPP listener and the
//! control socket, and runs until Ctrl-C / SIGTERM.

pub use crate::config::{ServerConfig, UnknownChargers};
use crate::ocpp::{listener, registry::Registry};
use crate::store::Store;
use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;

/// What every connection and control request shares.
pub struct Shared {
    pub config: ServerConfig,
    pub store: Store,
    pub registry: Registry,
    pub load: crate::loadctl::LoadControl,
    pub signed_seen: crate::control::meter_keys::SignedSeen,
    /// Times a charger was slowed down for sending too fast (`status`).
    pub throttled: std::sync::atomic::AtomicU64,
    pub ops: crate::control::ops_tasks::OpsState,
    /// Base URL of the files chargers download and upload (`files.public_url`).
    pub public_url: String,
    /// Wakes the campaign runner (a campaign was started).
    pub campaign_wake: tokio::sync::Notify,
    /// Password checks and their throttling (security profile 1).
    pub guard: crate::security::auth::Guard,
    /// The server certificate, when `tls_listen` or `control_listen` is set.
    pub tls: Option<crate::security::tls::Tls>,
    /// The built-in CA, loaded (or created) on first use.
    pub ca: std::sync::Mutex<Option<Arc<crate::security::ca::Ca>>>,
    /// Woken when a certificate was issued, so expiry alerts need not wait for the hourly check.
    pub certs_changed: tokio::sync::Notify,
    /// The Plug & Charge contract-certificate source, made on first use.
    pub pnc: crate::pnc::Slot,
}

impl Shared {
    /// The built-in CA, created in `<data-dir>/ca/` the first time it is needed.
    pub fn ca(&self) -> Result<Arc<crate::security::ca::Ca>, crate::security::ca::CaError> {
        let mut slot = self.ca.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ca) = &*slot {
            return Ok(ca.clone());
        }
        let ca = Arc::new(crate::security::ca::Ca::load_or_create(&self.config.ca_dir())?);
        *slot = Some(ca.clone());
        Ok(ca)
    }
}

/// A started server: where it listens, and how to stop it.
pub struct Running {
    pub addr: SocketAddr,
    /// The wss:// listener's address, when `tls_listen` is set.
    pub tls_addr: Option<SocketAddr>,
    /// The TCP control listener's address, when `control_listen` is set.
    pub control_addr: Option<SocketAddr>,
    pub shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    pub fn stop(self) {
        for t in self.tasks {
            t.abort();
        }
        let _ = std::fs::remove_file(self.shared.config.control_socket());
    }
}

/// Start serving in the current runtime and return at once.
pub async fn start(config: ServerConfig) -> anyhow::Result<Running> {
    config.check()?;
    raise_open_file_limit();
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    // Bind first: a busy port must not leave the database opened behind it.
    let tcp =
        listener::bind(config.listen, config.backlog).with_context(|| format!("cannot listen on {}", config.listen))?;
    // The token file is checked before the database opens, for the same reason.
    let control_tcp = control_setup(&config)?;
    let control_addr = control_tcp.as_ref().map(|(t, _)| t.local_addr()).transpose()?;
    let boot = crate::domain::admission::BootPolicy {
        heartbeat_interval: config.heartbeat_interval_s,
        admission: config.admission,
    };
    let store = Store::open_with(&config.db_path(), boot, config.store_cache_mib << 20)
        .with_context(|| format!("cannot open the database {}", config.db_path().display()))?;
    let addr = tcp.local_addr()?;
    let (tls, tls_tcp) = tls_setup(&config)?;
    let tls_addr = tls_tcp.as_ref().map(|t| t.local_addr()).transpose()?;
    let control = crate::control::server::bind(&config.control_socket())?;
    let public_url = public_url(&config, addr);
    let shared = Arc::new(Shared {
        config,
        store,
        registry: Registry::default(),
        load: crate::loadctl::LoadControl::default(),
        signed_seen: Default::default(),
        throttled: Default::default(),
        ops: Default::default(),
        public_url,
        campaign_wake: tokio::sync::Notify::new(),
        guard: Default::default(),
        tls,
        ca: Default::default(),
        certs_changed: Default::default(),
        pnc: Default::default(),
    });
    let mut tasks = vec![
        tokio::spawn(listener::serve(tcp, shared.clone())),
        tokio::spawn(crate::control::server::serve(control, shared.clone())),
    ];
    if let Some(t) = tls_tcp {
        tasks.push(tokio::spawn(listener::serve_tls(t, shared.clone())));
        tracing::info!(addr = ?tls_addr, "voltyard serving OCPP over TLS");
    }
    if let Some((t, token)) = control_tcp {
        tasks.push(tokio::spawn(crate::control::remote::serve(t, token, shared.clone())));
        tracing::info!(addr = ?control_addr, "voltyard serving the control API over TLS");
    }
    if shared.tls.is_some() {
        tasks.push(tokio::spawn(reload_on_sighup(shared.clone())));
    }
    tasks.extend(crate::loadctl::LoadControl::spawn(shared.clone()));
    tasks.push(tokio::spawn(crate::security::expiry::watch(shared.clone())));
    tasks.push(crate::control::meter_keys::spawn(shared.clone()));
    tasks.extend(crate::control::ops_tasks::spawn(shared.clone()));
    tasks.push(crate::control::campaign::spawn(shared.clone()));
    tracing::info!(%addr, data_dir = %shared.config.data_dir.display(), "voltyard serving OCPP at ws://{addr}/ocpp/{{chargePointId}}");
    Ok(Running {
        addr,
        tls_addr,
        control_addr,
        shared,
        tasks,
    })
}

/// The server certificate (shared by the wss:// and the control listener)
/// and the wss:// listener; the built-in CA is created here so client
/// certificates it issued are trusted from the first handshake.
fn tls_setup(
    config: &ServerConfig,
) -> anyhow::Result<(Option<crate::security::tls::Tls>, Option<tokio::net::TcpListener>)> {
    let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) else {
        return Ok((None, None));
    };
    if config.tls_listen.is_none() && config.control_listen.is_none() {
        return Ok((None, None));
    }
    let ca = crate::security::ca::Ca::load_or_create(&config.ca_dir())?;
    let files = crate::security::tls::TlsFiles {
        cert: cert.clone(),
        key: key.clone(),
        client_ca: config.tls_client_ca.clone(),
    };
    let tls = crate::security::tls::Tls::new(files, ca.cert_der.clone())?;
    let tcp = config
        .tls_listen
        .map(|addr| listener::bind(addr, config.backlog).with_context(|| format!("cannot listen on {addr}")))
        .transpose()?;
    Ok((Some(tls), tcp))
}

/// The TCP control listener and the token its clients must present.
fn control_setup(config: &ServerConfig) -> anyhow::Result<Option<(tokio::net::TcpListener, String)>> {
    let Some(addr) = config.control_listen else {
        return Ok(None);
    };
    let token = crate::control::remote::load_or_create_token(&config.control_token_file())?;
    let tcp = listener::bind(addr, 128).with_context(|| format!("cannot listen on {addr} (control_listen)"))?;
    Ok(Some((tcp, token)))
}

/// SIGHUP re-reads the TLS files; open connections are not touched and a
/// failed reload keeps the certificate in use.
async fn reload_on_sighup(shared: Arc<Shared>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; TLS certificates will not be reloaded");
            return;
        };
        while hup.recv().await.is_some() {
            let Some(tls) = &shared.tls else { return };
            match tls.reload() {
                Ok(()) => tracing::info!("SIGHUP: TLS certificate reloaded"),
                Err(e) => tracing::error!("SIGHUP: TLS reload failed, keeping the current certificate: {e}"),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = shared;
}

/// Where chargers fetch and upload files: the configured `public_url`, or
/// the address we listen on (loopback for an unspecified one).
fn public_url(config: &ServerConfig, addr: SocketAddr) -> String {
    if let Some(u) = &config.files.public_url {
        return u.trim_end_matches('/').to_string();
    }
    let mut a = addr;
    if a.ip().is_unspecified() {
        tracing::warn!(
            "listening on all interfaces: set files.public_url so chargers can reach firmware and upload URLs"
        );
        a.set_ip(if a.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    format!("http://{a}")
}

/// Every charger holds a socket, and the usual soft limit (1,024) would cap
/// a site far below what the machine allows; go up to the hard limit.
fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::debug!(limit = n, "open file limit"),
        Err(e) => tracing::warn!("cannot raise the open file limit: {e}"),
    }
}

/// Run until interrupted.
pub async fn run(config: ServerConfig) -> anyhow::Result<()> {
    let running = start(config).await?;
    eprintln!(
        "voltyard: OCPP at ws://{}/ocpp/{{chargePointId}}, control socket {}",
        running.addr,
        running.shared.config.control_socket().display()
    );
    if let Some(a) = running.tls_addr {
        eprintln!("voltyard: OCPP over TLS at wss://{a}/ocpp/{{chargePointId}}");
    }
    if let Some(a) = running.control_addr {
        eprintln!(
            "voltyard: control API at tls://{a} (token in {})",
            running.shared.config.control_token_file().display()
        );
    }
    shutdown_signal().await;
    eprintln!("voltyard: shutting down");
    running.stop();
    Ok(())
}

pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return ctrl_c.await.unwrap_or(()),
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
