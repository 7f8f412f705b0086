//! The crate graph's rules (issue 14's "done when"), read from `cargo metadata`: no crate
//! links `retz-executor` but as a dev-dependency (it is a binary that speaks to the server
//! through `retz_proto::task`), and only `retz-topology` depends on hwlocality. Also: the
//! README's crate table names every workspace crate and its arrows list each crate's
//! workspace dependencies.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Each workspace crate's direct dependencies: (name, kind: "normal", "dev" or "build").
type Graph = BTreeMap<String, Vec<(String, String)>>;

fn workspace_graph(metadata: &Value) -> Graph {
    let members: Vec<&str> = metadata["workspace_members"]
        .as_array()
        .expect("workspace_members")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let mut graph = Graph::new();
    for p in metadata["packages"].as_array().expect("packages") {
        if !p["id"].as_str().is_some_and(|id| members.contains(&id)) {
            continue;
        }
        let deps = p["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .map(|d| {
                let kind = d["kind"].as_str().unwrap_or("normal").to_owned();
                (d["name"].as_str().unwrap_or_default().to_owned(), kind)
            })
            .collect();
        graph.insert(p["name"].as_str().expect("name").to_owned(), deps);
    }
    graph
}

/// Every broken rule, one line each.
fn violations(graph: &Graph) -> Vec<String> {
    let mut out = Vec::new();
    for (krate, deps) in graph {
        for (dep, kind) in deps {
            if dep == "retz-executor" && kind != "dev" {
                out.push(format!("{krate} has a {kind} dependency on retz-executor"));
            }
            if dep == "hwlocality" && krate != "retz-topology" {
                out.push(format!(
                    "{krate} depends on hwlocality; only retz-topology may"
                ));
            }
        }
    }
    out
}

fn metadata() -> Value {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--no-deps",
        ])
        .current_dir(&root)
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata JSON")
}

#[test]
fn nothing_links_the_executor_and_only_topology_links_hwlocality() {
    let graph = workspace_graph(&metadata());
    assert!(graph.contains_key("retz-executor") && graph.contains_key("retz-topology"));
    assert!(
        graph["retz-topology"]
            .iter()
            .any(|(d, _)| d == "hwlocality"),
        "retz-topology no longer links hwlocality: update this test"
    );
    assert_eq!(violations(&graph), Vec::<String>::new());
}

/// The rules catch what they are about (a graph with both faults).
#[test]
fn the_rules_fail_on_a_forbidden_dependency() {
    let bad: Value = serde_json::json!({
        "workspace_members": ["a", "b", "c"],
        "packages": [
            {"id": "a", "name": "retz-scheduler", "dependencies": [
                {"name": "retz-executor", "kind": null}]},
            {"id": "b", "name": "retz-sim", "dependencies": [
                {"name": "hwlocality", "kind": null},
                {"name": "retz-executor", "kind": "dev"}]},
            {"id": "c", "name": "retz-topology", "dependencies": [
                {"name": "hwlocality", "kind": null}]},
        ]
    });
    assert_eq!(
        violations(&workspace_graph(&bad)),
        [
            "retz-scheduler has a normal dependency on retz-executor",
            "retz-sim depends on hwlocality; only retz-topology may",
        ]
    );
}

/// The README's crate table has a row per workspace crate, and its "crate graph" lists
/// each crate's normal workspace dependencies (`a → b, c`).
#[test]
fn the_readme_crate_table_and_arrows_match_the_workspace() {
    let graph = workspace_graph(&metadata());
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .expect("README.md");
    for krate in graph.keys() {
        assert!(
            readme.contains(&format!("| `{krate}` |")),
            "README's crate table has no row for {krate}"
        );
    }
    let arrows: BTreeMap<String, Vec<String>> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("    "))
        .filter_map(|l| l.split_once(" → "))
        .map(|(from, to)| {
            let mut to: Vec<String> = to
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty() && s != "-")
                .collect();
            to.sort();
            (from.trim().to_owned(), to)
        })
        .collect();
    for (krate, deps) in &graph {
        let mut want: Vec<String> = deps
            .iter()
            .filter(|(d, kind)| kind == "normal" && graph.contains_key(d))
            .map(|(d, _)| d.clone())
            .collect();
        want.sort();
        want.dedup();
        assert_eq!(
            arrows.get(krate),
            Some(&want),
            "README's crate graph line for {krate} (write `    {krate} → {}`)",
            if want.is_empty() {
                "-".to_owned()
            } else {
                want.join(", ")
            }
        );
    }
}
