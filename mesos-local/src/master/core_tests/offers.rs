//! Allocation and offers: multi-role offers, DECLINE filters, SUPPRESS/REVIVE, offer
//! timeouts, offering freed resources at once, and the bookkeeping invariants (proptest).

use std::time::Duration;

use proptest::prelude::*;
use retz_proto::mesos::{
    AgentId, ExecutorId, Filters, FrameworkId, Offer, TaskState, framework_info,
};
use retz_proto::scheduler::call;

use crate::master::agent_link::AgentReport;
use crate::master::core::CallOutcome;

use super::support::*;

#[test]
fn multi_role_offers_carry_allocation_info() {
    let (mut c, now) = core();
    c.add_agent(FakeAgent::new("M-S0", 4.0, 1024.0, (0, 3)), now)
        .unwrap();
    let mut info = framework_info(&[
        framework_info::capability::Type::MultiRole,
        framework_info::capability::Type::ReservationRefinement,
    ]);
    info.roles = vec!["batch".into()];
    let mut s = subscribe(&mut c, info, now);
    let o = s.offers().remove(0);
    assert_eq!(o.allocation_info.unwrap().role.as_deref(), Some("batch"));
    assert!(o.resources.iter().all(|r| r.role.is_none()));
    assert!(
        o.resources
            .iter()
            .all(|r| r.allocation_info.as_ref().unwrap().role.as_deref() == Some("batch"))
    );
}

#[test]
fn decline_filters_until_refuse_seconds_pass_and_revive_clears() {
    let (mut c, now) = core();
    c.add_agent(FakeAgent::new("M-S0", 4.0, 1024.0, (0, 3)), now)
        .unwrap();
    c.add_agent(FakeAgent::new("M-S1", 4.0, 1024.0, (0, 3)), now)
        .unwrap();
    let mut s = subscribe(&mut c, framework_info(&[]), now);
    let offers = s.offers();
    assert_eq!(offers.len(), 2);
    let mut d = s.call(call::Type::Decline);
    d.decline = Some(call::Decline {
        offer_ids: vec![offers[0].id.clone()],
        filters: Some(Filters {
            refuse_seconds: Some(10.0),
        }),
    });
    assert_eq!(run(&mut c, &s, d, now), Ok(CallOutcome::Accepted));
    c.allocate(now + Duration::from_secs(5));
    assert!(s.offers().is_empty(), "filtered for 10 s");
    c.allocate(now + Duration::from_secs(11));
    let again = s.offers();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].agent_id, offers[0].agent_id);
    // Decline with a long filter, then REVIVE clears it at once.
    let mut d = s.call(call::Type::Decline);
    d.decline = Some(call::Decline {
        offer_ids: vec![again[0].id.clone()],
        filters: Some(Filters {
            refuse_seconds: Some(1000.0),
        }),
    });
    run(&mut c, &s, d, now).unwrap();
    c.allocate(now + Duration::from_secs(12));
    assert!(s.offers().is_empty());
    run(
        &mut c,
        &s,
        s.call(call::Type::Revive),
        now + Duration::from_secs(12),
    )
    .unwrap();
    assert_eq!(s.offers().len(), 1);
    c.check_invariants().unwrap();
}

#[test]
fn suppress_stops_offers_until_revive() {
    let (mut c, now) = core();
    let mut s = subscribe(&mut c, framework_info(&[]), now);
    run(&mut c, &s, s.call(call::Type::Suppress), now).unwrap();
    c.add_agent(FakeAgent::new("M-S0", 4.0, 1024.0, (0, 3)), now)
        .unwrap();
    c.allocate(now);
    assert!(s.offers().is_empty());
    run(&mut c, &s, s.call(call::Type::Revive), now).unwrap();
    assert_eq!(s.offers().len(), 1);
}

#[test]
fn offer_timeout_rescinds() {
    let (mut c, now) = core();
    c.config.offer_timeout = Some(Duration::from_secs(30));
    c.add_agent(FakeAgent::new("M-S0", 4.0, 1024.0, (0, 3)), now)
        .unwrap();
    let mut s = subscribe(&mut c, framework_info(&[]), now);
    let o = s.offers().remove(0);
    assert_eq!(c.next_deadline(), Some(now + Duration::from_secs(30)));
    c.on_timers(now + Duration::from_secs(30));
    assert_eq!(s.events()[0].rescind.as_ref().unwrap().offer_id, o.id);
    assert!(c.offers.is_empty());
    c.check_invariants().unwrap();
}

#[test]
fn freed_resources_are_offered_at_once_declined_ones_wait_for_their_filter() {
    let (mut c, now) = core();
    let agent = FakeAgent::new("M-S0", 1.0, 256.0, (0, 0));
    c.add_agent(agent, now).unwrap();
    let mut s = subscribe(&mut c, framework_info(&[]), now);
    let offer = s.offers().remove(0);
    let task = command_task(
        "t1",
        "M-S0",
        vec![
            scalar("cpus", 1.0),
            scalar("mem", 256.0),
            ranges("cpuids", 0, 0),
        ],
    );
    accept(
        &mut c,
        &s,
        launch(&[&offer.id.value], vec![task], Some(3600.0)),
        now,
    );
    // Nothing was freed: no round is wanted.
    assert!(!c.allocate_if_wanted(now));
    assert!(s.offers().is_empty());
    c.agent_report(agent_update(
        "M-S0",
        &s.fid,
        "t1",
        TaskState::TaskFinished,
        1,
    ));
    assert_eq!(s.updates()[0].state, TaskState::TaskFinished as i32);
    // The task's cpu comes back in an offer at the same instant, no interval passed.
    assert!(c.allocate_if_wanted(now));
    let again = s.offers();
    assert_eq!(again.len(), 1);
    let cpus = again[0]
        .resources
        .iter()
        .find(|r| r.name == "cpus")
        .unwrap();
    assert_eq!(cpus.scalar.as_ref().unwrap().value, 1.0);
    // Declined with a 10 s filter: no round until the filter expires.
    let mut d = s.call(call::Type::Decline);
    d.decline = Some(call::Decline {
        offer_ids: vec![again[0].id.clone()],
        filters: Some(Filters {
            refuse_seconds: Some(10.0),
        }),
    });
    run(&mut c, &s, d, now).unwrap();
    assert!(!c.allocate_if_wanted(now));
    assert!(s.offers().is_empty());
    let expiry = now + Duration::from_secs(10);
    assert_eq!(c.next_deadline(), Some(expiry));
    c.on_timers(now + Duration::from_secs(9));
    assert!(!c.allocate_if_wanted(now + Duration::from_secs(9)));
    c.on_timers(expiry);
    assert!(c.allocate_if_wanted(expiry));
    assert_eq!(s.offers().len(), 1);
    // The expired filter is gone: the timer does not fire again before the accept's
    // filter on the unused disk.
    assert!(c.next_deadline().is_some_and(|d| d > expiry));
    c.check_invariants().unwrap();
}

#[test]
fn an_executor_exit_frees_its_resources_at_once() {
    let (mut c, now) = core();
    let agent = FakeAgent::new("M-S0", 2.0, 512.0, (0, 1));
    c.add_agent(agent, now).unwrap();
    let mut s1 = subscribe(&mut c, framework_info(&[]), now);
    let offer = s1.offers().remove(0);
    let mut task = command_task("t1", "M-S0", vec![scalar("cpus", 1.0)]);
    task.command = None;
    task.executor = Some(custom_executor("e1", 1.0));
    accept(
        &mut c,
        &s1,
        launch(&[&offer.id.value], vec![task], Some(3600.0)),
        now,
    );
    let u = s1.updates();
    assert!(u.is_empty(), "{u:?}");
    assert_eq!(c.agents["M-S0"].used.scalar("cpus"), Some(2.0));
    assert!(!c.allocate_if_wanted(now));
    // A second framework gets no cpus until the first one's executor goes away.
    let mut s2 = subscribe(&mut c, framework_info(&[]), now);
    let cpus_of = |o: &Offer| {
        o.resources
            .iter()
            .find(|r| r.name == "cpus")
            .map_or(0.0, |r| r.scalar.as_ref().unwrap().value)
    };
    assert!(s2.offers().iter().all(|o| cpus_of(o) == 0.0));
    c.agent_report(agent_update(
        "M-S0",
        &s1.fid,
        "t1",
        TaskState::TaskFailed,
        1,
    ));
    c.agent_report(AgentReport::ExecutorExited {
        agent_id: AgentId {
            value: "M-S0".into(),
        },
        framework_id: FrameworkId {
            value: s1.fid.clone(),
        },
        executor_id: ExecutorId { value: "e1".into() },
        wait_status: 0,
    });
    assert!(c.allocate_if_wanted(now));
    let mut o = s1.offers();
    o.extend(s2.offers());
    assert_eq!(o.len(), 1);
    assert_eq!(cpus_of(&o[0]), 2.0, "the freed cpus are offered at once");
    c.check_invariants().unwrap();
}

fn arb_task_cpus() -> impl Strategy<Value = Vec<(u8, u8, u8)>> {
    proptest::collection::vec((0u8..4, 1u8..30, 0u8..8), 1..20)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Whatever a framework asks for, bookkeeping stays consistent and an agent is never
    /// over-committed.
    #[test]
    fn bookkeeping_invariants_hold(steps in arb_task_cpus()) {
        let (mut c, now) = core();
        c.add_agent(FakeAgent::new("M-S0", 4.0, 1024.0, (0, 7)), now).unwrap();
        c.add_agent(FakeAgent::new("M-S1", 2.0, 512.0, (0, 3)), now).unwrap();
        let mut s = subscribe(&mut c, framework_info(&[]), now);
        let mut n = 0;
        let mut running: Vec<(String, String)> = Vec::new();
        for (action, tenths, cpu) in steps {
            c.allocate(now);
            let offers = s.offers();
            match action {
                0 | 1 => {
                    for o in offers {
                        n += 1;
                        let id = format!("t{n}");
                        let cpu = u64::from(cpu);
                        let t = command_task(&id, &o.agent_id.value, vec![
                            scalar("cpus", f64::from(tenths) / 10.0),
                            ranges("cpuids", cpu, cpu),
                        ]);
                        running.push((id, o.agent_id.value.clone()));
                        accept(&mut c, &s, launch(&[&o.id.value], vec![t], Some(0.0)), now);
                    }
                }
                2 => {
                    if let Some((id, agent)) = running.pop() {
                        c.agent_report(agent_update(&agent, &s.fid, &id, TaskState::TaskFinished, 7));
                        run(&mut c, &s, ack(&s, &agent, &id, 7), now).unwrap();
                    }
                }
                _ => {
                    let mut d = s.call(call::Type::Decline);
                    d.decline = Some(call::Decline {
                        offer_ids: offers.iter().map(|o| o.id.clone()).collect(),
                        filters: Some(Filters { refuse_seconds: Some(0.0) }),
                    });
                    run(&mut c, &s, d, now).unwrap();
                }
            }
            s.updates();
            prop_assert_eq!(c.check_invariants(), Ok(()));
        }
    }
}
