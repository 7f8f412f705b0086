//! `retz-admin create-users` and `create-user --format properties` against the real
//! server (`retz-server --local`): the written configs are original-style properties
//! files (mode 0600) that `retz-client` takes as they are, and a run that would
//! overwrite a file or read a bad name creates no user.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use retz_e2e_tests::{Server, admin, client_ok};

fn users(config: &Path) -> usize {
    let out = admin(config, &["--json", "list-user"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array().expect("a list of users").len()
}

#[test]
fn create_users_writes_working_properties_configs_and_refuses_whole() {
    let tmp = retz_e2e_tests::test_dir();
    let server = Server::start(&tmp.path().join("data"), &["--local"]);
    let adm = &server.client_config;
    let out_dir = tmp.path().join("configs");
    std::fs::create_dir(&out_dir).unwrap();
    let names = tmp.path().join("names.txt");
    std::fs::write(&names, "# team\nalice\n\nbob-2\n").unwrap();
    let before = users(adm);

    let out = admin(
        adm,
        &[
            "create-users",
            "--file",
            names.to_str().unwrap(),
            "--output",
            out_dir.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(users(adm), before + 2);
    for name in ["alice", "bob-2"] {
        let file = out_dir.join(format!("retz.properties-{name}"));
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("retz.access.key = "), "{text}");
        assert!(text.contains("retz.access.secret = "), "{text}");
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // The new user's own config works as it is, and sees none of the admin's apps.
        let listed = client_ok(&file, &["list-app"]);
        assert!(!listed.contains("ERROR"), "{listed}");
    }

    // Again: the files exist, so nothing is created (exit 3, a local file problem).
    let again = admin(
        adm,
        &[
            "create-users",
            "--file",
            names.to_str().unwrap(),
            "--output",
            out_dir.to_str().unwrap(),
        ],
    );
    assert_eq!(again.status.code(), Some(3));
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("exists") && err.lines().count() == 1, "{err}");
    assert_eq!(users(adm), before + 2);

    // A bad name: a usage error (exit 2) naming the line, nothing created.
    std::fs::write(&names, "carol\n../evil\n").unwrap();
    let bad = admin(
        adm,
        &[
            "create-users",
            "--file",
            names.to_str().unwrap(),
            "--output",
            out_dir.to_str().unwrap(),
        ],
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("line 2"));
    assert_eq!(users(adm), before + 2);

    // create-user --format properties prints the original's lines, usable as a config.
    let out = admin(
        adm,
        &["create-user", "--info", "dave", "--format", "properties"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let props = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(props.contains("retz.authentication = true"), "{props}");
    let dave = tmp.path().join("dave.properties");
    std::fs::write(&dave, &props).unwrap();
    client_ok(&dave, &["list-app"]);
}
