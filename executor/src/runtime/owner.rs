//! The executor's job user: resolved per task, fixed by the first task (one executor
//! serves one owner's application), which also hands the sandbox to that user's group.

use super::{Inner, lock};
use crate::identity::{self, JobUser};

impl Inner {
    /// The job user of a task asking for `requested` (else the default user). `Err` is
    /// the task's failure message.
    pub(super) fn job_user(&self, requested: Option<&str>) -> Result<JobUser, String> {
        let sys = self.sys.as_ref();
        let mut owner = lock(&self.owner);
        let name = requested.unwrap_or(&self.default_user);
        if let Some(o) = owner.as_ref().filter(|o| o.name == name) {
            return Ok(o.clone());
        }
        let user =
            identity::resolve(sys, requested, &self.default_user).map_err(|e| e.to_string())?;
        match owner.as_ref() {
            Some(o) if (o.uid, o.gid) != (user.uid, user.gid) => Err(format!(
                "this executor already runs the jobs of user {}; the task asks for {}: one \
                 executor serves one owner's application (retz-server starts one per owner \
                 and application), so this task cannot run here",
                o.describe(),
                user.describe()
            )),
            Some(_) => Ok(user),
            None => {
                let own = sys
                    .credentials()
                    .map_err(|e| format!("cannot read the executor's credentials: {e}"))?;
                self.sandbox
                    .claim(sys, own.uid, user.gid)
                    .map_err(|e| format!("cannot give the sandbox to {}: {e}", user.describe()))?;
                *owner = Some(user.clone());
                Ok(user)
            }
        }
    }
}
