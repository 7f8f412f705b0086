//! Who may act on which framework, when the master has credentials (Mesos'
//! `--authenticate_http_frameworks` with `--credentials`).
//!
//! The HTTP layer authenticates every scheduler call and read-only request first (HTTP
//! Basic, 401 otherwise, see [`crate::http_auth`]) and passes the principal on; the checks
//! here run in the actor before the call touches any state:
//! * SUBSCRIBE: `FrameworkInfo.principal` must be the authenticated principal, and a
//!   framework id the master knows must belong to that principal (else 403), so nobody
//!   can take over another principal's framework by re-subscribing with its id;
//! * every other call: the framework it names must belong to the authenticated
//!   principal (403), checked right after "Framework cannot be found" (400) as Mesos does.
//!
//! A master without credentials passes `None` and nothing is checked.

use retz_proto::scheduler::Call;

use super::core::{CallError, Core};

fn shown(p: Option<&str>) -> &str {
    p.unwrap_or("")
}

impl Core {
    /// Whether `principal` (the authenticated one, `None` without credentials) may
    /// SUBSCRIBE with `c`; the error is the 403's message.
    pub(super) fn authorize_subscribe(
        &self,
        c: &Call,
        principal: Option<&str>,
    ) -> Result<(), String> {
        let Some(principal) = principal else {
            return Ok(());
        };
        let info = c
            .subscribe
            .as_ref()
            .map(|s| &s.framework_info)
            .ok_or_else(|| "SUBSCRIBE without 'subscribe'".to_string())?;
        let claimed = info.principal.as_deref();
        if claimed != Some(principal) {
            return Err(format!(
                "Authenticated principal '{principal}' does not match principal '{}' set in FrameworkInfo; set FrameworkInfo.principal to the principal you authenticate as",
                shown(claimed)
            ));
        }
        if let Some(id) = &info.id
            && let Some(fw) = self.frameworks.get(&id.value)
            && fw.info.principal.as_deref() != Some(principal)
        {
            return Err(format!(
                "Framework {} belongs to principal '{}', not to '{principal}'",
                id.value,
                shown(fw.info.principal.as_deref())
            ));
        }
        Ok(())
    }

    /// Whether `principal` may make the non-SUBSCRIBE call `c`: the framework it names
    /// (when known; an unknown one is answered 400 by the call itself) must be its own.
    pub(super) fn authorize_call(
        &self,
        c: &Call,
        principal: Option<&str>,
    ) -> Result<(), CallError> {
        let Some(principal) = principal else {
            return Ok(());
        };
        let fid = c.framework_id.as_ref().map_or("", |f| f.value.as_str());
        match self.frameworks.get(fid) {
            Some(fw) if fw.info.principal.as_deref() != Some(principal) => {
                Err(CallError::Forbidden(format!(
                    "Authenticated principal '{principal}' does not match principal '{}' of framework {fid}",
                    shown(fw.info.principal.as_deref())
                )))
            }
            _ => Ok(()),
        }
    }
}
