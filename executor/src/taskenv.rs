//! The environment and command line of a task (pure).
//!
//! Exported to every task: `RETZ_CPU`, `RETZ_MEM`, `RETZ_GPU`, `RETZ_CPUSET` (the CPUs the
//! task is pinned to, empty when not pinned), `RETZ_NUMA_NODES` (its memory nodes, empty
//! when none), `RETZ_PVNAME` (the application directory), `RETZ_JOB_ID` (empty when the
//! spec has none) and `RETZ_TASK_ID`; plus, for each granted port, `PORT0`, `PORT1`, ...
//! (the original Retz's names, in the spec's order) and `RETZ_PORTS`, the comma list of
//! them all (empty when none); and the GPUs: `CUDA_VISIBLE_DEVICES` and
//! `NVIDIA_VISIBLE_DEVICES`, the granted device ids comma-separated (`0,2`), empty for a
//! task without GPUs, and not set when the spec grants GPUs without naming them (an
//! agent stating a GPU count only). The environment is built in layers, later ones winning:
//! the executor's own environment minus every credential-like variable ([`is_private`]:
//! the agent's `MESOS_EXECUTOR_AUTHENTICATION_TOKEN` and any name holding `TOKEN`,
//! `SECRET`, `PASSWORD`, `PASSWD`, `CREDENTIAL`, `PRIVATE_KEY`, `API_KEY` or
//! `ACCESS_KEY`), then `HOME`, `USER` and `LOGNAME` of the job's user, the spec's `env`
//! with `$RETZ_*`/`$PORTn` substituted literally, then the task's variables, which a
//! spec cannot override. The command becomes `sh -c <command>` with `$RETZ_*` and
//! `$PORTn` substituted shell-quoted.

use std::collections::BTreeMap;
use std::path::Path;

use crate::identity::JobUser;
use crate::pinning::PinPlan;
use crate::spec::ValidSpec;
use crate::subst::{substitute_command, substitute_literal};

/// Variables of the executor's environment never passed to tasks.
pub const PRIVATE_VARS: &[&str] = &["MESOS_EXECUTOR_AUTHENTICATION_TOKEN"];

/// Parts of variable names (compared in upper case) that mark a credential.
pub const PRIVATE_MARKERS: &[&str] = &[
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "CREDENTIAL",
    "PRIVATE_KEY",
    "API_KEY",
    "ACCESS_KEY",
];

/// Whether a variable of the executor's environment must not reach a task.
pub fn is_private(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    PRIVATE_VARS.contains(&name) || PRIVATE_MARKERS.iter().any(|m| upper.contains(m))
}

/// The task's variables: `RETZ_*`, and `PORT0`.. for its ports.
pub fn retz_vars(
    task_id: &str,
    spec: &ValidSpec,
    plan: &PinPlan,
    app_dir: &Path,
) -> BTreeMap<String, String> {
    fn list(l: Option<&impl ToString>) -> String {
        l.map(ToString::to_string).unwrap_or_default()
    }
    let ports = &spec.spec.ports;
    let mut vars = BTreeMap::from([
        ("RETZ_CPU".into(), spec.spec.cpus.to_string()),
        ("RETZ_MEM".into(), spec.spec.mem_mb.to_string()),
        ("RETZ_GPU".into(), spec.spec.gpus.to_string()),
        ("RETZ_CPUSET".into(), list(plan.cpus.as_ref())),
        ("RETZ_NUMA_NODES".into(), list(plan.mems.as_ref())),
        ("RETZ_PVNAME".into(), app_dir.display().to_string()),
        (
            "RETZ_JOB_ID".into(),
            spec.spec.job_id.map(|j| j.to_string()).unwrap_or_default(),
        ),
        ("RETZ_TASK_ID".into(), task_id.to_owned()),
        (
            "RETZ_PORTS".into(),
            ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(","),
        ),
    ]);
    for (i, port) in ports.iter().enumerate() {
        vars.insert(format!("PORT{i}"), port.to_string());
    }
    if let Some(visible) = visible_gpus(spec) {
        vars.insert("CUDA_VISIBLE_DEVICES".into(), visible.clone());
        vars.insert("NVIDIA_VISIBLE_DEVICES".into(), visible);
    }
    vars
}

/// The value of `CUDA_VISIBLE_DEVICES`: the granted ids comma-separated, empty without
/// GPUs, `None` when GPUs are granted by count only (which devices is not known here).
pub fn visible_gpus(spec: &ValidSpec) -> Option<String> {
    match &spec.spec.gpu_ids {
        Some(ids) => Some(
            ids.iter()
                .map(|g| g.to_string())
                .collect::<Vec<_>>()
                .join(","),
        ),
        None if spec.spec.gpus == 0 => Some(String::new()),
        None => None,
    }
}

/// The complete environment of a task run as `user`.
pub fn environment(
    base: &[(String, String)],
    user: Option<&JobUser>,
    spec: &ValidSpec,
    vars: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let mut env: BTreeMap<String, String> = base
        .iter()
        .filter(|(k, _)| !is_private(k))
        .cloned()
        .collect();
    if let Some(user) = user {
        env.insert("HOME".into(), user.home.display().to_string());
        env.insert("USER".into(), user.name.clone());
        env.insert("LOGNAME".into(), user.name.clone());
    }
    for (k, v) in &spec.spec.env {
        env.insert(k.clone(), substitute_literal(v, vars));
    }
    for (k, v) in vars {
        env.insert(k.clone(), v.clone());
    }
    env.into_iter().collect()
}

/// `argv` of a task: `sh -c <command with $RETZ_* substituted>`.
pub fn argv(spec: &ValidSpec, vars: &BTreeMap<String, String>) -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        substitute_command(&spec.spec.command, vars),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::TaskSpec;
    use retz_placement::AffinityPolicy;

    fn spec() -> ValidSpec {
        TaskSpec {
            command: "m3bp --threads $RETZ_CPU --id ${RETZ_TASK_ID}".into(),
            env: BTreeMap::from([
                ("ARGS".into(), "thread.max=$RETZ_CPU $(x) `y`".into()),
                ("RETZ_CPU".into(), "99".into()),
            ]),
            cpus: 4,
            mem_mb: 2048,
            gpus: 1,
            gpu_ids: None,
            cpuset: Some("8-11".parse().unwrap()),
            mem_nodes: Some("1".parse().unwrap()),
            affinity: AffinityPolicy::NumaStrict,
            mem_policy: None,
            pin_required: false,
            job_id: Some(42),
            app: Some("a".into()),
            ports: Vec::new(),
            user: None,
        }
        .validate()
        .unwrap()
    }

    #[test]
    fn vars_env_and_argv() {
        let spec = spec();
        let plan = PinPlan {
            cpus: Some("8-11".parse().unwrap()),
            mems: Some("1".parse().unwrap()),
            ..PinPlan::default()
        };
        let vars = retz_vars("t 1", &spec, &plan, Path::new("/sb/app/a"));
        let get = |k: &str| vars.get(k).map(String::as_str);
        assert_eq!(get("RETZ_CPU"), Some("4"));
        assert_eq!(get("RETZ_MEM"), Some("2048"));
        assert_eq!(get("RETZ_GPU"), Some("1"));
        assert_eq!(get("RETZ_CPUSET"), Some("8-11"));
        assert_eq!(get("RETZ_NUMA_NODES"), Some("1"));
        assert_eq!(get("RETZ_PVNAME"), Some("/sb/app/a"));
        assert_eq!(get("RETZ_JOB_ID"), Some("42"));
        assert_eq!(get("RETZ_TASK_ID"), Some("t 1"));

        let base: Vec<(String, String)> = [
            ("PATH", "/bin"),
            ("MESOS_EXECUTOR_AUTHENTICATION_TOKEN", "secret"),
            ("MESOS_JWT_SECRET_KEY", "k"),
            ("MESOS_CREDENTIALS", "/etc/mesos/creds"),
            ("AWS_SESSION_token", "t"),
            ("PGPASSWORD", "p"),
            ("HOME", "/root"),
            ("USER", "root"),
            ("MESOS_SANDBOX", "/sb"),
            ("ARGS", "from-executor"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let user = JobUser {
            name: "nobody".into(),
            uid: 65534,
            gid: 65534,
            groups: vec![65534],
            home: "/nonexistent".into(),
            switch: true,
        };
        let env: BTreeMap<_, _> = environment(&base, Some(&user), &spec, &vars)
            .into_iter()
            .collect();
        assert_eq!(env["PATH"], "/bin");
        assert_eq!(env["MESOS_SANDBOX"], "/sb");
        for secret in [
            "MESOS_EXECUTOR_AUTHENTICATION_TOKEN",
            "MESOS_JWT_SECRET_KEY",
            "MESOS_CREDENTIALS",
            "AWS_SESSION_token",
            "PGPASSWORD",
        ] {
            assert!(!env.contains_key(secret), "{secret} leaked");
        }
        assert!(env.values().all(|v| v != "secret"));
        assert_eq!(env["HOME"], "/nonexistent");
        assert_eq!(env["USER"], "nobody");
        assert_eq!(env["LOGNAME"], "nobody");
        assert_eq!(
            env["ARGS"], "thread.max=4 $(x) `y`",
            "literal, spec wins over base"
        );
        assert_eq!(env["RETZ_CPU"], "4", "RETZ_* cannot be overridden");

        assert_eq!(
            argv(&spec, &vars),
            vec!["sh", "-c", "m3bp --threads 4 --id 't 1'"]
        );
    }

    #[test]
    fn unpinned_tasks_export_empty_lists() {
        let plan = PinPlan::default();
        let vars = retz_vars("t", &spec(), &plan, Path::new("/x"));
        assert_eq!(vars["RETZ_CPUSET"], "");
        assert_eq!(vars["RETZ_NUMA_NODES"], "");
        assert_eq!(vars["RETZ_PORTS"], "");
        assert!(!vars.contains_key("PORT0"), "no ports, no PORTn");
    }

    #[test]
    fn granted_gpus_are_the_visible_devices() {
        let mut s = spec().spec;
        s.gpus = 3;
        s.gpu_ids = Some("1-2,7".parse().unwrap());
        s.env = BTreeMap::from([("CUDA_VISIBLE_DEVICES".into(), "0-15".into())]);
        let spec = s.validate().unwrap();
        let vars = retz_vars("t", &spec, &PinPlan::default(), Path::new("/x"));
        assert_eq!(vars["RETZ_GPU"], "3");
        assert_eq!(
            vars["CUDA_VISIBLE_DEVICES"], "1,2,7",
            "comma list, no ranges"
        );
        assert_eq!(vars["NVIDIA_VISIBLE_DEVICES"], "1,2,7");
        let env: BTreeMap<_, _> = environment(&[], None, &spec, &vars).into_iter().collect();
        assert_eq!(
            env["CUDA_VISIBLE_DEVICES"], "1,2,7",
            "a spec cannot widen it"
        );

        // No GPU on an agent naming its GPUs, or no GPU at all: none visible.
        for ids in [Some(retz_placement::GpuSet::new()), None] {
            let mut s = spec.spec.clone();
            s.gpus = 0;
            s.gpu_ids = ids;
            s.env.clear();
            let spec = s.validate().unwrap();
            let vars = retz_vars("t", &spec, &PinPlan::default(), Path::new("/x"));
            assert_eq!(vars["CUDA_VISIBLE_DEVICES"], "");
            assert_eq!(vars["NVIDIA_VISIBLE_DEVICES"], "");
            assert_eq!(vars["RETZ_GPU"], "0");
        }

        // Granted by count only: which devices is unknown, so the executor's own value
        // (if any) is left alone.
        let mut s = spec.spec;
        s.gpus = 2;
        s.gpu_ids = None;
        s.env.clear();
        let spec = s.validate().unwrap();
        let vars = retz_vars("t", &spec, &PinPlan::default(), Path::new("/x"));
        assert!(!vars.contains_key("CUDA_VISIBLE_DEVICES"));
        let base = vec![("CUDA_VISIBLE_DEVICES".to_owned(), "0,1".to_owned())];
        let env: BTreeMap<_, _> = environment(&base, None, &spec, &vars).into_iter().collect();
        assert_eq!(env["CUDA_VISIBLE_DEVICES"], "0,1");
    }

    #[test]
    fn ports_are_exported_in_order_and_substituted() {
        let mut s = spec().spec;
        s.ports = vec![31007, 31002, 31003];
        s.command = "serve --port $PORT0 --admin ${PORT1} --all $RETZ_PORTS $PORT3 $PORT10".into();
        s.env = BTreeMap::from([
            ("URL".into(), "http://h:$PORT2/x".into()),
            ("PORT0".into(), "1".into()),
        ]);
        let spec = s.validate().unwrap();
        let vars = retz_vars("t", &spec, &PinPlan::default(), Path::new("/x"));
        assert_eq!(vars["PORT0"], "31007");
        assert_eq!(vars["PORT1"], "31002");
        assert_eq!(vars["PORT2"], "31003");
        assert!(!vars.contains_key("PORT3"));
        assert_eq!(vars["RETZ_PORTS"], "31007,31002,31003");
        let env: BTreeMap<_, _> = environment(&[], None, &spec, &vars).into_iter().collect();
        assert_eq!(env["URL"], "http://h:31003/x");
        assert_eq!(env["PORT0"], "31007", "PORTn cannot be overridden");
        assert_eq!(
            argv(&spec, &vars)[2],
            "serve --port 31007 --admin 31002 --all 31007,31002,31003 $PORT3 $PORT10",
            "unknown PORTn stay as written"
        );
    }
}
