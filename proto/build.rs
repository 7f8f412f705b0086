//! Build script of `retz-proto`.
//!
//! 1. Compiles the hand-written Mesos `.proto` files with protox (no system `protoc`).
//! 2. Generates the Rust types with prost-build (`$OUT_DIR/mesos.v1*.rs`).
//! 3. Writes the encoded `FileDescriptorSet` (`$OUT_DIR/mesos_descriptors.bin`).
//! 4. Generates the Mesos JSON dialect impls (`$OUT_DIR/mesos_json.rs`): one
//!    `MesosJson` impl per message and one `JsonEnum` impl per enum, calling the small
//!    runtime in `src/json/rt.rs`. The rules (defaults, deprecation, required fields)
//!    are read from the descriptors, so the JSON layer cannot drift from the `.proto`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use heck::{ToSnakeCase, ToUpperCamelCase};
use prost::Message as _;
use protox::prost_reflect::prost_types::field_descriptor_proto::{Label, Type};
use protox::prost_reflect::prost_types::{
    DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorSet,
};

const FILES: [&str; 3] = [
    "proto/mesos/v1/mesos.proto",
    "proto/mesos/v1/scheduler/scheduler.proto",
    "proto/mesos/v1/executor/executor.proto",
];

/// Large, rarely set message fields that prost stores boxed, so that the hot messages
/// (`Resource` in every offer, `TaskInfo`) stay small: an unboxed `Resource.disk` alone
/// made every `Resource` 984 bytes instead of 280.
const BOXED: [&str; 9] = [
    ".mesos.v1.Resource.disk",
    ".mesos.v1.TaskInfo.container",
    ".mesos.v1.TaskInfo.health_check",
    ".mesos.v1.TaskInfo.check",
    ".mesos.v1.TaskInfo.discovery",
    ".mesos.v1.ExecutorInfo.container",
    ".mesos.v1.ExecutorInfo.discovery",
    ".mesos.v1.Volume.image",
    ".mesos.v1.Volume.source",
];

fn main() {
    for f in &FILES {
        println!("cargo:rerun-if-changed={f}");
    }
    println!("cargo:rerun-if-changed=build.rs");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));

    let fds = match protox::compile(FILES, ["proto"]) {
        Ok(fds) => fds,
        Err(e) => panic!("cannot compile the Mesos .proto files: {e:?}"),
    };
    std::fs::write(out_dir.join("mesos_descriptors.bin"), fds.encode_to_vec())
        .expect("write the descriptor set");

    let json = generate_json(&fds);
    std::fs::write(out_dir.join("mesos_json.rs"), json).expect("write mesos_json.rs");

    // Keep `deprecated` in the .proto (the JSON layer reads it, above) but do not turn it
    // into `#[deprecated]` on the Rust fields: Mesos still needs `Resource.role` in the
    // pre-refinement resource format, and users should not drown in warnings.
    let mut fds = fds;
    for file in &mut fds.file {
        for msg in &mut file.message_type {
            strip_deprecated(msg);
        }
    }
    let mut config = prost_build::Config::new();
    config.btree_map(["."]);
    for path in BOXED {
        config.boxed(path);
    }
    if let Err(e) = config.compile_fds(fds) {
        panic!("prost-build failed: {e}");
    }
}

fn strip_deprecated(msg: &mut DescriptorProto) {
    for field in &mut msg.field {
        if let Some(options) = field.options.as_mut() {
            options.deprecated = None;
        }
    }
    for nested in &mut msg.nested_type {
        strip_deprecated(nested);
    }
}

// ------------------------------------------------------------------ naming (as prost)

fn sanitize(ident: String) -> String {
    match ident.as_str() {
        "as" | "break" | "const" | "continue" | "else" | "enum" | "false" | "fn" | "for" | "if"
        | "impl" | "in" | "let" | "loop" | "match" | "mod" | "move" | "mut" | "pub" | "ref"
        | "return" | "static" | "struct" | "trait" | "true" | "type" | "unsafe" | "use"
        | "where" | "while" | "dyn" | "abstract" | "become" | "box" | "do" | "final" | "macro"
        | "override" | "priv" | "typeof" | "unsized" | "virtual" | "yield" | "async" | "await"
        | "try" | "gen" => format!("r#{ident}"),
        "_" | "super" | "self" | "Self" | "extern" | "crate" => format!("{ident}_"),
        _ => ident,
    }
}

fn to_snake(s: &str) -> String {
    sanitize(s.to_snake_case())
}

fn to_upper_camel(s: &str) -> String {
    sanitize(s.to_upper_camel_case())
}

// ------------------------------------------------------------------ descriptor index

impl Index<'_> {
    /// Whether prost boxes this (non-repeated message) field: configured in [`BOXED`], or
    /// its type reaches back to the message holding it through non-repeated message
    /// fields (prost's rule for recursive messages).
    fn boxed(&self, field: &FieldDescriptorProto) -> bool {
        let Some(owner) = self.owner_of(field) else {
            return false;
        };
        if BOXED.contains(&format!("{owner}.{}", field.name()).as_str()) {
            return true;
        }
        let mut stack = vec![field.type_name().to_string()];
        let mut visited = std::collections::BTreeSet::new();
        while let Some(name) = stack.pop() {
            if name == owner {
                return true;
            }
            if !visited.insert(name.clone()) {
                continue;
            }
            if let Some(info) = self.messages.get(&name) {
                for f in &info.desc.field {
                    if f.r#type() == Type::Message && f.label() != Label::Repeated {
                        stack.push(f.type_name().to_string());
                    }
                }
            }
        }
        false
    }

    fn owner_of(&self, field: &FieldDescriptorProto) -> Option<String> {
        self.messages
            .iter()
            .find(|(_, info)| info.desc.field.iter().any(|f| std::ptr::eq(f, field)))
            .map(|(name, _)| name.clone())
    }
}

struct MsgInfo<'a> {
    proto_name: String,
    rust_path: String,
    desc: &'a DescriptorProto,
}

#[derive(Default)]
struct Index<'a> {
    messages: BTreeMap<String, MsgInfo<'a>>,
    enums: BTreeMap<String, (String, &'a EnumDescriptorProto)>,
}

fn index_message<'a>(
    idx: &mut Index<'a>,
    scope_proto: &str,
    scope_rust: &str,
    msg: &'a DescriptorProto,
) {
    let name = msg.name();
    let proto_name = format!("{scope_proto}.{name}");
    let rust_path = format!("{scope_rust}::{}", to_upper_camel(name));
    let module = format!("{scope_rust}::{}", to_snake(name));
    for nested in &msg.nested_type {
        index_message(idx, &proto_name, &module, nested);
    }
    for e in &msg.enum_type {
        idx.enums.insert(
            format!("{proto_name}.{}", e.name()),
            (format!("{module}::{}", to_upper_camel(e.name())), e),
        );
    }
    idx.messages.insert(
        proto_name.clone(),
        MsgInfo {
            proto_name: proto_name.trim_start_matches('.').to_string(),
            rust_path,
            desc: msg,
        },
    );
}

fn build_index(fds: &FileDescriptorSet) -> Index<'_> {
    let mut idx = Index::default();
    for file in &fds.file {
        let package = file.package();
        let scope_proto = format!(".{package}");
        let scope_rust = std::iter::once("crate::generated".to_string())
            .chain(package.split('.').map(to_snake))
            .collect::<Vec<_>>()
            .join("::");
        for msg in &file.message_type {
            index_message(&mut idx, &scope_proto, &scope_rust, msg);
        }
        for e in &file.enum_type {
            idx.enums.insert(
                format!("{scope_proto}.{}", e.name()),
                (format!("{scope_rust}::{}", to_upper_camel(e.name())), e),
            );
        }
    }
    idx
}

fn is_map_entry(msg: &DescriptorProto) -> bool {
    msg.options.as_ref().is_some_and(|o| o.map_entry())
}

// ------------------------------------------------------------------ code generation

/// How a JSON value of one element is read and written (a `rt::Kind`).
fn kind(idx: &Index<'_>, field: &FieldDescriptorProto, required: bool) -> String {
    let k = element_kind(idx, field, required);
    if field.label() != Label::Repeated && field.r#type() == Type::Message && idx.boxed(field) {
        format!("rt::KBox<{k}>")
    } else {
        k
    }
}

fn element_kind(idx: &Index<'_>, field: &FieldDescriptorProto, required: bool) -> String {
    match field.r#type() {
        Type::String => "rt::KString".into(),
        Type::Bytes => "rt::KBytes".into(),
        Type::Bool => "rt::KBool".into(),
        Type::Int32 | Type::Sint32 | Type::Sfixed32 => "rt::KI32".into(),
        Type::Int64 | Type::Sint64 | Type::Sfixed64 => "rt::KI64".into(),
        Type::Uint32 | Type::Fixed32 => "rt::KU32".into(),
        Type::Uint64 | Type::Fixed64 => "rt::KU64".into(),
        Type::Double => "rt::KF64".into(),
        Type::Float => "rt::KF32".into(),
        Type::Enum => {
            let (path, _) = idx
                .enums
                .get(field.type_name())
                .unwrap_or_else(|| panic!("unknown enum {}", field.type_name()));
            if required {
                format!("rt::KEnumRequired<{path}>")
            } else {
                format!("rt::KEnum<{path}>")
            }
        }
        Type::Message => {
            let info = idx
                .messages
                .get(field.type_name())
                .unwrap_or_else(|| panic!("unknown message {}", field.type_name()));
            format!("rt::KMsg<{}>", info.rust_path)
        }
        Type::Group => panic!("proto2 groups are not supported ({})", field.name()),
    }
}

enum Shape<'a> {
    Map(&'a DescriptorProto),
    Repeated,
    /// prost stores required fields, messages included, unwrapped (`T`).
    Required,
    Optional,
}

fn shape<'a>(idx: &Index<'a>, field: &FieldDescriptorProto) -> Shape<'a> {
    match field.label() {
        Label::Repeated => {
            if field.r#type() == Type::Message {
                let info = &idx.messages[field.type_name()];
                if is_map_entry(info.desc) {
                    return Shape::Map(info.desc);
                }
            }
            Shape::Repeated
        }
        Label::Required => Shape::Required,
        Label::Optional => Shape::Optional,
    }
}

fn generate_json(fds: &FileDescriptorSet) -> String {
    let idx = build_index(fds);
    let mut out = String::new();
    out.push_str("// @generated by retz-proto's build.rs from the Mesos descriptors.\n\n");

    for (path, e) in idx.enums.values() {
        let _ = e;
        let _ = writeln!(
            out,
            "impl rt::JsonEnum for {path} {{\n    \
             fn from_name(name: &str) -> Option<i32> {{ Self::from_str_name(name).map(|v| v as i32) }}\n    \
             fn name(value: i32) -> Option<&'static str> {{ Self::try_from(value).ok().map(|v| v.as_str_name()) }}\n}}\n"
        );
    }

    for info in idx.messages.values() {
        if is_map_entry(info.desc) {
            continue;
        }
        generate_message(&mut out, &idx, info);
    }
    out
}

fn generate_message(out: &mut String, idx: &Index<'_>, info: &MsgInfo<'_>) {
    let msg = info.desc;
    assert!(
        msg.oneof_decl.is_empty(),
        "oneofs are not supported by the JSON generator ({})",
        info.proto_name
    );
    let fields: Vec<&FieldDescriptorProto> = msg.field.iter().collect();

    // ---- deserialisation
    let mut de = String::new();
    let names: Vec<String> = fields.iter().map(|f| format!("{:?}", f.name())).collect();
    let _ = writeln!(
        de,
        "    fn json_visit_map<'de, A: serde::de::MapAccess<'de>>(mut map: A, ctx: &mut rt::DeCtx) -> Result<Self, A::Error> {{"
    );
    let _ = writeln!(
        de,
        "        const FIELDS: &[&str] = &[{}];",
        names.join(", ")
    );
    let _ = writeln!(de, "        let mut msg = Self::default();");
    for (i, f) in fields.iter().enumerate() {
        if matches!(shape(idx, f), Shape::Required) {
            let _ = writeln!(de, "        let mut seen_{i} = false;");
        }
    }
    let _ = writeln!(
        de,
        "        while let Some(index) = map.next_key_seed(rt::FieldKey(FIELDS))? {{"
    );
    let _ = writeln!(de, "            match index {{");
    for (i, f) in fields.iter().enumerate() {
        let ident = to_snake(f.name());
        let name = f.name();
        let line = match shape(idx, f) {
            Shape::Map(entry) => {
                let value = entry
                    .field
                    .iter()
                    .find(|f| f.number() == 2)
                    .expect("map value field");
                let key = entry
                    .field
                    .iter()
                    .find(|f| f.number() == 1)
                    .expect("map key");
                assert_eq!(
                    key.r#type(),
                    Type::String,
                    "only string map keys are supported"
                );
                format!(
                    "rt::de_map::<{}, _>(&mut map, ctx, {name:?}, &mut msg.{ident})?",
                    kind(idx, value, false)
                )
            }
            Shape::Repeated => format!(
                "rt::de_repeated::<{}, _>(&mut map, ctx, {name:?}, &mut msg.{ident})?",
                kind(idx, f, false)
            ),
            Shape::Required => format!(
                "rt::de_required::<{}, _>(&mut map, ctx, {name:?}, &mut msg.{ident}, &mut seen_{i})?",
                kind(idx, f, true)
            ),
            Shape::Optional => format!(
                "rt::de_optional::<{}, _>(&mut map, ctx, {name:?}, &mut msg.{ident})?",
                kind(idx, f, false)
            ),
        };
        let _ = writeln!(de, "                {i} => {line},");
    }
    let _ = writeln!(de, "                _ => rt::skip_value(&mut map)?,");
    let _ = writeln!(de, "            }}");
    let _ = writeln!(de, "        }}");
    for (i, f) in fields.iter().enumerate() {
        let name = f.name();
        if matches!(shape(idx, f), Shape::Required) {
            let _ = writeln!(
                de,
                "        if !seen_{i} {{ return Err(rt::missing::<A::Error>(ctx, {name:?})); }}"
            );
        }
    }
    let _ = writeln!(de, "        Ok(msg)");
    let _ = writeln!(de, "    }}");

    // ---- serialisation
    let mut ser = String::new();
    let _ = writeln!(
        ser,
        "    fn json_serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {{"
    );
    let _ = writeln!(ser, "        use serde::ser::SerializeMap as _;");
    if fields.is_empty() {
        let _ = writeln!(ser, "        let m = serializer.serialize_map(Some(0))?;");
    } else {
        let _ = writeln!(ser, "        let mut m = serializer.serialize_map(None)?;");
    }
    for f in &fields {
        let ident = to_snake(f.name());
        let name = f.name();
        let deprecated = f.options.as_ref().is_some_and(|o| o.deprecated());
        let line = match shape(idx, f) {
            Shape::Map(entry) => {
                let value = entry.field.iter().find(|f| f.number() == 2).expect("value");
                format!(
                    "rt::ser_map::<{}, _>(&mut m, {name:?}, &self.{ident})?;",
                    kind(idx, value, false)
                )
            }
            Shape::Repeated => format!(
                "rt::ser_repeated::<{}, _>(&mut m, {name:?}, &self.{ident})?;",
                kind(idx, f, false)
            ),
            Shape::Required => format!(
                "rt::ser_value::<{}, _>(&mut m, {name:?}, &self.{ident})?;",
                kind(idx, f, true)
            ),
            Shape::Optional if f.default_value.is_some() && !deprecated => {
                // Unset but defaulted: stout prints the default.
                let value = match f.r#type() {
                    Type::String => format!("self.{ident}().to_owned()"),
                    Type::Bytes => format!("self.{ident}().to_vec()"),
                    Type::Enum => format!("self.{ident}.unwrap_or(self.{ident}() as i32)"),
                    _ => format!("self.{ident}()"),
                };
                format!(
                    "rt::ser_value::<{}, _>(&mut m, {name:?}, &{value})?;",
                    kind(idx, f, false)
                )
            }
            Shape::Optional => format!(
                "rt::ser_optional::<{}, _>(&mut m, {name:?}, self.{ident}.as_ref())?;",
                kind(idx, f, false)
            ),
        };
        let _ = writeln!(ser, "        {line}");
    }
    let _ = writeln!(ser, "        m.end()");
    let _ = writeln!(ser, "    }}");

    let _ = writeln!(
        out,
        "impl MesosJson for {} {{\n    const PROTO_NAME: &'static str = {:?};\n{de}{ser}}}\n",
        info.rust_path, info.proto_name
    );
}
