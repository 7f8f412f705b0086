//! The rules of the Mesos (stout) JSON dialect, one by one.

use retz_proto::mesos::{
    self, AgentInfo, CommandInfo, Environment, ExecutorInfo, Filters, FrameworkInfo, MasterInfo,
    Resource, TaskState, TimeInfo, Value, command_info, environment, framework_info, value,
};
use retz_proto::scheduler::{Call, Event, call, event};
use retz_proto::{ContentType, DecodeError, executor, json};
use serde_json::json;

#[test]
fn framework_info_defaults_are_written() {
    let fi = FrameworkInfo {
        user: "batch".into(),
        name: "retz".into(),
        ..Default::default()
    };
    let v = json::to_json(&fi);
    assert_eq!(
        v,
        json!({"user": "batch", "name": "retz", "failover_timeout": 0.0, "checkpoint": false})
    );
    // Deprecated `role` (default "*") is not written unless set.
    assert!(v.get("role").is_none());
    let with_role = FrameworkInfo {
        role: Some("batch".into()),
        ..fi
    };
    assert_eq!(json::to_json(&with_role)["role"], "batch");
}

#[test]
fn command_and_uri_defaults_are_written() {
    let cmd = CommandInfo {
        value: Some("echo hi".into()),
        uris: vec![command_info::Uri {
            value: "http://x/app.tgz".into(),
            ..Default::default()
        }],
        environment: Some(Environment {
            variables: vec![environment::Variable {
                name: "A".into(),
                value: Some("1".into()),
                ..Default::default()
            }],
        }),
        ..Default::default()
    };
    assert_eq!(
        json::to_json(&cmd),
        json!({
            "uris": [{"value": "http://x/app.tgz", "extract": true}],
            "environment": {"variables": [{"name": "A", "type": "VALUE", "value": "1"}]},
            "shell": true,
            "value": "echo hi",
        })
    );
    // An explicit value wins over the default.
    let no_shell = CommandInfo {
        shell: Some(false),
        ..Default::default()
    };
    assert_eq!(json::to_json(&no_shell), json!({"shell": false}));
}

#[test]
fn other_defaults_are_written() {
    assert_eq!(
        json::to_json(&Filters::default()),
        json!({"refuse_seconds": 5.0})
    );
    let master = MasterInfo {
        id: "m".into(),
        ip: 16_777_343,
        ..Default::default()
    };
    // `port` is required with a default: prost's Default gives 5050, always written.
    assert_eq!(master.port, 5050);
    assert_eq!(json::to_json(&master)["port"], 5050);
    let agent = AgentInfo {
        hostname: "h".into(),
        ..Default::default()
    };
    assert_eq!(
        json::to_json(&agent),
        json!({"hostname": "h", "port": 5051})
    );
    // Deprecated ExecutorInfo.source and Resource.role are left out when unset.
    let exec = ExecutorInfo {
        executor_id: mesos::ExecutorId { value: "e".into() },
        ..Default::default()
    };
    assert_eq!(json::to_json(&exec), json!({"executor_id": {"value": "e"}}));
    let res = Resource {
        name: "cpus".into(),
        r#type: value::Type::Scalar as i32,
        scalar: Some(value::Scalar { value: 1.5 }),
        ..Default::default()
    };
    assert_eq!(
        json::to_json(&res),
        json!({"name": "cpus", "type": "SCALAR", "scalar": {"value": 1.5}})
    );
}

#[test]
fn master_info_port_defaults_to_5050_on_input() {
    // A required field with a default is still required on input (as in stout).
    let err = json::from_json::<MasterInfo>(br#"{"id":"m","ip":1}"#).unwrap_err();
    assert_eq!(err.path, "port");
    let m: MasterInfo = json::from_json(br#"{"id":"m","ip":1,"port":5050}"#).unwrap();
    assert_eq!(m.port, 5050);
}

#[test]
fn unknown_and_camel_case_keys_are_ignored() {
    let call: Call = json::from_json(
        br#"{"type":"SUBSCRIBE","frameworkId":{"value":"x"},"extra":[1,{"a":null}],
            "subscribe":{"frameworkInfo":{"user":"u"},"framework_info":{"user":"u","name":"n","webuiUrl":"x"}}}"#,
    )
    .unwrap();
    assert_eq!(call.r#type(), call::Type::Subscribe);
    assert!(call.framework_id.is_none());
    let fi = &call.subscribe.as_ref().unwrap().framework_info;
    assert_eq!((fi.user.as_str(), fi.name.as_str()), ("u", "n"));
    assert!(fi.webui_url.is_none());
}

#[test]
fn numbers_as_strings_are_accepted() {
    let v: Value = json::from_json(
        br#"{"type":"RANGES","ranges":{"range":[{"begin":"0","end":"15"},{"begin":32,"end":47.0}]}}"#,
    )
    .unwrap();
    let r = &v.ranges.as_ref().unwrap().range;
    assert_eq!(
        (r[0].begin, r[0].end, r[1].begin, r[1].end),
        (0, 15, 32, 47)
    );

    let t: TimeInfo = json::from_json(br#"{"nanoseconds":"-1700000000000000000"}"#).unwrap();
    assert_eq!(t.nanoseconds, -1_700_000_000_000_000_000);
    let big: value::Range =
        json::from_json(br#"{"begin":"18446744073709551615","end":18446744073709551615}"#).unwrap();
    assert_eq!((big.begin, big.end), (u64::MAX, u64::MAX));

    let s: value::Scalar = json::from_json(br#"{"value":"2.5"}"#).unwrap();
    assert_eq!(s.value, 2.5);
    let f: Filters = json::from_json(br#"{"refuse_seconds":"Infinity"}"#).unwrap();
    assert_eq!(f.refuse_seconds, Some(f64::INFINITY));
    let f: Filters = json::from_json(br#"{"refuse_seconds":"-Infinity"}"#).unwrap();
    assert_eq!(f.refuse_seconds, Some(f64::NEG_INFINITY));
    let f: Filters = json::from_json(br#"{"refuse_seconds":"NaN"}"#).unwrap();
    assert!(f.refuse_seconds.unwrap().is_nan());
    // Non-finite doubles are written as those strings.
    let inf = Filters {
        refuse_seconds: Some(f64::INFINITY),
    };
    assert_eq!(json::to_json(&inf), json!({"refuse_seconds": "Infinity"}));

    let b: mesos::CommandInfo = json::from_json(br#"{"shell":"false"}"#).unwrap();
    assert_eq!(b.shell, Some(false));
}

#[test]
fn bad_numbers_are_errors_with_paths() {
    let err = json::from_json::<Value>(
        br#"{"type":"RANGES","ranges":{"range":[{"begin":1,"end":"x"}]}}"#,
    )
    .unwrap_err();
    assert_eq!(err.path, "ranges.range[0].end");
    assert!(err.message.contains("\"x\" is not a valid uint64"), "{err}");

    let err = json::from_json::<value::Range>(br#"{"begin":-1,"end":1}"#).unwrap_err();
    assert_eq!(err.path, "begin");
    assert!(err.message.contains("out of range"), "{err}");

    let err = json::from_json::<value::Range>(br#"{"begin":1.5,"end":1}"#).unwrap_err();
    assert_eq!(err.path, "begin");

    let err = json::from_json::<mesos::Address>(br#"{"port":4294967296}"#).unwrap_err();
    assert_eq!(err.path, "port");
}

#[test]
fn unknown_enum_names_are_dropped_in_optional_and_repeated_fields() {
    let call: Call = json::from_json(br#"{"type":"NOT_A_CALL"}"#).unwrap();
    assert!(call.r#type.is_none());

    let fi: FrameworkInfo = json::from_json(
        br#"{"user":"u","name":"n","capabilities":[{"type":"MULTI_ROLE"},{"type":"FLYING"}]}"#,
    )
    .unwrap();
    assert_eq!(fi.capabilities.len(), 2);
    assert_eq!(
        fi.capabilities[0].r#type(),
        framework_info::capability::Type::MultiRole
    );
    assert!(fi.capabilities[1].r#type.is_none());

    let caps: mesos::CapabilityInfo =
        json::from_json(br#"{"capabilities":["SYS_NICE","NOPE","CHOWN"]}"#).unwrap();
    assert_eq!(caps.capabilities.len(), 2);

    // In a required field it is an error.
    let err = json::from_json::<Event>(
        br#"{"type":"UPDATE","update":{"status":{"task_id":{"value":"t"},"state":"TASK_BOGUS"}}}"#,
    )
    .unwrap_err();
    assert_eq!(err.path, "update.status.state");
    assert!(err.message.contains("TASK_BOGUS"), "{err}");
}

#[test]
fn enums_by_number_are_accepted_and_unknown_ones_survive() {
    let status: mesos::TaskStatus =
        json::from_json(br#"{"task_id":{"value":"t"},"state":1}"#).unwrap();
    assert_eq!(status.state(), TaskState::TaskRunning);
    // A value unknown to this build (e.g. from a newer peer's protobuf) is written as a
    // number and read back.
    let newer = mesos::TaskStatus {
        state: 99,
        ..status
    };
    let v = json::to_json(&newer);
    assert_eq!(v["state"], 99);
    assert_eq!(json::from_value::<mesos::TaskStatus>(&v).unwrap().state, 99);
}

#[test]
fn bytes_are_base64() {
    let msg = executor::call::Message {
        data: b"\x00\xffhello".to_vec(),
    };
    let v = json::to_json(&msg);
    assert_eq!(v, json!({"data": "AP9oZWxsbw=="}));
    let back: executor::call::Message = json::from_value(&v).unwrap();
    assert_eq!(back, msg);
    // Padding is optional on input.
    let unpadded: executor::call::Message = json::from_json(br#"{"data":"AP9oZWxsbw"}"#).unwrap();
    assert_eq!(unpadded, msg);

    let err = json::from_json::<Event>(
        br#"{"type":"UPDATE","update":{"status":{"task_id":{"value":"t"},"state":"TASK_RUNNING","uuid":"not base64!"}}}"#,
    )
    .unwrap_err();
    assert_eq!(err.path, "update.status.uuid");
    assert!(err.message.contains("invalid base64"), "{err}");
    assert!(err.line == 1 && err.column > 0, "{err:?}");
    let shown = err.to_string();
    assert!(
        shown.starts_with("invalid Mesos JSON at `update.status.uuid` (line 1, column"),
        "{shown}"
    );
}

#[test]
fn missing_required_fields_are_named() {
    let err = json::from_json::<Event>(
        br#"{"type":"UPDATE","update":{"status":{"state":"TASK_RUNNING"}}}"#,
    )
    .unwrap_err();
    assert_eq!(err.path, "update.status.task_id");
    assert_eq!(err.message, "required field is missing");

    let err = json::from_json::<Event>(
        br#"{"type":"OFFERS","offers":{"offers":[{"id":{"value":"o"},"framework_id":{"value":"f"},"agent_id":{"value":"a"},"hostname":"h"},{"id":{"value":"o2"},"framework_id":{"value":"f"},"agent_id":{"value":"a"}}]}}"#,
    )
    .unwrap_err();
    assert_eq!(err.path, "offers.offers[1].hostname");

    // null counts as absent.
    let err = json::from_json::<mesos::TaskId>(br#"{"value":null}"#).unwrap_err();
    assert_eq!(err.path, "value");
    // In a map value.
    let err = json::from_json::<mesos::TaskInfo>(
        br#"{"name":"n","task_id":{"value":"t"},"agent_id":{"value":"a"},"limits":{"cpus":{"value":2},"mem":{}}}"#,
    )
    .unwrap_err();
    assert_eq!(err.path, r#"limits["mem"].value"#);
}

#[test]
fn maps_are_objects() {
    let task: mesos::TaskInfo = json::from_json(
        br#"{"name":"n","task_id":{"value":"t"},"agent_id":{"value":"a"},"limits":{"cpus":{"value":2},"mem":{"value":"1024"}}}"#,
    )
    .unwrap();
    assert_eq!(task.limits["cpus"].value, 2.0);
    assert_eq!(task.limits["mem"].value, 1024.0);
    let v = json::to_json(&task);
    assert_eq!(
        v["limits"],
        json!({"cpus": {"value": 2.0}, "mem": {"value": 1024.0}})
    );
}

#[test]
fn nulls_are_absent_and_wrong_shapes_are_errors() {
    let e: Event = json::from_json(br#"{"type":null,"offers":null,"subscribed":null}"#).unwrap();
    assert_eq!(e, Event::default());
    let fi: FrameworkInfo = json::from_json(br#"{"user":"u","name":"n","roles":null}"#).unwrap();
    assert!(fi.roles.is_empty());

    let err =
        json::from_json::<FrameworkInfo>(br#"{"user":"u","name":"n","roles":"a"}"#).unwrap_err();
    assert_eq!(err.path, "roles");
    assert!(err.message.contains("JSON array"), "{err}");
    let err = json::from_json::<FrameworkInfo>(br#"{"user":1,"name":"n"}"#).unwrap_err();
    assert_eq!(err.path, "user");
    let err = json::from_json::<FrameworkInfo>(br#"{"user":"u","name":"n","roles":["a",2]}"#)
        .unwrap_err();
    assert_eq!(err.path, "roles[1]");
}

#[test]
fn malformed_documents_are_errors_with_positions() {
    for (bad, path, what) in [
        (&b""[..], "", "EOF"),
        (b"[]", "", "JSON object"),
        (b"null", "", "JSON object"),
        (b"{\"type\":\"HEARTBEAT\"} x", "", "trailing"),
        (b"{\"type\":", "type", "EOF"),
        (b"\xff", "", "expected value"),
    ] {
        let err = json::from_json::<Event>(bad).unwrap_err();
        assert_eq!(err.path, path, "{err:?}");
        assert!(err.message.contains(what), "{bad:?}: {err}");
        assert!(err.line >= 1, "{err:?}");
    }
}

#[test]
fn whitespace_around_the_document_is_fine() {
    let e: Event = json::from_json(b"  {\"type\" : \"HEARTBEAT\"}\n").unwrap();
    assert_eq!(e.r#type(), event::Type::Heartbeat);
}

#[test]
fn content_type_matches_exactly() {
    assert_eq!(
        ContentType::from_header("application/json"),
        Some(ContentType::Json)
    );
    assert_eq!(
        ContentType::from_header("application/x-protobuf"),
        Some(ContentType::Protobuf)
    );
    for other in [
        "application/json; charset=utf-8",
        "Application/JSON",
        " application/json",
        "application/protobuf",
        "*/*",
        "",
    ] {
        assert_eq!(ContentType::from_header(other), None, "{other:?}");
    }
    assert_eq!(ContentType::Json.mime(), "application/json");
    assert_eq!(ContentType::Protobuf.mime(), "application/x-protobuf");
    assert_eq!(ContentType::Protobuf.to_string(), "application/x-protobuf");
}

#[test]
fn content_type_encodes_and_decodes_both_ways() {
    let call = Call {
        framework_id: Some(mesos::FrameworkId { value: "f".into() }),
        r#type: Some(call::Type::Decline as i32),
        decline: Some(call::Decline {
            offer_ids: vec![mesos::OfferId { value: "o".into() }],
            filters: Some(Filters {
                refuse_seconds: Some(60.0),
            }),
        }),
        ..Default::default()
    };
    let json_body = ContentType::Json.encode(&call);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&json_body).unwrap(),
        json!({"framework_id": {"value": "f"}, "type": "DECLINE",
               "decline": {"offer_ids": [{"value": "o"}], "filters": {"refuse_seconds": 60.0}}})
    );
    assert_eq!(ContentType::Json.decode::<Call>(&json_body).unwrap(), call);
    let proto_body = ContentType::Protobuf.encode(&call);
    assert_eq!(
        ContentType::Protobuf.decode::<Call>(&proto_body).unwrap(),
        call
    );

    assert!(matches!(
        ContentType::Protobuf.decode::<Call>(b"\xff\xff\xff"),
        Err(DecodeError::Protobuf(_))
    ));
    let err = ContentType::Json.decode::<Call>(b"{").unwrap_err();
    assert!(matches!(err, DecodeError::Json(_)));
    assert!(err.to_string().starts_with("invalid Mesos JSON"), "{err}");
}

#[test]
fn executor_message_data_is_field_two_on_the_wire() {
    let msg = executor::call::Message { data: vec![7] };
    // Field 2, wire type 2 (length-delimited): tag byte 0x12.
    assert_eq!(prost::Message::encode_to_vec(&msg), vec![0x12, 1, 7]);
}

#[test]
fn attribute_text_and_set_numbers() {
    let attr = mesos::Attribute {
        name: "a".into(),
        r#type: value::Type::Text as i32,
        text: Some(value::Text { value: "x".into() }),
        set: Some(value::Set {
            item: vec!["y".into()],
        }),
        ..Default::default()
    };
    let bytes = prost::Message::encode_to_vec(&attr);
    // text is field 5 (tag 0x2a), set is field 6 (tag 0x32).
    let text_at = bytes.iter().position(|b| *b == 0x2a).unwrap();
    let set_at = bytes.iter().position(|b| *b == 0x32).unwrap();
    assert_eq!(&bytes[text_at..text_at + 5], &[0x2a, 3, 0x0a, 1, b'x']);
    assert_eq!(&bytes[set_at..set_at + 5], &[0x32, 3, 0x0a, 1, b'y']);
}

#[test]
fn recursive_container_ids() {
    let id: mesos::ContainerId =
        json::from_json(br#"{"value":"c","parent":{"value":"p","parent":{"value":"g"}}}"#).unwrap();
    assert_eq!(
        id.parent.as_ref().unwrap().parent.as_ref().unwrap().value,
        "g"
    );
    assert_eq!(
        json::to_json(&id),
        json!({"value":"c","parent":{"value":"p","parent":{"value":"g"}}})
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let mut text = String::new();
    for _ in 0..10_000 {
        text.push_str(r#"{"value":"c","parent":"#);
    }
    let err = json::from_json::<mesos::ContainerId>(text.as_bytes()).unwrap_err();
    assert!(err.message.contains("recursion limit"), "{err}");
}
