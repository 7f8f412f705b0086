//! What an original site's config asks of the start, beyond the store and the API: the
//! configured admin user (`retz.access.key`/`.secret`, `server.admin_access_key`), the
//! bind address given by host name (`server.bind_host`), the periodic GC of finished
//! jobs (`[gc]`) and the warnings for keys mapped onto a close behaviour.

use super::*;

use crate::config::GcSection;
use retz_proto::api::User;

/// The address to listen on: `server.bind`, or the first address `server.bind_host`
/// resolves to, at `bind`'s port.
pub(super) async fn bind_addr(cfg: &ServerConfig) -> Result<SocketAddr, ServerError> {
    let Some(host) = &cfg.server.bind_host else {
        return Ok(cfg.server.bind);
    };
    let port = cfg.server.bind.port();
    let bad = |message: String| {
        ServerError::Config(ConfigError::Invalid {
            key: "server.bind_host (retz.bind)",
            message,
        })
    };
    let mut addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| {
            bad(format!(
                "cannot resolve {host:?}: {e}; name a host of this machine or its IP address"
            ))
        })?
        .collect();
    // The IPv4 address first, as the original (Jetty on Java's default stack) would bind.
    addrs.sort_by_key(|a| !a.is_ipv4());
    let addr = addrs
        .first()
        .copied()
        .ok_or_else(|| bad(format!("{host:?} resolves to no address")))?;
    info!(host = %host, %addr, "retz.bind host resolved");
    Ok(addr)
}

/// The admin user the config names (`server.admin_access_key`): created if missing,
/// else its secret must match. `None` when the config names none.
pub(super) async fn configured_admin(
    store: &Store,
    cfg: &ServerConfig,
) -> Result<Option<User>, ServerError> {
    let Some(key) = &cfg.server.admin_access_key else {
        return Ok(None);
    };
    let key_name = "server.admin_access_key (retz.access.key)";
    if let Some(user) = store.get_user(key).await? {
        if let Some(secret) = &cfg.server.admin_secret
            && !bool::from(subtle::ConstantTimeEq::ct_eq(
                user.secret.as_bytes(),
                secret.as_bytes(),
            ))
        {
            return Err(ServerError::Config(ConfigError::Invalid {
                key: "server.admin_secret (retz.access.secret)",
                message: format!(
                    "the store holds user {key} with another secret; write that user's \
                     secret (retz-admin get-user -id {key}) or name another key"
                ),
            }));
        }
        if !user.enabled {
            warn!(key = %key, "{key_name}: the admin user is disabled; retz-admin enable-user -id {key}");
        }
        return Ok(Some(user));
    }
    let user = User {
        key_id: key.clone(),
        secret: cfg
            .server
            .admin_secret
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()),
        enabled: true,
        info: "admin (retz.access.key)".into(),
    };
    store.put_user(&user).await?;
    info!(key = %key, "created the admin user of {key_name}");
    Ok(Some(user))
}

/// Starts the periodic GC (`[gc]`): every `interval_s`, FINISHED and KILLED jobs that
/// ended more than `leeway_s` ago are deleted.
pub(super) fn spawn_gc(store: &Store, gc: &GcSection) -> Option<JoinHandle<()>> {
    if !gc.enabled {
        return None;
    }
    let store = store.clone();
    let (leeway, every) = (gc.leeway_s, Duration::from_secs(gc.interval_s.max(1)));
    info!(
        leeway_s = leeway,
        interval_s = every.as_secs(),
        "periodic GC of finished jobs on"
    );
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match store.gc(leeway).await {
                Ok(0) => {}
                Ok(n) => info!(deleted = n, leeway_s = leeway, "GC deleted finished jobs"),
                Err(e) => warn!(error = %e, "GC of finished jobs failed; retried next interval"),
            }
        }
    }))
}

/// Logs the config's notes (keys mapped onto a close behaviour), one warning each.
pub(super) fn log_notes(cfg: &ServerConfig) {
    for note in &cfg.notes {
        warn!("{note}");
    }
}
