//! A stored [`Job`] as the placement engine sees it: [`job_request`].
//!
//! The affinity policy is the job's, else its application's, else the cluster's; the
//! cache policy the job's, else the cluster's (`[planner] cache`); the submit time is the job's `scheduled` time (the packer ages jobs by it).

use retz_placement::JobRequest;
use retz_proto::api::{Application, Job, TIME_FORMAT};

use crate::config::PlannerSection;

/// The placement request of `job` (its application `app`, when loaded).
pub fn job_request(
    job: &Job,
    app: Option<&Application>,
    cfg: &PlannerSection,
    now_unix: u64,
) -> JobRequest {
    let policy = job
        .affinity
        .or_else(|| app.and_then(|a| a.affinity))
        .unwrap_or(cfg.affinity);
    JobRequest {
        job_id: job.id,
        cpus: job.resources.cpu,
        mem_mb: job.resources.mem_mb,
        gpus: job.resources.gpu,
        policy,
        numanodes: job.resources.nodes,
        smt: cfg.smt,
        cache: job.cache.unwrap_or(cfg.cache),
        priority: job.priority,
        submitted_at: job
            .scheduled
            .as_deref()
            .and_then(unix_seconds)
            .unwrap_or(now_unix),
    }
}

/// Seconds since the epoch of a job time ([`TIME_FORMAT`] or RFC 3339).
pub fn unix_seconds(t: &str) -> Option<u64> {
    let parsed = chrono::DateTime::parse_from_str(t, TIME_FORMAT)
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(t))
        .ok()?;
    u64::try_from(parsed.timestamp()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use retz_placement::{AffinityPolicy, CachePolicy, ResourceRange};

    #[test]
    fn policy_falls_back_from_job_to_app_to_cluster() {
        let cfg = PlannerSection::default();
        let mut job = Job::new("a", "true");
        job.id = 7;
        job.resources.cpu = ResourceRange::between(2, 4);
        job.scheduled = Some("2026-11-22T07:30:00.000+00:00".into());
        let mut app = Application::new("a", "k");
        let r = job_request(&job, Some(&app), &cfg, 5);
        assert_eq!(r.policy, AffinityPolicy::NumaPrefer);
        assert_eq!(r.cpus, ResourceRange::between(2, 4));
        assert_eq!(r.submitted_at, 1_795_332_600);
        app.affinity = Some(AffinityPolicy::Spread);
        assert_eq!(
            job_request(&job, Some(&app), &cfg, 5).policy,
            AffinityPolicy::Spread
        );
        job.affinity = Some(AffinityPolicy::NumaStrict);
        assert_eq!(
            job_request(&job, Some(&app), &cfg, 5).policy,
            AffinityPolicy::NumaStrict
        );
        job.scheduled = Some("garbage".into());
        assert_eq!(job_request(&job, None, &cfg, 5).submitted_at, 5);
    }

    #[test]
    fn cache_policy_is_the_jobs_else_the_clusters() {
        let mut cfg = PlannerSection::default();
        let mut job = Job::new("a", "true");
        assert_eq!(job_request(&job, None, &cfg, 0).cache, CachePolicy::Pack);
        cfg.cache = CachePolicy::Spread;
        assert_eq!(job_request(&job, None, &cfg, 0).cache, CachePolicy::Spread);
        job.cache = Some(CachePolicy::Pack);
        assert_eq!(job_request(&job, None, &cfg, 0).cache, CachePolicy::Pack);
    }
}
