//! Compiles the hand-written Mesos `.proto` files with protox (no system `protoc`) and
//! generates the Rust types with prost-build.

fn main() {
    let files = [
        "proto/mesos/v1/mesos.proto",
        "proto/mesos/v1/scheduler/scheduler.proto",
        "proto/mesos/v1/executor/executor.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = match protox::compile(files, ["proto"]) {
        Ok(fds) => fds,
        Err(e) => panic!("cannot compile the Mesos .proto files: {e:?}"),
    };
    // Keep `deprecated` in the .proto (the JSON layer reads it) but do not turn it into
    // `#[deprecated]` on the Rust fields: Mesos still needs `Resource.role` in the
    // pre-refinement resource format, and users should not drown in warnings.
    let mut fds = fds;
    for file in &mut fds.file {
        for msg in &mut file.message_type {
            strip_deprecated(msg);
        }
    }
    let mut config = prost_build::Config::new();
    config.btree_map(["."]);
    if let Err(e) = config.compile_fds(fds) {
        panic!("prost-build failed: {e}");
    }
}

fn strip_deprecated(msg: &mut protox::prost_reflect::prost_types::DescriptorProto) {
    for field in &mut msg.field {
        if let Some(options) = field.options.as_mut() {
            options.deprecated = None;
        }
    }
    for nested in &mut msg.nested_type {
        strip_deprecated(nested);
    }
}
