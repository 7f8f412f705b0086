//! Golden tests: the corrected fixtures of the Mesos v1 protocol reference (§6), decoded
//! from Mesos JSON, checked field by field, and carried through protobuf and back.

use bytes::{Bytes, BytesMut};
use prost::Message as _;
use retz_proto::mesos::{TaskState, task_status, value};
use retz_proto::recordio::{RecordDecoder, encode_record};
use retz_proto::scheduler::{Event, event};
use retz_proto::{ContentType, json};

const SUBSCRIBED: &[u8] = include_bytes!("fixtures/subscribed.json");
const OFFERS: &[u8] = include_bytes!("fixtures/offers.json");
const UPDATE: &[u8] = include_bytes!("fixtures/update.json");

/// Protobuf and JSON round trips give back the same message.
fn assert_round_trips(event: &Event) {
    let proto = event.encode_to_vec();
    assert_eq!(&Event::decode(proto.as_slice()).unwrap(), event);

    let text = json::to_vec(event);
    let back: Event = json::from_json(&text).unwrap();
    assert_eq!(
        &back,
        event,
        "JSON round trip of {}",
        String::from_utf8_lossy(&text)
    );

    for ct in [ContentType::Json, ContentType::Protobuf] {
        let bytes = ct.encode(event);
        assert_eq!(&ct.decode::<Event>(&bytes).unwrap(), event, "{ct}");
    }
}

#[test]
fn fixture_a_subscribed() {
    let event: Event = json::from_json(SUBSCRIBED).unwrap();
    assert_eq!(event.r#type(), event::Type::Subscribed);
    let subscribed = event.subscribed.as_ref().unwrap();
    assert_eq!(subscribed.framework_id.value, "12220-3440-12532-2345");
    assert_eq!(subscribed.heartbeat_interval_seconds, Some(15.0));
    assert!(subscribed.master_info.is_none());
    assert!(event.offers.is_none() && event.update.is_none());
    assert_round_trips(&event);

    // The JSON written is the fixture, up to number formatting.
    let expected: serde_json::Value = serde_json::from_slice(SUBSCRIBED).unwrap();
    let written = json::to_json(&event);
    assert_eq!(written["type"], expected["type"]);
    assert_eq!(
        written["subscribed"]["framework_id"],
        expected["subscribed"]["framework_id"]
    );
    assert_eq!(
        written["subscribed"]["heartbeat_interval_seconds"].as_f64(),
        Some(15.0)
    );
}

#[test]
fn fixture_b_offers() {
    let event: Event = json::from_json(OFFERS).unwrap();
    assert_eq!(event.r#type(), event::Type::Offers);
    let offers = &event.offers.as_ref().unwrap().offers;
    assert_eq!(offers.len(), 1);
    let offer = &offers[0];
    assert_eq!(offer.id.value, "12214-23523-O235235");
    assert_eq!(offer.framework_id.value, "12124-235325-32425");
    assert_eq!(offer.agent_id.value, "12325-23523-S23523");
    assert_eq!(offer.hostname, "agent.host");
    assert_eq!(
        offer.allocation_info.as_ref().unwrap().role.as_deref(),
        Some("engineering")
    );

    let cpus = &offer.resources[0];
    assert_eq!(cpus.name, "cpus");
    assert_eq!(cpus.r#type(), value::Type::Scalar);
    assert_eq!(cpus.scalar.as_ref().unwrap().value, 2.0);
    assert_eq!(cpus.role.as_deref(), Some("*"));
    assert_eq!(
        cpus.allocation_info.as_ref().unwrap().role.as_deref(),
        Some("engineering")
    );

    let ports = &offer.resources[1];
    assert_eq!(ports.name, "ports");
    assert_eq!(ports.r#type(), value::Type::Ranges);
    let range = &ports.ranges.as_ref().unwrap().range;
    assert_eq!(range.len(), 1);
    assert_eq!((range[0].begin, range[0].end), (31000, 32000));

    assert_eq!(offer.attributes.len(), 1);
    let os = &offer.attributes[0];
    assert_eq!(os.name, "os");
    assert_eq!(os.r#type(), value::Type::Text);
    assert_eq!(os.text.as_ref().unwrap().value, "ubuntu16.04");
    assert_eq!(offer.executor_ids[0].value, "12214-23523-my-executor");
    assert_round_trips(&event);

    // Set deprecated fields are written back; Value.Range bounds are numbers.
    let written = json::to_json(&event);
    let res = &written["offers"]["offers"][0]["resources"];
    assert_eq!(res[0]["role"], "*");
    assert_eq!(res[1]["ranges"]["range"][0]["begin"], 31000);
    assert_eq!(res[1]["ranges"]["range"][0]["end"], 32000);
}

#[test]
fn fixture_b_as_printed_in_the_mesos_docs_is_rejected_clearly() {
    // docs/scheduler-http-api.md puts the offers array directly under "offers"; the field
    // is an `Event.Offers` message, so a master (stout) rejects it, and so do we.
    let doc_form = br#"{"type":"OFFERS","offers":[{"id":{"value":"o"}}]}"#;
    let err = json::from_json::<Event>(doc_form).unwrap_err();
    assert_eq!(err.path, "offers");
    assert!(err.message.contains("JSON object"), "{err}");
}

#[test]
fn fixture_c_update() {
    let event: Event = json::from_json(UPDATE).unwrap();
    assert_eq!(event.r#type(), event::Type::Update);
    let status = &event.update.as_ref().unwrap().status;
    assert_eq!(status.task_id.value, "12344-my-task");
    assert_eq!(status.state(), TaskState::TaskRunning);
    assert_eq!(status.source(), task_status::Source::Executor);
    assert_eq!(
        status.agent_id.as_ref().unwrap().value,
        "12325-23523-S23523"
    );
    assert_eq!(
        status.executor_id.as_ref().unwrap().value,
        "12214-23523-my-executor"
    );
    assert_eq!(status.timestamp, Some(1.7e9));
    let uuid: [u8; 16] = [
        0xd4, 0x0f, 0x3f, 0x3e, 0xbb, 0xe3, 0x44, 0xaf, 0xa2, 0x30, 0x4c, 0xb1, 0xea, 0xe7, 0x2f,
        0x67,
    ];
    assert_eq!(status.uuid.as_deref(), Some(&uuid[..]));
    assert_round_trips(&event);

    let written = json::to_json(&event);
    assert_eq!(
        written["update"]["status"]["uuid"],
        "1A8/PrvjRK+iMEyx6ucvZw=="
    );
    assert_eq!(written["update"]["status"]["state"], "TASK_RUNNING");
    assert_eq!(written["update"]["status"]["source"], "SOURCE_EXECUTOR");
}

/// Fixture D: the `docs/recordio.md` stream with the lengths computed.
fn fixture_d() -> Vec<u8> {
    let subscribed = SUBSCRIBED.trim_ascii();
    assert_eq!(subscribed.len(), 117);
    let mut stream = b"117\n".to_vec();
    stream.extend_from_slice(subscribed);
    stream.extend_from_slice(b"20\n{\"type\":\"HEARTBEAT\"}");
    stream
}

#[test]
fn fixture_d_recordio_stream() {
    let stream = fixture_d();
    let expected = [
        json::from_json::<Event>(SUBSCRIBED).unwrap(),
        Event {
            r#type: Some(event::Type::Heartbeat as i32),
            ..Default::default()
        },
    ];

    // Every split point of the stream into two chunks gives the same two events.
    for split in 0..=stream.len() {
        let mut dec = RecordDecoder::default();
        let mut events = Vec::new();
        for chunk in [&stream[..split], &stream[split..]] {
            dec.push(chunk);
            while let Some(record) = dec.next_record().unwrap() {
                events.push(json::from_json::<Event>(&record).unwrap());
            }
        }
        dec.finish().unwrap();
        assert_eq!(events, expected, "split at {split}");
    }

    // Our own encoder writes the same framing.
    let mut buf = BytesMut::new();
    encode_record(SUBSCRIBED.trim_ascii(), &mut buf);
    encode_record(br#"{"type":"HEARTBEAT"}"#, &mut buf);
    assert_eq!(buf.freeze(), Bytes::from(stream));
}

#[test]
fn fixture_d_in_protobuf() {
    // The same stream in the protobuf encoding decodes to the same events.
    let events = [
        json::from_json::<Event>(SUBSCRIBED).unwrap(),
        json::from_json::<Event>(OFFERS).unwrap(),
        json::from_json::<Event>(UPDATE).unwrap(),
    ];
    let mut buf = BytesMut::new();
    for e in &events {
        retz_proto::recordio::encode_message(ContentType::Protobuf, e, &mut buf);
    }
    let records = retz_proto::recordio::decode_all(&buf, 1 << 20).unwrap();
    let decoded: Vec<Event> = records
        .iter()
        .map(|r| ContentType::Protobuf.decode(r).unwrap())
        .collect();
    assert_eq!(decoded, events);
}
