//! Property tests: protobuf <-> Mesos JSON round trips for representative messages, and
//! RecordIO framing independent of chunking.

use std::collections::BTreeMap;

use bytes::BytesMut;
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use retz_proto::json::{self, MesosJson};
use retz_proto::mesos::{
    self, Attribute, CommandInfo, Environment, ExecutorInfo, FrameworkInfo, Label, Labels, Offer,
    Resource, TaskInfo, TaskStatus, offer, resource, value,
};
use retz_proto::recordio::{RecordDecoder, decode_all, encode_record};
use retz_proto::{executor, scheduler};

// ------------------------------------------------------------------ strategies

fn id() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9-]{1,24}"
}

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,24}"
}

fn finite() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("finite", |f| f.is_finite()),
        (0u32..100_000).prop_map(|n| f64::from(n) / 1000.0),
        Just(0.0),
        Just(-0.0),
    ]
}

fn any_double() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => finite(),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => Just(f64::NAN),
    ]
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..max)
}

fn labels() -> impl Strategy<Value = Labels> {
    vec((text(), option::of(text())), 0..3).prop_map(|kv| Labels {
        labels: kv
            .into_iter()
            .map(|(key, value)| Label { key, value })
            .collect(),
    })
}

fn ranges() -> impl Strategy<Value = value::Ranges> {
    vec((any::<u64>(), any::<u64>()), 0..6).prop_map(|rs| value::Ranges {
        range: rs
            .into_iter()
            .map(|(a, b)| value::Range {
                begin: a.min(b),
                end: a.max(b),
            })
            .collect(),
    })
}

fn set() -> impl Strategy<Value = value::Set> {
    vec(text(), 0..5).prop_map(|item| value::Set { item })
}

fn resource() -> impl Strategy<Value = Resource> {
    let payload = prop_oneof![
        finite().prop_map(|v| (
            value::Type::Scalar,
            Some(value::Scalar { value: v }),
            None,
            None
        )),
        ranges().prop_map(|r| (value::Type::Ranges, None, Some(r), None)),
        set().prop_map(|s| (value::Type::Set, None, None, Some(s))),
    ];
    (
        id(),
        payload,
        option::of(id()),
        option::of(id()),
        vec(
            (option::of(0i32..3), option::of(id()), option::of(id())),
            0..3,
        ),
        any::<bool>(),
    )
        .prop_map(
            |(name, (ty, scalar, ranges, set), role, alloc, reservations, revocable)| Resource {
                name,
                r#type: ty as i32,
                scalar,
                ranges,
                set,
                role,
                allocation_info: alloc.map(|role| resource::AllocationInfo { role: Some(role) }),
                reservations: reservations
                    .into_iter()
                    .map(|(t, role, principal)| resource::ReservationInfo {
                        r#type: t,
                        role,
                        principal,
                        labels: None,
                    })
                    .collect(),
                revocable: revocable.then_some(resource::RevocableInfo {}),
                ..Default::default()
            },
        )
}

fn attribute() -> impl Strategy<Value = Attribute> {
    let payload = prop_oneof![
        finite().prop_map(|v| Attribute {
            r#type: value::Type::Scalar as i32,
            scalar: Some(value::Scalar { value: v }),
            ..Default::default()
        }),
        ranges().prop_map(|r| Attribute {
            r#type: value::Type::Ranges as i32,
            ranges: Some(r),
            ..Default::default()
        }),
        set().prop_map(|s| Attribute {
            r#type: value::Type::Set as i32,
            set: Some(s),
            ..Default::default()
        }),
        text().prop_map(|t| Attribute {
            r#type: value::Type::Text as i32,
            text: Some(value::Text { value: t }),
            ..Default::default()
        }),
    ];
    (id(), payload).prop_map(|(name, a)| Attribute { name, ..a })
}

fn offer() -> impl Strategy<Value = Offer> {
    (
        (id(), id(), id(), text()),
        vec(resource(), 0..8),
        vec(attribute(), 0..8),
        vec(id(), 0..3),
        option::of(id()),
        option::of((any::<i64>(), option::of(any::<i64>()))),
        option::of((id(), any::<i32>())),
    )
        .prop_map(
            |((oid, fid, aid, hostname), resources, attributes, executors, alloc, unavail, url)| {
                Offer {
                    id: mesos::OfferId { value: oid },
                    framework_id: mesos::FrameworkId { value: fid },
                    agent_id: mesos::AgentId { value: aid },
                    hostname,
                    url: url.map(|(host, port)| mesos::Url {
                        scheme: "http".into(),
                        address: mesos::Address {
                            hostname: Some(host),
                            ip: None,
                            port,
                        },
                        path: Some("/slave(1)".into()),
                        query: vec![],
                        fragment: None,
                    }),
                    resources,
                    attributes,
                    executor_ids: executors
                        .into_iter()
                        .map(|value| mesos::ExecutorId { value })
                        .collect(),
                    unavailability: unavail.map(|(start, duration)| mesos::Unavailability {
                        start: mesos::TimeInfo { nanoseconds: start },
                        duration: duration.map(|nanoseconds| mesos::DurationInfo { nanoseconds }),
                    }),
                    allocation_info: alloc
                        .map(|role| resource::AllocationInfo { role: Some(role) }),
                    domain: None,
                }
            },
        )
}

const TASK_STATES: [i32; 14] = [6, 0, 1, 8, 2, 3, 4, 7, 5, 9, 10, 11, 12, 13];

fn task_status() -> impl Strategy<Value = TaskStatus> {
    (
        (
            id(),
            prop::sample::select(&TASK_STATES[..]),
            option::of(text()),
        ),
        (
            option::of(0i32..3),
            option::of(0i32..35),
            option::of(bytes(40)),
        ),
        (option::of(id()), option::of(id()), option::of(any_double())),
        (
            option::of(prop::array::uniform16(any::<u8>())),
            option::of(any::<bool>()),
            option::of(labels()),
        ),
        option::of((option::of(any::<u32>()), vec(option::of(1i32..3), 0..3))),
    )
        .prop_map(
            |(
                (task, state, message),
                (source, reason, data),
                (agent, executor, timestamp),
                (uuid, healthy, labels),
                container,
            )| TaskStatus {
                task_id: mesos::TaskId { value: task },
                state,
                message,
                source,
                reason,
                data,
                agent_id: agent.map(|value| mesos::AgentId { value }),
                executor_id: executor.map(|value| mesos::ExecutorId { value }),
                timestamp,
                uuid: uuid.map(|u| u.to_vec()),
                healthy,
                labels,
                container_status: container.map(|(pid, ips)| mesos::ContainerStatus {
                    container_id: Some(mesos::ContainerId {
                        value: "c".into(),
                        parent: Some(Box::new(mesos::ContainerId {
                            value: "p".into(),
                            parent: None,
                        })),
                    }),
                    network_infos: vec![mesos::NetworkInfo {
                        ip_addresses: ips
                            .into_iter()
                            .map(|protocol| mesos::network_info::IpAddress {
                                protocol,
                                ip_address: Some("10.0.0.1".into()),
                            })
                            .collect(),
                        ..Default::default()
                    }],
                    cgroup_info: None,
                    executor_pid: pid,
                }),
                ..Default::default()
            },
        )
}

fn command() -> impl Strategy<Value = CommandInfo> {
    (
        option::of(text()),
        option::of(any::<bool>()),
        vec(text(), 0..3),
        vec((text(), option::of(any::<bool>())), 0..2),
        vec((id(), text()), 0..3),
    )
        .prop_map(|(value, shell, arguments, uris, env)| CommandInfo {
            value,
            shell,
            arguments,
            uris: uris
                .into_iter()
                .map(|(value, extract)| mesos::command_info::Uri {
                    value,
                    extract,
                    ..Default::default()
                })
                .collect(),
            environment: Some(Environment {
                variables: env
                    .into_iter()
                    .map(|(name, value)| mesos::environment::Variable {
                        name,
                        value: Some(value),
                        ..Default::default()
                    })
                    .collect(),
            }),
            user: None,
        })
}

fn executor_info() -> impl Strategy<Value = ExecutorInfo> {
    (
        id(),
        command(),
        vec(resource(), 0..3),
        option::of(bytes(20)),
    )
        .prop_map(|(eid, command, resources, data)| ExecutorInfo {
            r#type: Some(mesos::executor_info::Type::Custom as i32),
            executor_id: mesos::ExecutorId { value: eid },
            command: Some(command),
            resources,
            data,
            shutdown_grace_period: Some(mesos::DurationInfo {
                nanoseconds: 5_000_000_000,
            }),
            ..Default::default()
        })
}

fn task_info() -> impl Strategy<Value = TaskInfo> {
    (
        (text(), id(), id()),
        vec(resource(), 0..4),
        option::of(executor_info()),
        option::of(bytes(64)),
        btree_map(id(), finite(), 0..3),
    )
        .prop_map(
            |((name, tid, aid), resources, executor, data, limits)| TaskInfo {
                name,
                task_id: mesos::TaskId { value: tid },
                agent_id: mesos::AgentId { value: aid },
                resources,
                executor,
                data,
                limits: limits
                    .into_iter()
                    .map(|(k, v)| (k, value::Scalar { value: v }))
                    .collect(),
                kill_policy: Some(mesos::KillPolicy {
                    grace_period: Some(mesos::DurationInfo { nanoseconds: 1 }),
                }),
                ..Default::default()
            },
        )
}

fn framework_info() -> impl Strategy<Value = FrameworkInfo> {
    (
        (text(), text(), option::of(id())),
        (option::of(any_double()), option::of(any::<bool>())),
        vec(id(), 0..3),
        vec(option::of(0i32..9), 0..4),
        btree_map(id(), vec(btree_map(id(), finite(), 0..2), 0..2), 0..2),
    )
        .prop_map(
            |((user, name, fid), (failover, checkpoint), roles, caps, filters)| FrameworkInfo {
                user,
                name,
                id: fid.map(|value| mesos::FrameworkId { value }),
                failover_timeout: failover,
                checkpoint,
                roles,
                capabilities: caps
                    .into_iter()
                    .map(|r#type| mesos::framework_info::Capability { r#type })
                    .collect(),
                offer_filters: filters
                    .into_iter()
                    .map(|(role, groups)| {
                        let quantities = groups
                            .into_iter()
                            .map(|q| mesos::offer_filters::ResourceQuantities {
                                quantities: q
                                    .into_iter()
                                    .map(|(k, v)| (k, value::Scalar { value: v }))
                                    .collect::<BTreeMap<_, _>>(),
                            })
                            .collect();
                        (
                            role,
                            mesos::OfferFilters {
                                min_allocatable_resources: Some(
                                    mesos::offer_filters::MinAllocatableResources { quantities },
                                ),
                            },
                        )
                    })
                    .collect(),
                ..Default::default()
            },
        )
}

fn scheduler_call() -> impl Strategy<Value = scheduler::Call> {
    use scheduler::call;
    let fid = || id().prop_map(|value| Some(mesos::FrameworkId { value }));
    prop_oneof![
        (framework_info(), vec(id(), 0..2)).prop_map(|(fi, suppressed)| scheduler::Call {
            r#type: Some(call::Type::Subscribe as i32),
            subscribe: Some(call::Subscribe {
                framework_info: fi,
                suppressed_roles: suppressed,
            }),
            ..Default::default()
        }),
        (
            fid(),
            vec(id(), 1..3),
            vec(task_info(), 0..3),
            option::of(any_double())
        )
            .prop_map(|(framework_id, offers, tasks, refuse)| scheduler::Call {
                framework_id,
                r#type: Some(call::Type::Accept as i32),
                accept: Some(call::Accept {
                    offer_ids: offers
                        .into_iter()
                        .map(|value| mesos::OfferId { value })
                        .collect(),
                    operations: vec![offer::Operation {
                        r#type: Some(offer::operation::Type::Launch as i32),
                        launch: Some(offer::operation::Launch { task_infos: tasks }),
                        ..Default::default()
                    }],
                    filters: refuse.map(|r| mesos::Filters {
                        refuse_seconds: Some(r),
                    }),
                }),
                ..Default::default()
            }),
        (fid(), vec(id(), 0..3)).prop_map(|(framework_id, offers)| scheduler::Call {
            framework_id,
            r#type: Some(call::Type::Decline as i32),
            decline: Some(call::Decline {
                offer_ids: offers
                    .into_iter()
                    .map(|value| mesos::OfferId { value })
                    .collect(),
                filters: Some(mesos::Filters::default()),
            }),
            ..Default::default()
        }),
        (fid(), id(), id(), prop::array::uniform16(any::<u8>())).prop_map(
            |(framework_id, agent, task, uuid)| scheduler::Call {
                framework_id,
                r#type: Some(call::Type::Acknowledge as i32),
                acknowledge: Some(call::Acknowledge {
                    agent_id: mesos::AgentId { value: agent },
                    task_id: mesos::TaskId { value: task },
                    uuid: uuid.to_vec(),
                }),
                ..Default::default()
            }
        ),
        (fid(), id(), option::of(id())).prop_map(|(framework_id, task, agent)| scheduler::Call {
            framework_id,
            r#type: Some(call::Type::Kill as i32),
            kill: Some(call::Kill {
                task_id: mesos::TaskId { value: task },
                agent_id: agent.map(|value| mesos::AgentId { value }),
                kill_policy: None,
            }),
            ..Default::default()
        }),
        (fid(), vec((id(), option::of(id())), 0..4)).prop_map(|(framework_id, tasks)| {
            scheduler::Call {
                framework_id,
                r#type: Some(call::Type::Reconcile as i32),
                reconcile: Some(call::Reconcile {
                    tasks: tasks
                        .into_iter()
                        .map(|(t, a)| call::reconcile::Task {
                            task_id: mesos::TaskId { value: t },
                            agent_id: a.map(|value| mesos::AgentId { value }),
                        })
                        .collect(),
                }),
                ..Default::default()
            }
        }),
        (fid(), vec(id(), 0..3)).prop_map(|(framework_id, roles)| scheduler::Call {
            framework_id,
            r#type: Some(call::Type::Revive as i32),
            revive: Some(call::Revive { roles }),
            ..Default::default()
        }),
        fid().prop_map(|framework_id| scheduler::Call {
            framework_id,
            r#type: Some(call::Type::Teardown as i32),
            ..Default::default()
        }),
    ]
}

fn executor_event() -> impl Strategy<Value = executor::Event> {
    use executor::event;
    prop_oneof![
        (
            executor_info(),
            framework_info(),
            vec(resource(), 0..3),
            vec(attribute(), 0..3)
        )
            .prop_map(|(ei, fi, resources, attributes)| executor::Event {
                r#type: Some(event::Type::Subscribed as i32),
                subscribed: Some(event::Subscribed {
                    executor_info: ei,
                    framework_info: fi,
                    agent_info: mesos::AgentInfo {
                        hostname: "agent".into(),
                        port: Some(5051),
                        resources,
                        attributes,
                        id: Some(mesos::AgentId { value: "S0".into() }),
                        domain: None,
                    },
                    container_id: Some(mesos::ContainerId {
                        value: "c".into(),
                        parent: None,
                    }),
                }),
                ..Default::default()
            }),
        task_info().prop_map(|task| executor::Event {
            r#type: Some(event::Type::Launch as i32),
            launch: Some(event::Launch { task }),
            ..Default::default()
        }),
        vec(task_info(), 0..3).prop_map(|tasks| executor::Event {
            r#type: Some(event::Type::LaunchGroup as i32),
            launch_group: Some(event::LaunchGroup {
                task_group: mesos::TaskGroupInfo { tasks },
            }),
            ..Default::default()
        }),
        (id(), option::of(any::<i64>())).prop_map(|(task, grace)| executor::Event {
            r#type: Some(event::Type::Kill as i32),
            kill: Some(event::Kill {
                task_id: mesos::TaskId { value: task },
                kill_policy: grace.map(|nanoseconds| mesos::KillPolicy {
                    grace_period: Some(mesos::DurationInfo { nanoseconds }),
                }),
            }),
            ..Default::default()
        }),
        (id(), prop::array::uniform16(any::<u8>())).prop_map(|(task, uuid)| executor::Event {
            r#type: Some(event::Type::Acknowledged as i32),
            acknowledged: Some(event::Acknowledged {
                task_id: mesos::TaskId { value: task },
                uuid: uuid.to_vec(),
            }),
            ..Default::default()
        }),
        bytes(64).prop_map(|data| executor::Event {
            r#type: Some(event::Type::Message as i32),
            message: Some(event::Message { data }),
            ..Default::default()
        }),
        text().prop_map(|message| executor::Event {
            r#type: Some(event::Type::Error as i32),
            error: Some(event::Error { message }),
            ..Default::default()
        }),
        prop::sample::select(vec![event::Type::Shutdown, event::Type::Heartbeat]).prop_map(|t| {
            executor::Event {
                r#type: Some(t as i32),
                ..Default::default()
            }
        }),
    ]
}

// ------------------------------------------------------------------ properties

/// JSON text -> message -> JSON text is the identity on our own output, and the
/// protobuf encoding carries the same message.
fn check_round_trip<M: MesosJson + std::fmt::Debug>(msg: &M) -> Result<M, TestCaseError> {
    let text = json::to_vec(msg);
    let back: M = json::from_json(&text)
        .map_err(|e| TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&text))))?;
    let again = json::to_vec(&back);
    prop_assert_eq!(
        String::from_utf8_lossy(&again),
        String::from_utf8_lossy(&text)
    );
    let via_proto = M::decode(back.encode_to_vec().as_slice())
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(json::to_json(&via_proto), json::to_json(msg));
    let direct = M::decode(msg.encode_to_vec().as_slice())
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(json::to_json(&direct), json::to_json(msg));
    Ok(back)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn offers_round_trip_exactly(o in offer()) {
        let back = check_round_trip(&o)?;
        // No defaulted fields in an Offer: the round trip is exact.
        prop_assert_eq!(&back, &o);
        let event = scheduler::Event {
            r#type: Some(scheduler::event::Type::Offers as i32),
            offers: Some(scheduler::event::Offers { offers: vec![o] }),
            ..Default::default()
        };
        let back = check_round_trip(&event)?;
        prop_assert_eq!(back, event);
    }

    #[test]
    fn task_statuses_round_trip(s in task_status()) {
        check_round_trip(&s)?;
        let update = scheduler::Event {
            r#type: Some(scheduler::event::Type::Update as i32),
            update: Some(scheduler::event::Update { status: s }),
            ..Default::default()
        };
        check_round_trip(&update)?;
    }

    #[test]
    fn scheduler_calls_round_trip(c in scheduler_call()) {
        check_round_trip(&c)?;
    }

    #[test]
    fn executor_events_round_trip(e in executor_event()) {
        check_round_trip(&e)?;
    }

    #[test]
    fn recordio_is_independent_of_chunking(
        records in vec(vec(any::<u8>(), 1..300), 0..20),
        cuts in vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let mut stream = BytesMut::new();
        for r in &records {
            encode_record(r, &mut stream);
        }
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        points.push(0);
        points.push(stream.len());
        points.sort_unstable();

        let mut dec = RecordDecoder::new(300);
        let mut got = Vec::new();
        for w in points.windows(2) {
            dec.push(&stream[w[0]..w[1]]);
            while let Some(r) = dec.next_record().map_err(|e| TestCaseError::fail(e.to_string()))? {
                got.push(r.to_vec());
            }
        }
        prop_assert!(dec.finish().is_ok());
        prop_assert_eq!(&got, &records);

        let all = decode_all(&stream, 300).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(all.iter().map(|b| b.to_vec()).collect::<Vec<_>>(), records);
    }

    #[test]
    fn recordio_rejects_records_over_the_limit(len in 2usize..5000, max in 1usize..4000) {
        let mut stream = BytesMut::new();
        encode_record(&vec![b'x'; len], &mut stream);
        let result = decode_all(&stream, max);
        if len <= max {
            prop_assert_eq!(result.map(|r| r.len()), Ok(1));
        } else {
            let err = result.unwrap_err();
            prop_assert_eq!(err.to_string(), format!("record of {len} bytes exceeds the maximum {max}"));
        }
    }
}
