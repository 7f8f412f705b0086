//! The Mesos framework credential of the server: the embedded cluster's, kept in the data
//! directory, or one read from `mesos.secret_file`.

use super::*;

/// A random secret of 244 bits (two v4 UUIDs from the operating system's CSPRNG), hex.
fn random_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

fn invalid(key: &'static str, message: String) -> ServerError {
    ServerError::Config(ConfigError::Invalid { key, message })
}

/// The embedded cluster's credential: read from `DIR/local-credentials.json` (made 0600
/// again), or generated (principal `principal`, a random secret) and written there 0600
/// at first start; without a data dir, generated and kept in memory only.
pub fn local_credential(dir: Option<&Path>, principal: &str) -> Result<Credential, ServerError> {
    let fresh = || {
        Credential::new(principal, random_secret())
            .map_err(|e| invalid("mesos.principal", e.to_string()))
    };
    let Some(dir) = dir else {
        return fresh();
    };
    let path = dir.join(LOCAL_CREDENTIALS_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            set_mode(&path, 0o600).map_err(io(format!("cannot chmod 0600 {}", path.display())))?;
            let set = Credentials::parse(&text).map_err(|e| {
                ServerError::Local(format!(
                    "{}: {e}; remove it to have a new credential generated",
                    path.display()
                ))
            })?;
            let c = set.entries().first().cloned().ok_or_else(|| {
                ServerError::Local(format!("{} holds no credential", path.display()))
            })?;
            info!(path = %path.display(), principal = %c.principal, "local cluster credentials reused");
            Ok(c)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let c = fresh()?;
            write_private(&path, &Credentials::single(c.clone()).to_json())
                .map_err(io(format!("cannot write {}", path.display())))?;
            info!(path = %path.display(), principal = %c.principal, "local cluster credentials generated");
            Ok(c)
        }
        Err(e) => Err(io(format!("cannot read {}", path.display()))(e)),
    }
}

/// The framework's credential from `mesos.secret_file`: the secret alone (one word), or
/// a Mesos credentials file (JSON or `principal secret` lines) holding `principal`.
pub fn framework_credential(path: &Path, principal: &str) -> Result<Credential, ServerError> {
    use std::os::unix::fs::PermissionsExt;
    let key = "mesos.secret_file";
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid(key, format!("cannot read {shown}: {e}")))?;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        warn!(
            path = %shown,
            mode = format!("{:04o}", meta.permissions().mode() & 0o7777),
            "the framework's secret file is readable by others than its owner; chmod 0600 it"
        );
    }
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(invalid(
            key,
            format!("{shown} is empty; write the framework's secret into it"),
        ));
    }
    let secret = if !trimmed.starts_with('{') && !trimmed.contains(char::is_whitespace) {
        trimmed.to_owned()
    } else {
        let set = Credentials::parse(&text).map_err(|e| invalid(key, format!("{shown}: {e}")))?;
        let found = set.entries().iter().find(|c| c.principal == principal);
        match found {
            Some(c) => c.secret.clone(),
            None => {
                let names: Vec<&str> = set.entries().iter().map(|c| c.principal.as_str()).collect();
                return Err(invalid(
                    key,
                    format!(
                        "{shown} holds no credential of principal {principal:?} (mesos.principal); \
                         it names {}",
                        names.join(", ")
                    ),
                ));
            }
        }
    };
    Credential::new(principal, secret).map_err(|e| invalid(key, e.to_string()))
}
