//! Framework lifecycle: SUBSCRIBE (and its errors), failover re-subscription, the failover
//! timeout, TEARDOWN, UPDATE_FRAMEWORK, and principals owning their frameworks.

use std::time::Duration;

use retz_proto::mesos::{FrameworkId, TaskState};
use retz_proto::scheduler::{call, event};

use crate::master::core::{CallError, CallOutcome};

use super::support::*;

#[test]
fn subscribe_sends_subscribed_heartbeat_and_offers() {
    let (mut c, now) = core();
    c.add_agent(FakeAgent::new("M-S0", 4.0, 1024.0, (0, 3)), now)
        .unwrap();
    let mut s = subscribe(&mut c, framework_info(&[]), now);
    assert_eq!(s.fid, "M-0000");
    let ev = s.events();
    assert_eq!(ev[0].r#type, Some(event::Type::Subscribed as i32));
    let sub = ev[0].subscribed.as_ref().unwrap();
    assert_eq!(sub.framework_id.value, "M-0000");
    assert_eq!(sub.heartbeat_interval_seconds, Some(15.0));
    assert_eq!(sub.master_info.as_ref().unwrap().id, "M");
    assert_eq!(ev[1].r#type, Some(event::Type::Heartbeat as i32));
    let offers = ev[2].offers.as_ref().unwrap();
    assert_eq!(offers.offers.len(), 1);
    let o = &offers.offers[0];
    assert_eq!(o.id.value, "M-O0");
    assert_eq!(o.agent_id.value, "M-S0");
    assert_eq!(o.hostname, "host-M-S0");
    // Old resource format: role "*", no allocation_info without MULTI_ROLE.
    assert!(o.resources.iter().all(|r| r.role.as_deref() == Some("*")));
    assert!(o.resources.iter().all(|r| r.allocation_info.is_none()));
    assert!(o.allocation_info.is_none());
    // No second offer while the first is outstanding and nothing else is free.
    c.allocate(now);
    assert!(s.offers().is_empty());
    c.check_invariants().unwrap();
    // A second framework id increments.
    let s2 = subscribe(&mut c, framework_info(&[]), now);
    assert_eq!(s2.fid, "M-0001");
}

#[test]
fn subscribe_errors_close_the_stream_with_one_error() {
    let (mut c, now) = core();
    let mut info = framework_info(&[]);
    info.roles = vec!["x".into()];
    let mut s = subscribe(&mut c, info, now);
    let ev = s.events();
    assert_eq!(ev.len(), 1);
    assert!(ev[0].error.as_ref().unwrap().message.contains("MULTI_ROLE"));
    assert!(c.frameworks.is_empty());
}

#[test]
fn failover_resubscribe_and_teardown() {
    let (mut c, now) = core();
    c.add_agent(FakeAgent::new("M-S0", 4.0, 1024.0, (0, 3)), now)
        .unwrap();
    let mut s1 = subscribe(&mut c, framework_info(&[]), now);
    assert_eq!(s1.offers().len(), 1);
    let mut info = framework_info(&[]);
    info.id = Some(FrameworkId {
        value: s1.fid.clone(),
    });
    info.user = "changed".into();
    let mut s2 = subscribe(&mut c, info.clone(), now);
    assert_eq!(s2.fid, s1.fid);
    assert_ne!(s2.stream_id, s1.stream_id);
    let old = s1.events();
    assert_eq!(
        old.last().unwrap().error.as_ref().unwrap().message,
        "Framework failed over"
    );
    // The old stream is closed (its sender dropped).
    assert!(s1.rx.try_recv().is_err());
    let ev = s2.events();
    assert_eq!(
        ev[0].subscribed.as_ref().unwrap().framework_id.value,
        s1.fid
    );
    // Outstanding offers were discarded and re-offered to the new stream.
    assert_eq!(ev.iter().filter(|e| e.offers.is_some()).count(), 1);
    assert_eq!(
        c.frameworks[&s1.fid].info.user, "u",
        "user changes are ignored"
    );
    // The old stream id is stale now.
    let r = c.handle_call(
        call::Type::Revive,
        s1.call(call::Type::Revive),
        Some(&s1.stream_id),
        now,
    );
    assert!(matches!(r, Err(CallError::BadRequest(_))));
    run(&mut c, &s2, s2.call(call::Type::Teardown), now).unwrap();
    assert!(c.frameworks.is_empty());
    let mut s3 = subscribe(&mut c, info, now);
    assert!(s3.fid.is_empty());
    let ev = s3.events();
    assert_eq!(ev.len(), 1);
    assert_eq!(
        ev[0].error.as_ref().unwrap().message,
        "Framework has been removed"
    );
    c.check_invariants().unwrap();
}

#[test]
fn failover_timeout_removes_the_framework_and_kills_tasks() {
    let (mut c, now) = core();
    let agent = FakeAgent::new("M-S0", 4.0, 1024.0, (0, 3));
    c.add_agent(agent.clone(), now).unwrap();
    let mut s = subscribe(&mut c, framework_info(&[]), now);
    let o = s.offers().remove(0);
    accept(
        &mut c,
        &s,
        launch(
            &[&o.id.value],
            vec![command_task("t", "M-S0", vec![scalar("cpus", 1.0)])],
            None,
        ),
        now,
    );
    c.stream_closed(&s.fid, &s.stream_id, now);
    assert!(!c.frameworks[&s.fid].connected());
    assert_eq!(c.next_deadline(), Some(now + Duration::from_secs(60)));
    c.on_timers(now + Duration::from_secs(59));
    assert!(c.frameworks.contains_key(&s.fid));
    c.on_timers(now + Duration::from_secs(60));
    assert!(!c.frameworks.contains_key(&s.fid));
    assert!(agent.calls().contains(&format!("teardown {}", s.fid)));
    assert!(c.agents["M-S0"].used.is_empty());
    let done = &c.completed_frameworks[0].completed_tasks[0];
    assert_eq!(done.state, TaskState::TaskKilled);
    c.check_invariants().unwrap();
}

#[test]
fn update_framework_rules() {
    let (mut c, now) = core();
    let s = subscribe(&mut c, framework_info(&[]), now);
    let mut info = framework_info(&[]);
    info.id = Some(FrameworkId {
        value: s.fid.clone(),
    });
    info.name = "renamed".into();
    let mut u = s.call(call::Type::UpdateFramework);
    u.update_framework = Some(call::UpdateFramework {
        framework_info: info.clone(),
        suppressed_roles: vec![],
    });
    assert_eq!(run(&mut c, &s, u.clone(), now), Ok(CallOutcome::Ok));
    assert_eq!(c.frameworks[&s.fid].info.name, "renamed");
    info.user = "other".into();
    u.update_framework.as_mut().unwrap().framework_info = info;
    assert!(matches!(run(&mut c, &s, u, now), Err(CallError::BadRequest(m)) if m.contains("user")));
}

#[test]
fn principals_own_their_frameworks() {
    let (mut c, now) = core();
    let mut info = framework_info(&[]);
    info.principal = Some("alice".into());
    // Without credentials nothing is checked.
    assert_eq!(
        c.authorize_subscribe(&subscribe_call(info.clone()), None),
        Ok(())
    );
    // FrameworkInfo.principal must be the authenticated one (absent is not).
    assert_eq!(
        c.authorize_subscribe(&subscribe_call(info.clone()), Some("alice")),
        Ok(())
    );
    let e = c
        .authorize_subscribe(&subscribe_call(info.clone()), Some("bob"))
        .unwrap_err();
    assert!(e.contains("'bob' does not match principal 'alice'"), "{e}");
    let mut anonymous = info.clone();
    anonymous.principal = None;
    assert!(
        c.authorize_subscribe(&subscribe_call(anonymous), Some("alice"))
            .is_err()
    );
    let s = subscribe(&mut c, info.clone(), now);
    // Bob cannot take alice's framework over by re-subscribing with its id, even when he
    // claims his own principal.
    let mut hijack = info;
    hijack.id = Some(FrameworkId {
        value: s.fid.clone(),
    });
    hijack.principal = Some("bob".into());
    let e = c
        .authorize_subscribe(&subscribe_call(hijack.clone()), Some("bob"))
        .unwrap_err();
    assert!(e.contains("belongs to principal 'alice'"), "{e}");
    hijack.principal = Some("alice".into());
    assert_eq!(
        c.authorize_subscribe(&subscribe_call(hijack), Some("alice")),
        Ok(())
    );
    // Other calls: only alice may act on alice's framework; an unknown framework is left
    // to the call's own 400.
    let kill = s.call(call::Type::Kill);
    assert_eq!(c.authorize_call(&kill, Some("alice")), Ok(()));
    assert_eq!(c.authorize_call(&kill, None), Ok(()));
    assert!(matches!(
        c.authorize_call(&kill, Some("bob")),
        Err(CallError::Forbidden(m)) if m.contains("'bob' does not match principal 'alice'")
    ));
    let mut unknown = kill;
    unknown.framework_id = Some(FrameworkId {
        value: "nope".into(),
    });
    assert_eq!(c.authorize_call(&unknown, Some("bob")), Ok(()));
}
