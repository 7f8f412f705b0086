//! Mesos wire codec benches: RecordIO stream decoding throughput, and decoding of one
//! large OFFERS event (1,000 offers carrying the Retz NUMA resources and attributes) in
//! protobuf and in Mesos JSON. Goals on the dev machine: protobuf < 2 ms, JSON < 10 ms
//! per 1,000-offer event.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use prost::Message as _;
use retz_proto::mesos::{self, Attribute, Offer, Resource, resource, value};
use retz_proto::recordio::{RecordDecoder, encode_record};
use retz_proto::scheduler::{Event, event};
use retz_proto::{ContentType, json};

fn scalar(name: &str, v: f64) -> Resource {
    Resource {
        name: name.into(),
        r#type: value::Type::Scalar as i32,
        scalar: Some(value::Scalar { value: v }),
        role: Some("*".into()),
        allocation_info: Some(resource::AllocationInfo {
            role: Some("batch".into()),
        }),
        ..Default::default()
    }
}

fn ranges(name: &str, rs: &[(u64, u64)]) -> Resource {
    Resource {
        name: name.into(),
        r#type: value::Type::Ranges as i32,
        ranges: Some(value::Ranges {
            range: rs
                .iter()
                .map(|&(begin, end)| value::Range { begin, end })
                .collect(),
        }),
        role: Some("*".into()),
        allocation_info: Some(resource::AllocationInfo {
            role: Some("batch".into()),
        }),
        ..Default::default()
    }
}

fn text(name: &str, v: String) -> Attribute {
    Attribute {
        name: name.into(),
        r#type: value::Type::Text as i32,
        text: Some(value::Text { value: v }),
        ..Default::default()
    }
}

/// An offer from a 2-socket, 2-NUMA-node, 64-thread agent, as a Retz agent advertises it.
fn numa_offer(i: usize) -> Offer {
    let attributes = vec![
        text("retz_numa_nodes", "2".into()),
        text(
            "retz_numa0_cpus",
            format!("0-15.32-47.host{i:05}.socket0.l3-32MiB.mem-96GiB"),
        ),
        text(
            "retz_numa1_cpus",
            format!("16-31.48-63.host{i:05}.socket1.l3-32MiB.mem-96GiB"),
        ),
        text(
            "retz_numa0_mem",
            format!("103079215104.free-98765432109.host{i:05}.node0.dimm-6"),
        ),
        text(
            "retz_numa1_mem",
            format!("103079215104.free-97654321098.host{i:05}.node1.dimm-6"),
        ),
        text(
            "retz_smt",
            "0:32.1:33.2:34.3:35.4:36.5:37.6:38.7:39.8:40.9:41.10:42.11:43".into(),
        ),
        text(
            "retz_slit",
            "10.21.21.10.node-distance-matrix-2x2.acpi-slit-v1.retz".into(),
        ),
        text(
            "retz_topology",
            format!("pack-2.numa-2.core-32.pu-64.host{i:05}.hwloc-2.9.0.x86"),
        ),
    ];
    Offer {
        id: mesos::OfferId {
            value: format!("4f3b9a2c-7d51-4e0a-9c61-2b8e5f0d1a3e-O{i}"),
        },
        framework_id: mesos::FrameworkId {
            value: "4f3b9a2c-7d51-4e0a-9c61-2b8e5f0d1a3e-0000".into(),
        },
        agent_id: mesos::AgentId {
            value: format!("4f3b9a2c-7d51-4e0a-9c61-2b8e5f0d1a3e-S{i}"),
        },
        hostname: format!("node{i:05}.cluster.example.com"),
        resources: vec![
            scalar("cpus", 64.0),
            scalar("mem", 191_488.0),
            scalar("disk", 1_843_200.0),
            ranges("cpuids", &[(0, 15), (32, 47)]),
            scalar("numanodes", 2.0),
            ranges("ports", &[(31000, 32000)]),
        ],
        attributes,
        allocation_info: Some(resource::AllocationInfo {
            role: Some("batch".into()),
        }),
        ..Default::default()
    }
}

fn offers_event(n: usize, first: usize) -> Event {
    Event {
        r#type: Some(event::Type::Offers as i32),
        offers: Some(event::Offers {
            offers: (first..first + n).map(numa_offer).collect(),
        }),
        ..Default::default()
    }
}

fn bench_big_event(c: &mut Criterion) {
    let big = offers_event(1000, 0);
    let proto = big.encode_to_vec();
    let json_bytes = json::to_vec(&big);
    eprintln!(
        "1,000-offer OFFERS event: {} bytes protobuf, {} bytes JSON",
        proto.len(),
        json_bytes.len()
    );
    assert_eq!(Event::decode(proto.as_slice()).unwrap(), big);
    assert_eq!(json::from_json::<Event>(&json_bytes).unwrap(), big);

    let mut g = c.benchmark_group("offers_event_1000");
    g.throughput(Throughput::Elements(1));
    // Decoding only: the decoded event is dropped outside the timed section.
    g.bench_function("decode_protobuf", |b| {
        b.iter_with_large_drop(|| Event::decode(black_box(proto.as_slice())).unwrap())
    });
    g.bench_function("decode_json", |b| {
        b.iter_with_large_drop(|| json::from_json::<Event>(black_box(&json_bytes)).unwrap())
    });
    // Decoding and dropping, as a consumer that discards the event would pay.
    g.bench_function("decode_and_drop_protobuf", |b| {
        b.iter(|| Event::decode(black_box(proto.as_slice())).unwrap())
    });
    g.bench_function("decode_and_drop_json", |b| {
        b.iter(|| json::from_json::<Event>(black_box(&json_bytes)).unwrap())
    });
    g.bench_function("encode_protobuf", |b| {
        b.iter(|| black_box(&big).encode_to_vec())
    });
    g.bench_function("encode_json", |b| b.iter(|| json::to_vec(black_box(&big))));
    g.finish();
}

fn bench_recordio(c: &mut Criterion) {
    // 50 OFFERS events of 20 offers each, framed, delivered in 16 KiB chunks.
    let mut g = c.benchmark_group("recordio_decode");
    for ct in [ContentType::Json, ContentType::Protobuf] {
        let mut stream = BytesMut::new();
        for i in 0..50 {
            encode_record(&ct.encode(&offers_event(20, i * 20)), &mut stream);
        }
        let stream = stream.freeze();
        let name = match ct {
            ContentType::Json => "offers_stream_json",
            ContentType::Protobuf => "offers_stream_protobuf",
        };
        g.throughput(Throughput::Bytes(stream.len() as u64));
        g.bench_function(name, |b| {
            b.iter_batched(
                RecordDecoder::default,
                |mut dec| {
                    let mut n = 0;
                    for chunk in stream.chunks(16 * 1024) {
                        dec.push(chunk);
                        while let Some(r) = dec.next_record().unwrap() {
                            n += r.len();
                        }
                    }
                    assert_eq!(dec.buffered(), 0);
                    n
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench_big_event, bench_recordio);
criterion_main!(benches);
