//! The Mesos scheduler client's calls: stream id, framework id and payloads of every call,
//! acknowledgements of updates with a uuid, and typed errors for rejected calls.

mod mesos_support;

use retz_proto::mesos::{
    AgentId, DurationInfo, ExecutorId, ExecutorInfo, KillPolicy, OfferId, TaskId, TaskInfo,
};
use retz_proto::scheduler::call;
use retz_scheduler::mesos::{CallError, ContentType, SchedulerEvent, calls};

use mesos_support::{
    BOTH, Master, Received, next_event, status, subscribed_client, update, within,
};

#[tokio::test]
async fn calls_carry_stream_id_framework_id_and_payloads() {
    for ct in BOTH {
        let mut master = Master::start().await;
        let (driver, _rx, _feed) = subscribed_client(&mut master, ct).await;
        let agent = || AgentId {
            value: "agent-S1".into(),
        };
        let executor = || ExecutorId {
            value: "retz-executor".into(),
        };
        let task = |id: &str| TaskInfo {
            name: id.into(),
            task_id: TaskId { value: id.into() },
            agent_id: agent(),
            ..TaskInfo::default()
        };
        let o1 = || {
            vec![OfferId {
                value: "o-1".into(),
            }]
        };

        driver
            .launch(o1(), vec![task("t-1")], Some(calls::refuse_for(2.0)))
            .await
            .unwrap();
        let executor_info = ExecutorInfo {
            executor_id: executor(),
            ..ExecutorInfo::default()
        };
        driver
            .launch_group(
                o1(),
                executor_info.clone(),
                vec![task("t-2"), task("t-3")],
                None,
            )
            .await
            .unwrap();
        driver.decline(o1(), Some(30.0)).await.unwrap();
        driver.revive(vec!["batch".into()]).await.unwrap();
        driver.suppress(vec![]).await.unwrap();
        let policy = KillPolicy {
            grace_period: Some(DurationInfo {
                nanoseconds: 3_000_000_000,
            }),
        };
        driver
            .kill(
                TaskId {
                    value: "t-1".into(),
                },
                Some(agent()),
                Some(policy),
            )
            .await
            .unwrap();
        driver.shutdown(executor(), agent()).await.unwrap();
        driver
            .reconcile(vec![call::reconcile::Task {
                task_id: TaskId {
                    value: "t-1".into(),
                },
                agent_id: Some(agent()),
            }])
            .await
            .unwrap();
        driver
            .message(agent(), executor(), b"\x00\xffhello".to_vec())
            .await
            .unwrap();
        driver.teardown().await.unwrap();

        let mut got = Vec::new();
        for _ in 0..10 {
            let r = master.next_call().await;
            assert_eq!(
                r.stream_id.as_deref(),
                Some("stream-1"),
                "{ct}: {:?}",
                r.kind()
            );
            assert_eq!(r.content_type.as_deref(), Some(ct.mime()));
            assert_eq!(r.call.framework_id.as_ref().unwrap().value, "fw-1");
            got.push(r);
        }
        let kinds: Vec<_> = got.iter().map(Received::kind).collect();
        use call::Type as T;
        assert_eq!(
            kinds,
            [
                T::Accept,
                T::Accept,
                T::Decline,
                T::Revive,
                T::Suppress,
                T::Kill,
                T::Shutdown,
                T::Reconcile,
                T::Message,
                T::Teardown
            ]
        );
        let c = |i: usize| got[i].call.clone();
        let accept = c(0).accept.unwrap();
        assert_eq!(accept.offer_ids, o1());
        assert_eq!(accept.filters.unwrap().refuse_seconds, Some(2.0));
        assert_eq!(accept.operations, vec![calls::launch(vec![task("t-1")])]);
        let group = c(1)
            .accept
            .unwrap()
            .operations
            .remove(0)
            .launch_group
            .unwrap();
        assert_eq!(group.executor, executor_info);
        assert_eq!(group.task_group.tasks, vec![task("t-2"), task("t-3")]);
        assert_eq!(
            c(2).decline.unwrap().filters.unwrap().refuse_seconds,
            Some(30.0)
        );
        assert_eq!(c(3).revive.unwrap().roles, ["batch"]);
        assert!(c(4).suppress.unwrap().roles.is_empty());
        let kill = c(5).kill.unwrap();
        assert_eq!(
            (kill.task_id.value.as_str(), kill.kill_policy),
            ("t-1", Some(policy))
        );
        assert_eq!(c(6).shutdown.unwrap().executor_id, executor());
        assert_eq!(c(7).reconcile.unwrap().tasks[0].task_id.value, "t-1");
        assert_eq!(c(8).message.unwrap().data, b"\x00\xffhello");

        // TEARDOWN stops the client.
        within("stop after teardown", driver.stopped()).await;
        assert!(matches!(
            driver.decline(o1(), None).await,
            Err(CallError::Stopped { call: "DECLINE" })
        ));
    }
}

#[tokio::test]
async fn acknowledges_only_updates_with_a_uuid_and_echoes_its_bytes() {
    for ct in BOTH {
        let mut master = Master::start().await;
        let (driver, mut rx, feed) = subscribed_client(&mut master, ct).await;
        // A reconciliation answer (no uuid), then an agent update with a 16-byte uuid
        // holding bytes that are not valid UTF-8.
        let uuid: Vec<u8> = vec![
            0xd4, 0x0f, 0x3f, 0x3e, 0xbb, 0xe3, 0x44, 0xaf, 0xa2, 0x30, 0x4c, 0xb1, 0xea, 0xe7,
            0x2f, 0x67,
        ];
        feed.send(&[
            update(status("t-0", None)),
            update(status("t-1", Some(uuid.clone()))),
        ]);
        for _ in 0..2 {
            let SchedulerEvent::Update(s) = next_event(&mut rx).await else {
                panic!("expected Update");
            };
            driver.acknowledge(&s).await.unwrap();
        }
        // A marker call: everything the master got before it is what acknowledge sent.
        driver.reconcile(vec![]).await.unwrap();

        let ack = master.next_call().await;
        assert_eq!(
            ack.kind(),
            call::Type::Acknowledge,
            "{ct}: the uuid-less update was acknowledged"
        );
        let a = ack.call.acknowledge.unwrap();
        assert_eq!(a.uuid, uuid);
        assert_eq!(a.task_id.value, "t-1");
        assert_eq!(a.agent_id.value, "agent-S1");
        assert_eq!(ack.stream_id.as_deref(), Some("stream-1"));
        assert_eq!(master.next_call().await.kind(), call::Type::Reconcile);
        master.no_more_calls();

        // A uuid without an agent id cannot be echoed: a clear error, nothing sent.
        let mut bad = status("t-2", Some(uuid.clone()));
        bad.agent_id = None;
        let err = driver.acknowledge(&bad).await.unwrap_err();
        assert!(matches!(err, CallError::InvalidAcknowledge(_)), "{err}");
        assert!(err.to_string().contains("t-2"), "{err}");
        driver.stop();
    }
}

#[tokio::test]
async fn call_rejections_are_typed_errors() {
    let mut master = Master::start().await;
    let (driver, _rx, _feed) = subscribed_client(&mut master, ContentType::Protobuf).await;
    let o = || {
        vec![OfferId {
            value: "o-9".into(),
        }]
    };

    master.reply_to_next_call(400, "Framework cannot be found");
    match driver.decline(o(), None).await {
        Err(CallError::BadRequest {
            call, status, body, ..
        }) => {
            assert_eq!(
                (call, status, body.as_str()),
                ("DECLINE", 400, "Framework cannot be found")
            );
        }
        other => panic!("expected BadRequest, got {other:?}"),
    }
    master.reply_to_next_call(403, "Framework is not subscribed");
    match driver.accept(o(), vec![], None).await {
        Err(CallError::Forbidden { call, body, .. }) => {
            assert_eq!(
                (call, body.as_str()),
                ("ACCEPT", "Framework is not subscribed")
            );
        }
        other => panic!("expected Forbidden, got {other:?}"),
    }
    master.reply_to_next_call(503, "Master is recovering");
    assert!(matches!(
        driver.revive(vec![]).await,
        Err(CallError::Unavailable { call: "REVIVE", .. })
    ));
    // The client is still usable.
    driver.reconcile(vec![]).await.unwrap();
    for _ in 0..4 {
        master.next_call().await;
    }
    master.no_more_calls();
    driver.stop();
}
