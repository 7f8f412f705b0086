//! The Mesos scheduler client finding and re-finding its master: 307 redirects, 503
//! retries, missed heartbeats, closed or undecodable streams, unreachable masters.

mod mesos_support;

use axum::body::Bytes;
use retz_proto::mesos::{FrameworkId, OfferId, TaskId};
use retz_proto::scheduler::call;
use retz_scheduler::mesos::{CallError, ContentType, DisconnectReason, start};

use mesos_support::{
    BOTH, Master, SubscribeReply, config, expect_disconnected, expect_subscribed, heartbeat,
    refused_address, subscribed, subscribed_client,
};

#[tokio::test]
async fn follows_307_redirects_absolute_and_protocol_relative() {
    for (i, ct) in BOTH.into_iter().enumerate() {
        for protocol_relative in [true, false] {
            let mut follower = Master::start().await;
            let mut leader = Master::start().await;
            let location = if protocol_relative {
                format!("//{}/api/v1/scheduler", leader.address())
            } else {
                format!("http://{}/api/v1/scheduler", leader.address())
            };
            follower.push(SubscribeReply::Redirect(location));
            let feed = leader.stream("leader-stream", ct);
            let (driver, mut rx) = start(config(vec![follower.address()], ct)).unwrap();

            assert_eq!(follower.next_call().await.kind(), call::Type::Subscribe);
            assert_eq!(leader.next_call().await.kind(), call::Type::Subscribe);
            feed.send(&[subscribed(&format!("fw-{i}"), 15.0)]);
            expect_subscribed(&mut rx, &format!("fw-{i}")).await;

            // Calls go to the leader, on its stream.
            driver.revive(vec![]).await.unwrap();
            let r = leader.next_call().await;
            assert_eq!(r.kind(), call::Type::Revive);
            assert_eq!(r.stream_id.as_deref(), Some("leader-stream"));
            follower.no_more_calls();
            driver.stop();
        }
    }
}

#[tokio::test]
async fn retries_after_503_then_subscribes() {
    let mut master = Master::start().await;
    master.push(SubscribeReply::Status(
        503,
        "Master is not the leader and knows no leader",
    ));
    let feed = master.stream("stream-2", ContentType::Protobuf);
    let (driver, mut rx) = start(config(vec![master.address()], ContentType::Protobuf)).unwrap();

    let (_, reason) = expect_disconnected(&mut rx).await;
    match reason {
        DisconnectReason::Status { status, body } => {
            assert_eq!(status, 503);
            assert!(body.contains("knows no leader"), "{body}");
        }
        other => panic!("expected a 503, got {other:?}"),
    }
    assert!(matches!(
        driver.kill(TaskId { value: "t".into() }, None, None).await,
        Err(CallError::NotSubscribed { call: "KILL" })
    ));
    assert_eq!(master.next_call().await.kind(), call::Type::Subscribe);
    assert_eq!(master.next_call().await.kind(), call::Type::Subscribe);
    feed.send(&[subscribed("fw-1", 15.0)]);
    expect_subscribed(&mut rx, "fw-1").await;
    driver.stop();
}

#[tokio::test]
async fn missed_heartbeats_resubscribe_with_the_framework_id() {
    for ct in BOTH {
        let mut master = Master::start().await;
        let first = master.stream("stream-1", ct);
        let second = master.stream("stream-2", ct);
        let mut cfg = config(vec![master.address()], ct);
        cfg.heartbeat_misses = 2;
        cfg.suppressed_roles = vec!["initially-suppressed".into()];
        let (driver, mut rx) = start(cfg).unwrap();

        let sub1 = master.next_call().await;
        assert_eq!(sub1.call.framework_id, None);
        assert_eq!(
            sub1.call.subscribe.unwrap().suppressed_roles,
            ["initially-suppressed"]
        );
        // A 50 ms heartbeat, then silence (the stream stays open).
        first.send(&[subscribed("fw-42", 0.05), heartbeat()]);
        expect_subscribed(&mut rx, "fw-42").await;

        let (_, reason) = expect_disconnected(&mut rx).await;
        assert!(
            matches!(reason, DisconnectReason::Silent(_)),
            "{ct}: {reason:?}"
        );
        assert!(!driver.is_subscribed());

        let sub2 = master.next_call().await;
        assert_eq!(sub2.kind(), call::Type::Subscribe);
        assert_eq!(sub2.stream_id, None);
        assert_eq!(sub2.call.framework_id.as_ref().unwrap().value, "fw-42");
        let subscribe = sub2.call.subscribe.unwrap();
        assert_eq!(subscribe.framework_info.id.unwrap().value, "fw-42");
        assert_eq!(subscribe.framework_info.failover_timeout, Some(604_800.0));
        assert_eq!(subscribe.suppressed_roles, ["initially-suppressed"]);

        second.send(&[subscribed("fw-42", 15.0)]);
        expect_subscribed(&mut rx, "fw-42").await;
        driver
            .decline(vec![OfferId { value: "o".into() }], None)
            .await
            .unwrap();
        let r = master.next_call().await;
        assert_eq!(r.kind(), call::Type::Decline);
        assert_eq!(r.stream_id.as_deref(), Some("stream-2"));
        drop(first);
        driver.stop();
    }
}

#[tokio::test]
async fn closed_stream_resubscribes_and_configured_id_is_reused() {
    let mut master = Master::start().await;
    let first = master.stream("stream-1", ContentType::Json);
    let second = master.stream("stream-2", ContentType::Json);
    let mut cfg = config(vec![master.address()], ContentType::Json);
    cfg.framework_info.id = Some(FrameworkId {
        value: "fw-from-store".into(),
    });
    let (driver, mut rx) = start(cfg).unwrap();
    let sub1 = master.next_call().await;
    assert_eq!(sub1.call.framework_id.unwrap().value, "fw-from-store");
    assert_eq!(
        sub1.call
            .subscribe
            .unwrap()
            .framework_info
            .id
            .unwrap()
            .value,
        "fw-from-store"
    );
    first.send(&[subscribed("fw-from-store", 15.0)]);
    expect_subscribed(&mut rx, "fw-from-store").await;
    // Suppression state is carried into the next SUBSCRIBE; a failed call changes nothing.
    driver
        .suppress(vec!["batch".into(), "adhoc".into()])
        .await
        .unwrap();
    driver.revive(vec!["adhoc".into()]).await.unwrap();
    master.reply_to_next_call(503, "Master is recovering");
    assert!(driver.suppress(vec!["never".into()]).await.is_err());
    for kind in [
        call::Type::Suppress,
        call::Type::Revive,
        call::Type::Suppress,
    ] {
        assert_eq!(master.next_call().await.kind(), kind);
    }
    drop(first); // The master closes the stream.
    let (_, reason) = expect_disconnected(&mut rx).await;
    assert_eq!(reason, DisconnectReason::StreamEnded);
    let sub2 = master.next_call().await;
    assert_eq!(sub2.call.framework_id.unwrap().value, "fw-from-store");
    assert_eq!(sub2.call.subscribe.unwrap().suppressed_roles, ["batch"]);
    second.send(&[subscribed("fw-from-store", 15.0)]);
    expect_subscribed(&mut rx, "fw-from-store").await;
    driver.stop();
}

#[tokio::test]
async fn rotates_past_a_master_that_refuses_connections() {
    let refused = refused_address().await;
    let mut good = Master::start().await;
    let feed = good.stream("stream-1", ContentType::Json);
    let (driver, mut rx) = start(config(
        vec![refused.clone(), good.address()],
        ContentType::Json,
    ))
    .unwrap();

    let (master, reason) = expect_disconnected(&mut rx).await;
    assert!(master.contains(&refused), "{master}");
    assert!(matches!(reason, DisconnectReason::Connect(_)), "{reason:?}");
    assert!(matches!(
        driver.decline(vec![], None).await,
        Err(CallError::NotSubscribed { .. })
    ));

    assert_eq!(good.next_call().await.kind(), call::Type::Subscribe);
    feed.send(&[subscribed("fw-1", 15.0)]);
    expect_subscribed(&mut rx, "fw-1").await;
    driver.stop();
}

#[tokio::test]
async fn undecodable_stream_reconnects() {
    let mut master = Master::start().await;
    let (driver, mut rx, feed) = subscribed_client(&mut master, ContentType::Protobuf).await;
    let second = master.stream("stream-2", ContentType::Protobuf);
    feed.raw(Bytes::from_static(b"12x\n"));
    let (_, reason) = expect_disconnected(&mut rx).await;
    assert!(matches!(reason, DisconnectReason::Decode(_)), "{reason:?}");
    assert_eq!(master.next_call().await.kind(), call::Type::Subscribe);
    second.send(&[subscribed("fw-1", 15.0)]);
    expect_subscribed(&mut rx, "fw-1").await;
    driver.stop();
}
