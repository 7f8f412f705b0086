//! The scheduler client against the real embedded master (`retz_mesos_local`) started
//! with credentials, as `retz-server --local` starts it: the right principal and secret
//! subscribe; a wrong secret or none at all get 401, reported once as the master refusing
//! the framework's credentials, and the client stops instead of retrying.
//!
//! Needs the embedded master's framework authentication (`ClusterConfig::credentials`).

use std::time::Duration;

use retz_mesos_local::cluster::{AgentSpec, ClusterConfig, LocalCluster};
use retz_proto::credentials::{Credential, Credentials};
use retz_proto::mesos::FrameworkInfo;
use retz_scheduler::mesos::{SchedulerConfig, SchedulerEvent, start};
use retz_topology::TopologySource;

const HANG_GUARD: Duration = Duration::from_secs(30);

async fn cluster(dir: &std::path::Path, credential: &Credential) -> LocalCluster {
    let mut cc = ClusterConfig::new(dir.join("work"));
    cc.master.bind = "127.0.0.1:0".parse().unwrap();
    cc.master.allocation_interval = Duration::from_millis(100);
    cc.agents = vec![AgentSpec::new(TopologySource::Synthetic(
        "pack:1 numa:1 core:1 pu:1".into(),
    ))];
    cc.credentials = Some(Credentials::single(credential.clone()));
    LocalCluster::start(cc).await.unwrap()
}

/// The first event that is not a Disconnected (a refused SUBSCRIBE ends in Error).
async fn first_event(
    cluster: &LocalCluster,
    credential: Option<Credential>,
) -> (SchedulerEvent, retz_scheduler::mesos::SchedulerDriver) {
    let info = FrameworkInfo {
        user: "nobody".into(),
        name: "auth test".into(),
        failover_timeout: Some(60.0),
        ..FrameworkInfo::default()
    };
    let mut cfg = SchedulerConfig::new(vec![cluster.master_addr().to_string()], info);
    cfg.credential = credential;
    cfg.backoff_initial = Duration::from_millis(20);
    let (driver, mut rx) = start(cfg).unwrap();
    let event = tokio::time::timeout(HANG_GUARD, async {
        loop {
            match rx.recv().await.expect("events end only after Error") {
                SchedulerEvent::Disconnected { .. } => continue,
                e => return e,
            }
        }
    })
    .await
    .expect("an event from the embedded master");
    (event, driver)
}

#[tokio::test]
async fn the_embedded_master_admits_only_the_framework_credential() {
    let dir = tempfile::tempdir().unwrap();
    let right = Credential::new("retz", "5f0c1d3e9a8b7c6d5e4f3a2b1c0d9e8f").unwrap();
    let cluster = cluster(dir.path(), &right).await;

    let (event, driver) = first_event(&cluster, Some(right.clone())).await;
    assert!(
        matches!(event, SchedulerEvent::Subscribed { .. }),
        "the right credential subscribes: {event:?}"
    );
    driver.stop();

    let wrong = Credential::new("retz", "not-the-secret").unwrap();
    let (event, driver) = first_event(&cluster, Some(wrong)).await;
    match event {
        SchedulerEvent::Error(msg) => assert!(
            msg.contains("the master refused the framework's credentials (principal retz)")
                && msg.contains("401")
                && !msg.contains("not-the-secret"),
            "{msg}"
        ),
        other => panic!("a wrong secret must be refused, got {other:?}"),
    }
    tokio::time::timeout(HANG_GUARD, driver.stopped())
        .await
        .expect("the client stops: no retry loop");

    let (event, driver) = first_event(&cluster, None).await;
    match event {
        SchedulerEvent::Error(msg) => assert!(
            msg.contains("requires framework authentication") && msg.contains("401"),
            "{msg}"
        ),
        other => panic!("no credential must be refused, got {other:?}"),
    }
    assert!(driver.is_stopped());
    cluster.shutdown().await;
}
