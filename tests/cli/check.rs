//! `mcpspy check` without the kernel: silent on the fixtures' honest
//! servers (or the test says why), protocol faults of a synthetic capture
//! at their exact items, SARIF that validates against the OASIS schema,
//! JUnit that parses, baselines, rule selection and exit codes.

use super::support::*;
use super::{mcpspy, stderr, stdout};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The findings of `check --format json` (one object per line), and the exit code.
fn findings(args: &[&str]) -> (Vec<Value>, Option<i32>) {
    let mut all = vec!["check", "--format", "json"];
    all.extend_from_slice(args);
    let o = mcpspy(&all);
    assert!(o.status.code() != Some(2), "{}", stderr(&o));
    let f = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    (f, o.status.code())
}

fn rules_of(f: &[Value]) -> BTreeSet<String> {
    f.iter()
        .map(|x| x["rule"].as_str().unwrap().to_string())
        .collect()
}

/// Why each fixture reports what it reports: every fixture was recorded
/// before captures were sealed; the Python and Node clients call a tool
/// that fails, one that does not exist and an unknown method on purpose
/// (tests/peers/py_client.py, node_client.mjs); py_legacy_sse uses the
/// deprecated transport on purpose.
#[test]
fn honest_fixtures_report_only_what_they_were_recorded_to_show() {
    for fixture in [
        "node_everything_stdio",
        "node_https",
        "py_http",
        "py_legacy_sse",
        "py_stdio_discover",
        "py_stdio_legacy",
        "py_stdio_sealed",
    ] {
        let path = format!("{}/fixtures/{fixture}.db", env!("CARGO_MANIFEST_DIR"));
        let (f, code) = findings(&[&path]);
        let mut expected: BTreeSet<String> = ["protocol.tool-error".to_string()].into();
        if fixture != "py_stdio_sealed" {
            expected.insert("health.unsealed".into());
        }
        if fixture == "py_legacy_sse" {
            expected.insert("protocol.deprecated-transport".into());
        }
        assert_eq!(rules_of(&f), expected, "{fixture}: {f:#?}");
        assert_eq!(code, Some(0), "{fixture}: nothing at error");
        let failing: BTreeSet<&str> = f
            .iter()
            .filter(|x| x["rule"] == "protocol.tool-error")
            .map(|x| x["message"].as_str().unwrap())
            .collect();
        assert!(
            failing.iter().any(|m| m.contains("\"no_such_tool\"")),
            "{fixture}: {failing:?}"
        );
    }
}

/// A capture with faults planted at known items: checked by rule and item.
#[test]
fn protocol_faults_point_at_their_items() {
    let dir = tempfile::tempdir().unwrap();
    let mut sy = Synth::new(&dir.path().join("faults.db"));
    let c2s = sy.pipe();
    let s2c = sy.pipe();
    let asked = INIT_PARAMS.replace("2025-06-18", "2025-11-25");
    let tools = r#"{"tools":[{"name":"add","description":"Add two numbers.","inputSchema":{"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"integer"}},"required":["a","b"]},"outputSchema":{"type":"object","properties":{"sum":{"type":"integer"}},"required":["sum"]}}]}"#;
    let items = [
        (CLIENT, SERVER, c2s, request(1, "initialize", &asked)), // 1
        (SERVER, CLIENT, s2c, response(1, INIT_RESULT)),         // 2: another version
        (CLIENT, SERVER, c2s, request(2, "tools/list", "{}")),   // 3
        (SERVER, CLIENT, s2c, response(2, tools)),               // 4
        (
            CLIENT,
            SERVER,
            c2s,
            request(
                3,
                "tools/call",
                r#"{"name":"add","arguments":{"a":"one","b":2}}"#,
            ),
        ), // 5: a string for an integer
        (SERVER, CLIENT, s2c, error(3, -32602, "bad a")),        // 6
        (
            CLIENT,
            SERVER,
            c2s,
            request(
                4,
                "tools/call",
                r#"{"name":"add","arguments":{"a":1,"b":2}}"#,
            ),
        ), // 7
        (
            SERVER,
            CLIENT,
            s2c,
            response(4, r#"{"content":[],"structuredContent":{"sum":"3"}}"#),
        ), // 8: the sum as a string
        (SERVER, CLIENT, s2c, response(99, "{}")),               // 9: never requested
        (CLIENT, SERVER, c2s, "{\"jsonrpc\":\"2.0\",".to_string()), // 10: not JSON
        (
            CLIENT,
            SERVER,
            c2s,
            request(
                5,
                "tools/call",
                r#"{"name":"add","arguments":{"a":1,"b":1,"note":"key AKIAIOSFODNN7EXAMPLE"}}"#,
            ),
        ), // 11: a secret; never answered
    ];
    for (from, to, chan, json) in &items {
        sy.send(*from, *to, *chan, json);
        sy.advance(2_000_000_000);
    }
    let cap = sy.finish();
    let (f, code) = findings(&[s(&cap), "--slow", "1s"]);
    assert_eq!(code, Some(1), "errors found");
    let at: BTreeMap<(String, u64), Value> = f
        .iter()
        .filter_map(|x| {
            Some((
                (x["rule"].as_str()?.to_string(), x["item"].as_u64()?),
                x.clone(),
            ))
        })
        .collect();
    let has = |rule: &str, n: u64| {
        at.get(&(rule.to_string(), n))
            .unwrap_or_else(|| panic!("{rule} at item {n}: {f:#?}"))
    };
    assert!(has("protocol.version", 2)["message"]
        .as_str()
        .unwrap()
        .contains("2025-11-25"));
    assert_eq!(has("protocol.schema", 5)["field"], "params.arguments");
    assert!(has("protocol.schema", 5)["message"]
        .as_str()
        .unwrap()
        .contains("/a fails /properties/a/type"));
    assert_eq!(
        has("protocol.schema", 8)["field"],
        "result.structuredContent"
    );
    has("protocol.mismatch", 9);
    has("protocol.invalid", 10);
    has("protocol.pending", 11);
    let secret = has("secret.message", 11);
    assert_eq!(secret["field"], "params.arguments.note");
    assert!(!serde_json::to_string(&f)
        .unwrap()
        .contains("AKIAIOSFODNN7EXAMPLE"));
    for n in [2, 4, 6, 8] {
        has("protocol.late", n);
    }
    assert!(
        !at.contains_key(&("protocol.schema".into(), 7)),
        "valid arguments"
    );
    // Every finding names a record of its item.
    assert!(f
        .iter()
        .filter(|x| x["item"].is_u64() && x["rule"] != "protocol.tool-error")
        .all(|x| x["records"].as_array().is_some_and(|r| !r.is_empty())));
    // The failed call is counted for its tool.
    assert!(f.iter().any(|x| x["rule"] == "protocol.tool-error"
        && x["message"]
            .as_str()
            .unwrap()
            .contains("tools/call \"add\"")
        && x["items"] == serde_json::json!([6])));

    // Without --slow, no late; --skip-rule and --rule select; exit codes follow --fail-on.
    let (f, _) = findings(&[s(&cap)]);
    assert!(!rules_of(&f).contains("protocol.late"));
    let (f, code) = findings(&[s(&cap), "--rule", "protocol.pending"]);
    assert_eq!(rules_of(&f), ["protocol.pending".to_string()].into());
    assert_eq!(code, Some(0), "a warning does not fail by default");
    let (_, code) = findings(&[
        s(&cap),
        "--rule",
        "protocol.pending",
        "--fail-on",
        "warning",
    ]);
    assert_eq!(code, Some(1));
    // This capture's findings are all protocol and secret ones: none left.
    let (f, code) = findings(&[s(&cap), "--skip-rule", "protocol", "--skip-rule", "secret"]);
    assert_eq!(rules_of(&f), BTreeSet::new(), "{f:?}");
    assert_eq!(code, Some(0));
    // An unsealed fixture keeps its health finding, and only that.
    let legacy = format!("{}/fixtures/py_stdio_legacy.db", env!("CARGO_MANIFEST_DIR"));
    let (f, code) = findings(&[&legacy, "--skip-rule", "protocol", "--skip-rule", "secret"]);
    assert_eq!(
        rules_of(&f),
        ["health.unsealed".to_string()].into(),
        "{f:?}"
    );
    assert_eq!(code, Some(0));
    let (_, code) = findings(&[s(&cap), "--fail-on", "never"]);
    assert_eq!(code, Some(0));
    // A rules file turns severities up, down and off.
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[severity]\nprotocol = \"note\"\n\"protocol.pending\" = \"error\"\nsecret = \"off\"\n",
    )
    .unwrap();
    let (f, code) = findings(&[s(&cap), "--rules", s(&rules)]);
    assert_eq!(code, Some(1));
    assert!(f
        .iter()
        .all(|x| !x["rule"].as_str().unwrap().starts_with("secret.")));
    for x in &f {
        let want = match x["rule"].as_str().unwrap() {
            "protocol.pending" => "error",
            r if r.starts_with("protocol.") => "note",
            _ => continue,
        };
        assert_eq!(x["severity"], want, "{x}");
    }
    // Bad input is refused with exit 2.
    for bad in [
        vec!["--rule", "no.such-rule"],
        vec!["--slow", "5"],
        vec!["--baseline", "/nonexistent"],
    ] {
        let mut args = vec!["check", s(&cap)];
        args.extend(bad.iter());
        let o = mcpspy(&args);
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {}", stderr(&o));
    }
}

/// The SARIF 2.1.0 schema (OASIS, draft-04), beside the main checkout:
/// `../shared/schemas/` of the project's root (of the main worktree when
/// this is another).
fn sarif_schema() -> Value {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let common = Command::new("git")
        .args(["rev-parse", "--path-format=absolute", "--git-common-dir"])
        .current_dir(&root)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|d| PathBuf::from(d.trim()));
    let mut roots = vec![root];
    roots.extend(common.and_then(|c| c.parent().map(Path::to_path_buf)));
    let path = roots
        .iter()
        .map(|r| r.join("../shared/schemas/sarif-schema-2.1.0.json"))
        .find(|p| p.exists())
        .expect("the SARIF schema in ../shared/schemas beside the project");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The testcases of a JUnit file, parsed by Python's XML parser: name → failed.
fn junit_cases(path: &Path) -> BTreeMap<String, bool> {
    let script = "import sys, json, xml.etree.ElementTree as ET\n\
                  root = ET.parse(sys.argv[1]).getroot()\n\
                  print(json.dumps({c.get('name'): c.find('failure') is not None for c in root.iter('testcase')}))";
    let o = Command::new("python3")
        .args(["-c", script, s(path)])
        .output()
        .expect("python3");
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn sarif_validates_and_junit_parses() {
    let schema = sarif_schema();
    let validator = jsonschema::validator_for(&schema).expect("the SARIF schema compiles");
    let dir = tempfile::tempdir().unwrap();
    let rules = mcpspy(&["check", "--list-rules"]);
    let rule_count = stdout(&rules).lines().count();
    for (fixture, tool) in [
        ("py_legacy_sse", "\"fail\""),
        ("node_everything_stdio", "\"no_such_tool\""),
    ] {
        let path = format!("{}/fixtures/{fixture}.db", env!("CARGO_MANIFEST_DIR"));
        let sarif = dir.path().join(format!("{fixture}.sarif"));
        let o = mcpspy(&["check", &path, "--format", "sarif", "-o", s(&sarif)]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let log: Value = serde_json::from_slice(&std::fs::read(&sarif).unwrap()).unwrap();
        let errors: Vec<String> = validator.iter_errors(&log).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{fixture}: {errors:#?}");
        let run = &log["runs"][0];
        assert_eq!(
            run["tool"]["driver"]["rules"].as_array().unwrap().len(),
            rule_count
        );
        let results = run["results"].as_array().unwrap();
        assert!(results
            .iter()
            .any(|r| r["message"]["text"].as_str().unwrap().contains(tool)));
        // Results sit in the capture and, by name, in session and item.
        let located = results
            .iter()
            .find(|r| r["ruleId"] == "protocol.tool-error")
            .unwrap();
        let logical = located["locations"][0]["logicalLocations"]
            .as_array()
            .unwrap();
        assert_eq!(logical[0]["name"], "session 1");
        assert!(logical.iter().any(|l| l["kind"] == "object"));

        let junit = dir.path().join(format!("{fixture}.xml"));
        let o = mcpspy(&[
            "check",
            &path,
            "--format",
            "junit",
            "-o",
            s(&junit),
            "--fail-on",
            "warning",
        ]);
        let cases = junit_cases(&junit);
        assert_eq!(cases.len(), rule_count, "one testcase per rule");
        let failed: BTreeSet<&str> = cases
            .iter()
            .filter(|(_, f)| **f)
            .map(|(n, _)| n.as_str())
            .collect();
        if fixture == "py_legacy_sse" {
            assert_eq!(failed, ["protocol.deprecated-transport"].into());
            assert_eq!(o.status.code(), Some(1));
        } else {
            assert!(failed.is_empty(), "{failed:?}");
        }
    }
    // An existing output file is kept unless --force.
    let again = mcpspy(&[
        "check",
        &format!("{}/fixtures/py_http.db", env!("CARGO_MANIFEST_DIR")),
        "--format",
        "sarif",
        "-o",
        s(&dir.path().join("py_legacy_sse.sarif")),
    ]);
    assert_eq!(again.status.code(), Some(2));
}

#[test]
fn baselines_from_a_lock_or_a_capture_and_the_inventory() {
    let dir = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let py = format!("{root}/fixtures/py_stdio_legacy.db");
    let node = format!("{root}/fixtures/node_everything_stdio.db");
    let lock = dir.path().join("tools.lock.json");
    let o = mcpspy(&[
        "check",
        &py,
        "--write-baseline",
        s(&lock),
        "--rule",
        "drift",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let inv: Value = serde_json::from_slice(&std::fs::read(&lock).unwrap()).unwrap();
    assert_eq!(inv["mcpspy_tools_lock"], 1);
    let server = &inv["servers"][0];
    assert_eq!(server["name"], "mcpspy-peer-py");
    let echo = &server["lists"]["tool"]["echo"];
    assert!(echo["digest"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(
        echo["definition"]["description"],
        "Return the text unchanged."
    );
    // The same capture against its own inventory, as a lock or as a capture: no drift.
    for base in [s(&lock), py.as_str()] {
        let (f, code) = findings(&[&py, "--baseline", base, "--rule", "drift"]);
        assert!(f.is_empty() && code == Some(0), "{base}: {f:#?}");
    }
    // A changed description and a removed tool in the lock: reported by name.
    let mut edited = inv.clone();
    let tools = edited["servers"][0]["lists"]["tool"]
        .as_object_mut()
        .unwrap();
    tools["echo"]["definition"]["description"] = "Echo, pinned.".into();
    tools.insert(
        "retired".into(),
        serde_json::json!({"digest": "sha256:0", "definition": {"name": "retired"}}),
    );
    std::fs::write(&lock, serde_json::to_string(&edited).unwrap()).unwrap();
    let (f, code) = findings(&[&py, "--baseline", s(&lock)]);
    assert_eq!(code, Some(1));
    let drift: BTreeSet<(String, String)> = f
        .iter()
        .filter(|x| x["rule"] == "drift.baseline")
        .map(|x| {
            (
                x["tool"].as_str().unwrap().to_string(),
                x["message"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        drift,
        [
            (
                "echo".to_string(),
                "tool \"echo\" changed: description; compared with the baseline".to_string()
            ),
            (
                "retired".to_string(),
                "tool \"retired\" disappeared; compared with the baseline".to_string()
            ),
        ]
        .into()
    );
    // Another server is not in this baseline.
    let (f, _) = findings(&[&node, "--baseline", s(&lock), "--rule", "drift.baseline"]);
    assert!(f.iter().any(|x| x["message"]
        .as_str()
        .unwrap()
        .contains("is not in the baseline")));
    // A file that is neither is refused.
    std::fs::write(&lock, "not json").unwrap();
    assert_eq!(
        mcpspy(&["check", &py, "--baseline", s(&lock)])
            .status
            .code(),
        Some(2)
    );

    // query --tools: the inventory, with the digests the lock pins.
    let o = mcpspy(&["query", &node, "--tools"]);
    assert_eq!(o.status.code(), Some(0));
    let text = stdout(&o);
    assert!(
        text.starts_with("server \"mcp-servers/everything\" ("),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("tool") && l.contains("echo")),
        "{text}"
    );
}

#[test]
fn text_fits_80_columns_and_damage_comes_first() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("sealed.db");
    std::fs::copy(
        format!("{}/fixtures/py_stdio_sealed.db", env!("CARGO_MANIFEST_DIR")),
        &copy,
    )
    .unwrap();
    let o = mcpspy(&["check", s(&copy)]);
    assert_eq!(o.status.code(), Some(0));
    let text = stdout(&o);
    assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");
    assert!(text.contains("NOTE (5)"), "{text}");
    // A changed table row breaks the seal: the first finding says so.
    let db = rusqlite::Connection::open(&copy).unwrap();
    db.execute(
        "UPDATE processes SET comm = 'evil' WHERE rowid = (SELECT min(rowid) FROM processes)",
        [],
    )
    .unwrap();
    drop(db);
    let (f, code) = findings(&[s(&copy)]);
    assert_eq!(code, Some(1));
    assert_eq!(f[0]["rule"], "health.seal-broken", "{f:#?}");
}
