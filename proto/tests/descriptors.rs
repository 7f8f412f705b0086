//! The embedded `FileDescriptorSet` describes the three Mesos files and packages.

use prost::Message;

#[derive(Clone, PartialEq, Message)]
struct FileDescriptorSet {
    #[prost(message, repeated, tag = "1")]
    file: Vec<FileDescriptor>,
}

#[derive(Clone, PartialEq, Message)]
struct FileDescriptor {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(string, optional, tag = "2")]
    package: Option<String>,
}

#[test]
fn descriptor_set_lists_the_mesos_files() {
    let set = FileDescriptorSet::decode(retz_proto::FILE_DESCRIPTOR_SET).unwrap();
    let files: Vec<(String, String)> = set
        .file
        .into_iter()
        .map(|f| (f.name.unwrap_or_default(), f.package.unwrap_or_default()))
        .collect();
    assert_eq!(
        files,
        vec![
            ("mesos/v1/mesos.proto".into(), "mesos.v1".into()),
            (
                "mesos/v1/scheduler/scheduler.proto".into(),
                "mesos.v1.scheduler".into()
            ),
            (
                "mesos/v1/executor/executor.proto".into(),
                "mesos.v1.executor".into()
            ),
        ]
    );
}

#[test]
fn proto_names_are_full_names() {
    use retz_proto::MesosJson;
    assert_eq!(
        retz_proto::scheduler::Event::PROTO_NAME,
        "mesos.v1.scheduler.Event"
    );
    assert_eq!(
        retz_proto::mesos::offer::operation::Launch::PROTO_NAME,
        "mesos.v1.Offer.Operation.Launch"
    );
}
