//! Every status code of `POST /api/v1/scheduler` on bad input, as a Mesos master answers,
//! and the cluster keeps serving the well-behaved framework meanwhile.

mod master_support;

use std::time::Duration;

use hyper::{Method, StatusCode};
use master_support::*;
use retz_mesos_local::master::{Leadership, SimBehaviour};
use retz_proto::ContentType;
use retz_proto::mesos::FrameworkId;
use retz_proto::scheduler::{call, event};

const PATH: &str = "/api/v1/scheduler";

#[tokio::test]
async fn bad_requests_get_mesos_status_codes_and_others_keep_working() {
    let m = master(Duration::from_secs(15)).await;
    sim_agents(&m, 1, SimBehaviour::default()).await;
    let http = Http::new(m.addr());
    let mut good = http.subscribe(ContentType::Json, framework("good")).await;
    let fid = subscribed_id(&good.next().await.unwrap());
    let sub_body = ContentType::Json.encode(&subscribe_call(framework("x")));
    let revive = ContentType::Json.encode(&call_of(&fid, call::Type::Revive));
    let json = ContentType::Json.mime();
    let sid = good.stream_id.clone();

    // 415: a parameter on the content type.
    let r = http
        .request(
            Method::POST,
            PATH,
            &[("Content-Type", "application/json; charset=utf-8")],
            sub_body.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", r.text());
    assert!(
        r.text()
            .contains("application/json or application/x-protobuf")
    );
    let r = http
        .request(
            Method::POST,
            PATH,
            &[("Content-Type", "text/plain")],
            sub_body.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // 400: no content type.
    let r = http
        .request(Method::POST, PATH, &[], sub_body.clone())
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.text(), "Expecting 'Content-Type' to be present");

    // 406: SUBSCRIBE accepting neither encoding.
    let r = http
        .request(
            Method::POST,
            PATH,
            &[("Content-Type", json), ("Accept", "text/html")],
            sub_body.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE, "{}", r.text());

    // 405: not POST.
    let r = http.request(Method::GET, PATH, &[], vec![]).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers["allow"], "POST");

    // 400: Mesos-Stream-Id on SUBSCRIBE.
    let r = http
        .request(
            Method::POST,
            PATH,
            &[("Content-Type", json), ("Mesos-Stream-Id", &sid)],
            sub_body.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.text()
            .contains("should not include the 'Mesos-Stream-Id'"),
        "{}",
        r.text()
    );

    // 400: a stale stream id, and a missing one.
    let r = http
        .request(
            Method::POST,
            PATH,
            &[("Content-Type", json), ("Mesos-Stream-Id", "stale")],
            revive.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("didn't match"), "{}", r.text());
    let r = http
        .request(
            Method::POST,
            PATH,
            &[("Content-Type", json)],
            revive.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // 400: unknown framework.
    let ghost = ContentType::Json.encode(&call_of(
        &FrameworkId {
            value: "ghost".into(),
        },
        call::Type::Revive,
    ));
    let r = http
        .request(
            Method::POST,
            PATH,
            &[("Content-Type", json), ("Mesos-Stream-Id", &sid)],
            ghost,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.text(), "Framework cannot be found");

    // 400: malformed bodies, missing fields, bad uuids.
    for (body, needle) in [
        (b"{not json".to_vec(), "Failed to parse body into JSON"),
        (
            br#"{"type":"ACCEPT"}"#.to_vec(),
            "Expecting 'framework_id' to be present",
        ),
        (
            br#"{"framework_id":{"value":"x"}}"#.to_vec(),
            "Expecting 'type' to be present",
        ),
        (
            br#"{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"u"}}}"#.to_vec(),
            "Failed to convert JSON into Call protobuf",
        ),
        (br#"[1,2]"#.to_vec(), "Failed to convert JSON"),
    ] {
        let r = http
            .request(Method::POST, PATH, &[("Content-Type", json)], body)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{needle}: {}", r.text());
        assert!(r.text().contains(needle), "{needle}: {}", r.text());
    }
    let r = http
        .request(
            Method::POST,
            PATH,
            &[("Content-Type", ContentType::Protobuf.mime())],
            vec![0xff, 0xff, 0xff],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("Call protobuf"));
    let mut ack = call_of(&fid, call::Type::Acknowledge);
    ack.acknowledge = Some(call::Acknowledge {
        agent_id: m.agent_id(0),
        task_id: retz_proto::mesos::TaskId { value: "t".into() },
        uuid: b"not-a-16-byte-uuid".to_vec(),
    });
    let r = http.call(ContentType::Json, &sid, &ack).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("Not a valid UUID"), "{}", r.text());

    // 413: an oversized body.
    let r = http
        .request(
            Method::POST,
            PATH,
            &[("Content-Type", json)],
            vec![b' '; 17 * 1024 * 1024],
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);

    // 501: an UNKNOWN call type (protobuf can carry it).
    let mut unknown = call_of(&fid, call::Type::Revive);
    unknown.r#type = Some(999);
    let r = http.call(ContentType::Protobuf, &sid, &unknown).await;
    assert_eq!(r.status, StatusCode::NOT_IMPLEMENTED);

    // The good framework is still served: its calls get 202 and offers keep coming.
    let r = http
        .call(ContentType::Json, &sid, &call_of(&fid, call::Type::Revive))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    good.next_of(event::Type::Offers).await;

    // 403: a known framework whose stream is down.
    assert!(m.drop_framework_stream(&fid).await.unwrap());
    let r = http
        .call(ContentType::Json, &sid, &call_of(&fid, call::Type::Revive))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.text(), "Framework is not subscribed");
    m.shutdown().await;
}

#[tokio::test]
async fn subscribe_without_accept_gets_json_and_invalid_framework_info_gets_one_error() {
    let m = master(Duration::from_secs(15)).await;
    let http = Http::new(m.addr());
    let mut s = http
        .subscribe_with(
            ContentType::Protobuf,
            &[],
            subscribe_call(framework("no-accept")),
        )
        .await;
    assert_eq!(s.headers["content-type"], "application/json");
    assert_eq!(
        s.next().await.unwrap().r#type,
        Some(event::Type::Subscribed as i32)
    );
    // Bad roles: still 200, one ERROR, then the stream ends.
    let mut info = framework("bad-role");
    info.role = Some("-nope".into());
    let mut s = http.subscribe(ContentType::Json, info).await;
    assert_eq!(s.status, StatusCode::OK);
    let events = s.rest().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].r#type, Some(event::Type::Error as i32));
    // Framework ids that differ between the call and the info: 400.
    let mut c = subscribe_call(framework("ids"));
    c.framework_id = Some(FrameworkId { value: "a".into() });
    let r = http
        .request(
            Method::POST,
            PATH,
            &[("Content-Type", "application/json")],
            ContentType::Json.encode(&c),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    m.shutdown().await;
}

#[tokio::test]
async fn non_leader_redirects_with_protocol_relative_location() {
    let m = master(Duration::from_secs(15)).await;
    let http = Http::new(m.addr());
    m.set_leadership(Leadership::NotLeader {
        leader: Some("leader.example:5050".into()),
    });
    let body = ContentType::Json.encode(&subscribe_call(framework("r")));
    let r = http
        .request(
            Method::POST,
            PATH,
            &[("Content-Type", "application/json")],
            body.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(
        r.headers["location"],
        "//leader.example:5050/api/v1/scheduler"
    );
    let r = http.request(Method::GET, "/redirect", &[], vec![]).await;
    assert_eq!(r.status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(r.headers["location"], "//leader.example:5050");
    m.set_leadership(Leadership::NotLeader { leader: None });
    let r = http
        .request(
            Method::POST,
            PATH,
            &[("Content-Type", "application/json")],
            body.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    m.set_leadership(Leadership::Leader);
    let mut s = http.subscribe(ContentType::Json, framework("back")).await;
    assert_eq!(
        s.next().await.unwrap().r#type,
        Some(event::Type::Subscribed as i32)
    );
    m.shutdown().await;
}
