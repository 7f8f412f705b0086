//! The Mesos scheduler client subscribing: the SUBSCRIBE request and RecordIO framing,
//! ERROR events, refused subscriptions, bad configs, and HTTP Basic framework
//! authentication on every request.

mod mesos_support;

use retz_proto::credentials::Credential;
use retz_proto::mesos::{AgentId, ExecutorId, OfferId, TaskId};
use retz_proto::scheduler::{Event, call, event};
use retz_scheduler::mesos::{
    CallError, ContentType, DisconnectReason, SchedulerConfig, SchedulerEvent, start,
};

use mesos_support::{
    BOTH, Master, SubscribeReply, config, error_event, expect_disconnected, expect_subscribed,
    heartbeat, next_event, offer, offers, status, subscribed, subscribed_client, typed, within,
};

#[tokio::test]
async fn subscribe_request_and_records_split_anywhere() {
    for ct in BOTH {
        let mut master = Master::start().await;
        let feed = master.stream("stream-1", ct);
        let (driver, mut rx) = start(config(vec![master.address()], ct)).unwrap();

        let sub = master.next_call().await;
        assert_eq!(sub.kind(), call::Type::Subscribe);
        assert_eq!(sub.content_type.as_deref(), Some(ct.mime()));
        assert_eq!(sub.accept.as_deref(), Some(ct.mime()));
        assert_eq!(
            sub.stream_id, None,
            "SUBSCRIBE must not carry Mesos-Stream-Id"
        );
        assert_eq!(sub.call.framework_id, None);
        let info = sub.call.subscribe.unwrap().framework_info;
        assert_eq!(info.id, None);
        assert_eq!(info.name, "Retz test");
        assert_eq!(info.failover_timeout, Some(604_800.0));

        // Three records cut into chunks at every awkward place: inside the first length
        // prefix, right after a newline, inside the bodies, across record boundaries.
        let bytes = feed.records(&[
            subscribed("fw-1", 15.0),
            heartbeat(),
            offers(&["o-1", "o-2"]),
        ]);
        let cuts = [1, 2, 3, 7, bytes.len() / 2, bytes.len() - 1];
        let mut at = 0;
        for cut in cuts {
            feed.raw(bytes.slice(at..cut));
            at = cut;
        }
        feed.raw(bytes.slice(at..));

        expect_subscribed(&mut rx, "fw-1").await;
        match next_event(&mut rx).await {
            SchedulerEvent::Offers(got) => assert_eq!(got, vec![offer("o-1"), offer("o-2")]),
            other => panic!("{ct}: expected Offers, got {other:?}"),
        }
        assert_eq!(driver.framework_id().unwrap().value, "fw-1");
        assert!(driver.is_subscribed());

        // A record whose length prefix is split over two chunks, after the stream is up.
        let rescind = Event {
            rescind: Some(event::Rescind {
                offer_id: OfferId {
                    value: "o-1".into(),
                },
            }),
            ..typed(event::Type::Rescind)
        };
        let bytes = feed.records(&[rescind]);
        assert!(
            bytes.iter().position(|b| *b == b'\n').unwrap() >= 2,
            "prefix has two digits"
        );
        feed.raw(bytes.slice(..1));
        feed.raw(bytes.slice(1..));
        assert_eq!(
            next_event(&mut rx).await,
            SchedulerEvent::Rescind(OfferId {
                value: "o-1".into()
            })
        );
        driver.stop();
        assert!(within("end of events", rx.recv()).await.is_none());
    }
}

#[tokio::test]
async fn error_event_is_surfaced_and_stops_the_client() {
    for ct in BOTH {
        let mut master = Master::start().await;
        let (driver, mut rx, feed) = subscribed_client(&mut master, ct).await;
        feed.send(&[error_event("Framework has been removed")]);
        assert_eq!(
            next_event(&mut rx).await,
            SchedulerEvent::Error("Framework has been removed".into())
        );
        assert!(within("end of events", rx.recv()).await.is_none());
        assert!(driver.is_stopped());
        assert!(matches!(
            driver.revive(vec![]).await,
            Err(CallError::Stopped { .. })
        ));
        // No re-subscription after ERROR.
        master.no_more_calls();
    }
}

#[tokio::test]
async fn subscribe_rejected_with_403_is_an_error_not_a_retry_loop() {
    let mut master = Master::start().await;
    master.push(SubscribeReply::Status(403, "Not authorized to use roles"));
    let (driver, mut rx) = start(config(vec![master.address()], ContentType::Json)).unwrap();
    match next_event(&mut rx).await {
        SchedulerEvent::Error(msg) => assert!(
            msg.contains("403") && msg.contains("Not authorized"),
            "{msg}"
        ),
        other => panic!("expected Error, got {other:?}"),
    }
    assert!(within("end of events", rx.recv()).await.is_none());
    assert!(driver.is_stopped());
    assert_eq!(master.next_call().await.kind(), call::Type::Subscribe);
    master.no_more_calls();
}

#[tokio::test]
async fn bad_configs_are_refused_before_starting() {
    let mut cfg = config(vec![], ContentType::Json);
    assert!(start(cfg.clone()).is_err());
    // https:// masters are accepted (see mesos_tls_e2e); other schemes are not.
    cfg.masters = vec!["ftp://m:5050".into()];
    let err = start(cfg).unwrap_err().to_string();
    assert!(err.contains("\"ftp\"") && err.contains("https://"), "{err}");
}

// ---------------------------------------------------------------------------------------
// Framework authentication (HTTP Basic, as masters with --authenticate_http_frameworks).

fn credential() -> Credential {
    Credential::new("retz", "s3cret").unwrap()
}

fn authenticated(masters: Vec<String>, ct: ContentType) -> SchedulerConfig {
    let mut cfg = config(masters, ct);
    cfg.credential = Some(credential());
    cfg
}

#[tokio::test]
async fn every_request_carries_the_basic_credential_subscribe_included() {
    for ct in BOTH {
        let mut master = Master::start().await;
        let feed = master.stream("stream-1", ct);
        let (driver, mut rx) = start(authenticated(vec![master.address()], ct)).unwrap();
        let sub = master.next_call().await;
        assert_eq!(sub.kind(), call::Type::Subscribe);
        assert_eq!(sub.authorization, Some(credential().basic_header()));
        let info = sub.call.subscribe.unwrap().framework_info;
        assert_eq!(
            info.principal.as_deref(),
            Some("retz"),
            "the principal is the credential's"
        );
        feed.send(&[subscribed("fw-1", 15.0)]);
        expect_subscribed(&mut rx, "fw-1").await;
        let o = || {
            vec![OfferId {
                value: "o-1".into(),
            }]
        };
        driver.decline(o(), Some(1.0)).await.unwrap();
        driver.accept(o(), vec![], None).await.unwrap();
        driver.revive(vec![]).await.unwrap();
        driver.suppress(vec![]).await.unwrap();
        driver
            .kill(TaskId { value: "t".into() }, None, None)
            .await
            .unwrap();
        driver
            .acknowledge(&status("t", Some(vec![7; 16])))
            .await
            .unwrap();
        driver.reconcile(vec![]).await.unwrap();
        driver
            .message(
                AgentId { value: "a".into() },
                ExecutorId { value: "e".into() },
                b"hi".to_vec(),
            )
            .await
            .unwrap();
        driver.teardown().await.unwrap();
        for _ in 0..9 {
            let c = master.next_call().await;
            assert_eq!(
                c.authorization,
                Some(credential().basic_header()),
                "{:?}",
                c.kind()
            );
        }
        master.no_more_calls();
    }
}

#[tokio::test]
async fn without_a_credential_no_authorization_is_sent() {
    let mut master = Master::start().await;
    let feed = master.stream("stream-1", ContentType::Json);
    let (driver, mut rx) = start(config(vec![master.address()], ContentType::Json)).unwrap();
    let sub = master.next_call().await;
    assert_eq!(sub.authorization, None);
    assert_eq!(sub.call.subscribe.unwrap().framework_info.principal, None);
    feed.send(&[subscribed("fw-1", 15.0)]);
    expect_subscribed(&mut rx, "fw-1").await;
    driver.reconcile(vec![]).await.unwrap();
    assert_eq!(master.next_call().await.authorization, None);
}

#[tokio::test]
async fn a_subscribe_refused_with_401_names_the_principal_and_is_not_retried() {
    for with_credential in [true, false] {
        let mut master = Master::start().await;
        master.push(SubscribeReply::Status(401, ""));
        let cfg = if with_credential {
            authenticated(vec![master.address()], ContentType::Protobuf)
        } else {
            config(vec![master.address()], ContentType::Protobuf)
        };
        let (driver, mut rx) = start(cfg).unwrap();
        match next_event(&mut rx).await {
            SchedulerEvent::Error(msg) => {
                let want = if with_credential {
                    "the master refused the framework's credentials (principal retz)"
                } else {
                    "requires framework authentication and the client sent no credentials"
                };
                assert!(msg.contains(want) && msg.contains("401"), "{msg}");
                assert!(!msg.contains("s3cret"), "{msg}");
            }
            other => panic!("expected Error, got {other:?}"),
        }
        assert!(within("end of events", rx.recv()).await.is_none());
        assert!(driver.is_stopped());
        assert_eq!(master.next_call().await.kind(), call::Type::Subscribe);
        master.no_more_calls();
    }
}

#[tokio::test]
async fn a_call_refused_with_401_is_typed_and_the_client_subscribes_again() {
    let mut master = Master::start().await;
    let feed = master.stream("stream-1", ContentType::Protobuf);
    let (driver, mut rx) =
        start(authenticated(vec![master.address()], ContentType::Protobuf)).unwrap();
    master.next_call().await;
    feed.send(&[subscribed("fw-1", 15.0)]);
    expect_subscribed(&mut rx, "fw-1").await;
    // The master stops accepting the credential: the call is refused...
    master.reply_to_next_call(401, "");
    master.push(SubscribeReply::Status(401, ""));
    let e = driver
        .decline(
            vec![OfferId {
                value: "o-1".into(),
            }],
            None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&e, CallError::Unauthorized { call: "DECLINE", principal: Some(p), .. } if p == "retz"),
        "{e:?}"
    );
    assert!(!e.is_retryable());
    assert!(
        e.to_string()
            .contains("refused the framework's credentials (principal retz)"),
        "{e}"
    );
    // ... the subscription is dropped, and the new SUBSCRIBE, refused too, ends the client.
    let (_, reason) = expect_disconnected(&mut rx).await;
    assert_eq!(reason, DisconnectReason::Unauthorized);
    match next_event(&mut rx).await {
        SchedulerEvent::Error(msg) => assert!(
            msg.contains("refused the framework's credentials (principal retz)"),
            "{msg}"
        ),
        other => panic!("expected Error, got {other:?}"),
    }
    assert!(within("end of events", rx.recv()).await.is_none());
    assert!(driver.is_stopped());
    assert_eq!(master.next_call().await.kind(), call::Type::Decline);
    let again = master.next_call().await;
    assert_eq!(again.kind(), call::Type::Subscribe);
    assert_eq!(again.authorization, Some(credential().basic_header()));
    master.no_more_calls();
}

#[tokio::test]
async fn a_principal_other_than_the_credentials_is_refused_before_anything_is_sent() {
    let mut cfg = authenticated(vec!["127.0.0.1:5050".into()], ContentType::Json);
    cfg.framework_info.principal = Some("someone-else".into());
    let e = start(cfg).unwrap_err();
    assert!(e.to_string().contains("someone-else"), "{e}");
}
