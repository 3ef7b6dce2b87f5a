//! `mcpspy redact` and `mcpspy slice` on real Python SDK sessions (stdio,
//! Streamable HTTP, and HTTPS) that carry planted secrets of every default
//! kind: in tool arguments and results, in resource contents, in HTTP
//! headers and on the servers' command lines. After redaction not one is
//! left in any block, table, export or replay; the messages are the same
//! messages; tokens follow the key; derived captures compose and verify.

use super::support::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Random text of `n` characters from `alphabet`: no two runs plant the same.
fn random(n: usize, alphabet: &[u8]) -> String {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).unwrap();
    bytes
        .iter()
        .map(|b| alphabet[*b as usize % alphabet.len()] as char)
        .collect()
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// What the peers carry, and every secret in it that must vanish.
struct Planted {
    file: Value,
    server_args: Vec<String>,
    secrets: Vec<String>,
}

fn plant() -> Planted {
    let mut notes = Vec::new();
    let mut secrets = Vec::new();
    let mut note = |text: String, secret: String| {
        notes.push(text);
        secrets.push(secret);
    };
    for _ in 0..5 {
        let jwt = format!(
            "eyJ{}.eyJ{}.{}",
            random(20, ALNUM),
            random(30, ALNUM),
            random(32, ALNUM)
        );
        note(format!("keep {jwt} safe"), jwt);
        let aws = format!("AKIA{}", random(16, UPPER));
        note(format!("key id {aws}"), aws);
        let gh = format!("ghp_{}", random(36, ALNUM));
        note(format!("clone with {gh}"), gh);
        let openai = format!("sk-proj-{}", random(40, ALNUM));
        note(format!("openai {openai}"), openai);
        let anthropic = format!("sk-ant-api03-{}", random(40, ALNUM));
        note(format!("anthropic {anthropic}"), anthropic);
        let slack = format!("xoxb-{}-{}", random(12, b"0123456789"), random(24, ALNUM));
        note(format!("slack {slack}"), slack);
        let google = format!("AIza{}", random(35, ALNUM));
        note(format!("maps {google}"), google);
        let email = format!(
            "{}@{}.example.org",
            random(10, ALNUM).to_lowercase(),
            random(8, ALNUM).to_lowercase()
        );
        note(format!("mail {email} today"), email);
        let password = random(16, ALNUM);
        note(format!(r#"{{"password": "{password}"}}"#), password);
    }
    for _ in 0..3 {
        let aws_secret = random(40, ALNUM);
        note(format!("aws_secret_access_key={aws_secret}"), aws_secret);
        let bearer = random(32, ALNUM);
        note(format!("send Bearer {bearer} along"), bearer);
    }
    for _ in 0..2 {
        let (a, b) = (random(64, B64), random(64, B64));
        notes.push(format!(
            "-----BEGIN PRIVATE KEY-----\n{a}\n{b}\n-----END PRIVATE KEY-----"
        ));
        secrets.extend([a, b]);
    }
    let (bearer, api_key, password) = (random(40, ALNUM), random(24, ALNUM), random(18, ALNUM));
    let (flag, env, token) = (random(20, ALNUM), random(20, ALNUM), random(20, ALNUM));
    secrets.extend([bearer.clone(), api_key.clone(), password.clone()]);
    secrets.extend([flag.clone(), env.clone(), token.clone()]);
    assert!(secrets.len() >= 50);
    Planted {
        file: serde_json::json!({"notes": notes, "bearer": bearer, "api_key": api_key, "password": password}),
        server_args: vec![
            "--api-key".into(),
            flag,
            format!("DB_PASSWORD={env}"),
            format!("--token={token}"),
        ],
        secrets,
    }
}

fn mcpspy(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Records one run of secrets_peer.py (`role`: session or client).
fn record(dir: &Path, name: &str, p: &Planted, role: &str) -> PathBuf {
    let secrets = dir.join("secrets.json");
    std::fs::write(&secrets, p.file.to_string()).unwrap();
    let args = dir.join("server-args.json");
    std::fs::write(&args, serde_json::to_string(&p.server_args).unwrap()).unwrap();
    let capture = dir.join(name);
    let rec = start_recorder(&capture, &["--comm", "python3"]);
    succeed(Command::new(venv_python()).args([
        &format!("{ROOT}/tests/peers/secrets_peer.py"),
        "--role",
        role,
        "--secrets",
        s(&secrets),
        "--server-args",
        s(&args),
        "--out",
        s(&dir.join(format!("{name}.peer"))),
    ]));
    rec.stop();
    capture
}

/// Everywhere a secret could be left: the file's bytes, every block's
/// records, every table's values, the export and the replay. Returns the
/// secrets found, and where.
fn leaks(capture: &Path, secrets: &[String]) -> BTreeMap<String, Vec<&'static str>> {
    let mut places: Vec<(&'static str, Vec<u8>)> = vec![("file", std::fs::read(capture).unwrap())];
    let reader = mcpspy::capture::CaptureReader::open(capture).unwrap();
    let mut blocks = Vec::new();
    for b in reader.blocks(&Default::default()).unwrap() {
        blocks.extend_from_slice(&b.unwrap().data);
    }
    places.push(("blocks", blocks));
    let db =
        rusqlite::Connection::open_with_flags(capture, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let tables: Vec<String> = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(tables.len() >= 8, "{tables:?}");
    let mut values = Vec::new();
    for t in &tables {
        let mut stmt = db.prepare(&format!("SELECT * FROM \"{t}\"")).unwrap();
        let n = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            for i in 0..n {
                match row.get_ref(i).unwrap() {
                    rusqlite::types::ValueRef::Text(b) | rusqlite::types::ValueRef::Blob(b) => {
                        values.extend_from_slice(b);
                        values.push(0);
                    }
                    _ => {}
                }
            }
        }
    }
    places.push(("tables", values));
    places.push(("export", mcpspy(&["export", s(capture)]).stdout));
    places.push(("replay", mcpspy(&["replay", s(capture), "-b"]).stdout));
    let mut found: BTreeMap<String, Vec<&'static str>> = BTreeMap::new();
    for secret in secrets {
        for (place, bytes) in &places {
            if memchr::memmem::find(bytes, secret.as_bytes()).is_some() {
                found.entry(secret.clone()).or_default().push(place);
            }
        }
    }
    found
}

/// The messages of an export as kind, method, id, direction, size and the
/// request each answers: a multiset.
fn messages(capture: &Path) -> BTreeMap<String, usize> {
    let out = mcpspy(&["export", s(capture)]);
    let mut m = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        if !matches!(
            v["type"].as_str(),
            Some("request" | "response" | "notification" | "error")
        ) {
            continue;
        }
        let key = format!(
            "{} {} {} {} {} {}",
            v["type"], v["method"], v["id"], v["direction"], v["size_bytes"], v["request"]["id"]
        );
        *m.entry(key).or_default() += 1;
    }
    m
}

/// The remember() notes a capture's export shows.
fn notes(capture: &Path) -> std::collections::BTreeSet<String> {
    let out = mcpspy(&["export", s(capture), "--method", "tools/call"]);
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let v: Value = serde_json::from_str(l).ok()?;
            Some(v["params"]["arguments"]["note"].as_str()?.to_string())
        })
        .collect()
}

/// `mcpspy check` on the recording: every message that carries a planted
/// secret, every request's credential headers and every server's secret
/// arguments are reported by rule and place, and no output format shows a
/// value.
fn check_reports_every_secret(capture: &Path, p: &Planted) {
    let cap = s(capture);
    let mut outputs = Vec::new();
    for format in ["text", "json", "sarif", "junit"] {
        let o = mcpspy(&[
            "check",
            cap,
            "--rule",
            "secret",
            "--format",
            format,
            "--fail-on",
            "never",
        ]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        outputs.push((format, [o.stdout, o.stderr].concat()));
    }
    for secret in &p.secrets {
        for (format, out) in &outputs {
            assert!(
                memchr::memmem::find(out, secret.as_bytes()).is_none(),
                "check --format {format} shows a planted secret"
            );
        }
    }
    let findings: Vec<Value> = String::from_utf8_lossy(&outputs[1].1)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let rule_of = |f: &Value| {
        let m = f["message"].as_str().unwrap();
        m.split("rule \"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap()
            .to_string()
    };
    let mut at: BTreeMap<(String, u64), Vec<String>> = BTreeMap::new();
    for f in &findings {
        if let Some(n) = f["item"].as_u64() {
            at.entry((f["rule"].as_str().unwrap().to_string(), n))
                .or_default()
                .push(format!("{} {}", rule_of(f), f["field"].as_str().unwrap()));
        }
    }
    let export = mcpspy(&["export", cap]);
    let (mut carrying, mut headers_checked) = (0, 0);
    for line in String::from_utf8_lossy(&export.stdout).lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let n = v["n"].as_u64().unwrap();
        let body = serde_json::to_string(&[&v["params"], &v["result"]]).unwrap();
        if p.secrets.iter().any(|s| body.contains(s.as_str())) {
            carrying += 1;
            assert!(
                at.contains_key(&("secret.message".into(), n)),
                "item {n} carries a planted secret: {line}"
            );
        }
        if v["transport_type"] == "http" && v["http_transport"]["is_request"] == true {
            let fields = at
                .get(&("secret.header".into(), n))
                .cloned()
                .unwrap_or_default();
            for header in ["authorization", "x-api-key"] {
                assert!(
                    fields
                        .iter()
                        .any(|f| f.to_lowercase() == format!("http-credentials header {header}")),
                    "item {n}: {header} in {fields:?}"
                );
            }
            headers_checked += 1;
        }
    }
    assert!(carrying >= 50, "{carrying} messages carry planted secrets");
    // The HTTP and the HTTPS client each post at least one remember() per note.
    let notes = p.file["notes"].as_array().unwrap().len();
    assert!(
        headers_checked >= 2 * notes,
        "the headers of {headers_checked} HTTP requests checked, {notes} notes"
    );
    let rules: std::collections::BTreeSet<String> = findings.iter().map(rule_of).collect();
    for rule in [
        "jwt",
        "aws-access-key-id",
        "aws-secret-access-key",
        "github-token",
        "openai-key",
        "anthropic-key",
        "slack-token",
        "google-api-key",
        "email",
        "secret-json-member",
        "pem-private-key",
        "bearer-token",
        "http-credentials",
        "secret-flag",
        "secret-env-argument",
    ] {
        assert!(rules.contains(rule), "{rule}: {rules:?}");
    }
    // The three servers' secret arguments (--api-key S, DB_PASSWORD=S, --token=S).
    let mut args: BTreeMap<u64, usize> = BTreeMap::new();
    for f in findings
        .iter()
        .filter(|f| f["rule"] == "secret.command-line")
    {
        *args.entry(f["pid"].as_u64().unwrap()).or_default() += 1;
    }
    // (The clients' `--secrets FILE` is a secret flag's value to the rules, too.)
    assert!(args.values().filter(|n| **n >= 3).count() >= 3, "{args:?}");
}

fn sha256(path: &Path) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(std::fs::read(path).unwrap()).to_vec()
}

#[test]
fn redaction_leaves_no_planted_secret_and_the_same_messages() {
    let Some((_serial, dir)) = bpf_test("redaction_leaves_no_planted_secret_and_the_same_messages")
    else {
        return;
    };
    let planted = plant();
    let capture = record(dir.path(), "c.db", &planted, "session");
    let before = sha256(&capture);
    let found = leaks(&capture, &planted.secrets);
    let missing: Vec<&String> = planted
        .secrets
        .iter()
        .filter(|s| !found.contains_key(*s))
        .collect();
    assert!(
        missing.is_empty(),
        "the recording holds every planted secret: {missing:?}"
    );

    check_reports_every_secret(&capture, &planted);

    let key = dir.path().join("team.key");
    std::fs::write(&key, random(32, ALNUM)).unwrap();
    let red = dir.path().join("r.db");
    let o = mcpspy(&["redact", s(&capture), "-o", s(&red), "--key-file", s(&key)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let left = leaks(&red, &planted.secrets);
    assert!(
        left.is_empty(),
        "planted secrets left after redact: {left:?}"
    );
    assert_eq!(
        messages(&red),
        messages(&capture),
        "the same messages, message for message"
    );
    let v = mcpspy(&["verify", s(&red)]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));

    // --dry-run says what it would replace, and writes nothing.
    let listed = std::fs::read_dir(dir.path()).unwrap().count();
    let dry = mcpspy(&["redact", s(&capture), "--dry-run"]);
    let report = String::from_utf8_lossy(&dry.stdout);
    for rule in [
        "jwt",
        "aws-access-key-id",
        "http-credentials",
        "secret-flag",
        "secret-env-argument",
        "email",
        "pem-private-key",
    ] {
        assert!(report.contains(rule), "{rule}: {report}");
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), listed);

    // One key file: the same secret, the same token, in another capture;
    // another key: other tokens.
    let second = record(dir.path(), "c2.db", &planted, "client");
    let red2 = dir.path().join("r2.db");
    assert!(
        mcpspy(&["redact", s(&second), "-o", s(&red2), "--key-file", s(&key)])
            .status
            .success()
    );
    let other_key = dir.path().join("other.key");
    std::fs::write(&other_key, random(32, ALNUM)).unwrap();
    let red3 = dir.path().join("r3.db");
    assert!(mcpspy(&[
        "redact",
        s(&second),
        "-o",
        s(&red3),
        "--key-file",
        s(&other_key)
    ])
    .status
    .success());
    let (n1, n2, n3) = (notes(&red), notes(&red2), notes(&red3));
    assert!(
        n2.len() >= 40 && n2.is_subset(&n1),
        "same key, same tokens: {n2:?} vs {n1:?}"
    );
    assert!(
        n3.len() >= 40 && n3.is_disjoint(&n1),
        "another key, other tokens: {n3:?} vs {n1:?}"
    );

    // Slicing and redacting compose, both ways; each names its chain.
    let sliced = dir.path().join("s.db");
    assert!(mcpspy(&[
        "slice",
        s(&capture),
        "-o",
        s(&sliced),
        "--method",
        "tools/call"
    ])
    .status
    .success());
    let sliced_red = dir.path().join("sr.db");
    assert!(mcpspy(&["redact", s(&sliced), "-o", s(&sliced_red)])
        .status
        .success());
    let red_sliced = dir.path().join("rs.db");
    assert!(mcpspy(&[
        "slice",
        s(&red),
        "-o",
        s(&red_sliced),
        "--method",
        "tools/call"
    ])
    .status
    .success());
    for (file, chain) in [
        (&sliced_red, ["slice", "redact"]),
        (&red_sliced, ["redact", "slice"]),
    ] {
        let v = mcpspy(&["verify", s(file), "--json"]);
        assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
        let report: Value = serde_json::from_slice(&v.stdout).unwrap();
        let derived = report["vouched"]["derived"].as_str().unwrap_or_default();
        assert!(
            derived.starts_with(&format!("by {} ", chain[1]))
                && derived.contains(&format!("then by {} ", chain[0])),
            "{derived}"
        );
        assert!(
            leaks(file, &planted.secrets).is_empty(),
            "{}",
            file.display()
        );
        assert_eq!(messages(file), messages(&sliced), "{}", file.display());
    }
    assert_eq!(sha256(&capture), before, "the original is never modified");
}
