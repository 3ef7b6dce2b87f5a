//! The redaction rules: data (rules.toml, and user files that add to it),
//! compiled once, and found in message text, HTTP header lines and command
//! lines. What replaces a secret is decided elsewhere ([`super::redact`]).

use super::gate::{escaped_key_end, Gate};
use regex::bytes::{Regex, RegexBuilder};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::ops::Range;
use std::path::Path;

/// The rules that ship with mcpspy.
pub const DEFAULT: &str = include_str!("rules.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: Option<u32>,
    #[serde(default)]
    rule: Vec<RuleText>,
}

/// One rule as written in a rules file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleText {
    pub name: String,
    pub kind: Kind,
    pub pattern: String,
    #[serde(default)]
    pub group: usize,
    #[serde(default)]
    pub examples: Vec<Example>,
    #[serde(default)]
    pub keep: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Example {
    pub text: String,
    pub secret: String,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Header,
    JsonKey,
    Value,
    Flag,
    Env,
}

/// A secret found: bytes [start, end) of what was searched, and its rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found {
    pub start: usize,
    pub end: usize,
    pub rule: usize,
}

/// The rules, compiled.
pub struct Rules {
    texts: Vec<RuleText>,
    res: Vec<Regex>,
    /// The `value` rules, for a quick test of text that holds none.
    values: Gate,
    pub version: u32,
    /// SHA-256 of the rule files' bytes, in the order they were read.
    pub digest: String,
}

/// A JSON string member, `"key": "value"`; and the same in JSON text that
/// is itself inside a JSON string, at any depth (quotes escaped once or
/// more: the value is then taken up to its first escaped character).
///
/// Names are bounded by `MAX_NAME` in code, not by a counted repetition: a
/// `{1,128}` makes the lazy DFA's states remember where each recent quote
/// was, its cache thrashes, and the search falls back to the slowest engine
/// (redact ran 100 times slower than export). Unicode is off in every
/// pattern for the same reason: the rules are about ASCII tokens.
const MEMBER: &str = r#""((?:[^"\\\n]|\\.)+)"\s*:\s*"((?:[^"\\]|\\.)*)""#;
const ESCAPED_MEMBER: &str = r#"\\+"([A-Za-z0-9_.$-]+)\\+"\s*:\s*\\+"([^"\\]*)\\+""#;
/// An HTTP header line: its name, and its value.
const HEADER: &str = r"(?m)^([!#$%&'*+.^_`|~0-9A-Za-z-]+)[ \t]*:[ \t]*([^\r\n]*?)[ \t]*\r?$";

/// Longer keys and header names are never a secret's name.
const MAX_NAME: usize = 128;

/// Lines of an SSE event look like header lines.
const SSE_FIELDS: [&[u8]; 4] = [b"data", b"event", b"id", b"retry"];

struct Shapes {
    member: Regex,
    escaped: Regex,
    header: Regex,
}

fn shape(pattern: &str) -> Regex {
    RegexBuilder::new(pattern)
        .unicode(false)
        .build()
        .expect("a valid pattern")
}

fn shapes() -> &'static Shapes {
    static SHAPES: std::sync::OnceLock<Shapes> = std::sync::OnceLock::new();
    SHAPES.get_or_init(|| Shapes {
        member: shape(MEMBER),
        escaped: shape(ESCAPED_MEMBER),
        header: shape(HEADER),
    })
}

impl Rules {
    /// The default rules, and those of `extra` files (TOML, or JSON when
    /// the name ends in .json).
    pub fn load(extra: &[&Path]) -> Result<Rules, String> {
        let mut digest = Sha256::new();
        let mut texts = Vec::new();
        let default: File = toml::from_str(DEFAULT).map_err(|e| format!("rules.toml: {e}"))?;
        let version = default.version.unwrap_or(0);
        digest.update(DEFAULT.as_bytes());
        texts.extend(default.rule);
        for path in extra {
            let bytes =
                crate::decode::read_small(path).map_err(|e| format!("{}: {e}", path.display()))?;
            digest.update(&bytes);
            let text = String::from_utf8(bytes)
                .map_err(|_| format!("{}: not UTF-8 text", path.display()))?;
            let file: File = if path.extension().is_some_and(|e| e == "json") {
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
            } else {
                toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
            };
            if let Some(v) = file.version.filter(|&v| v > version) {
                return Err(format!(
                    "{}: rules of version {v}, and this mcpspy reads version {version} (a newer \
                     mcpspy reads it)",
                    path.display()
                ));
            }
            texts.extend(file.rule);
        }
        Rules::compile(texts, version, hex::encode(digest.finalize()))
    }

    fn compile(texts: Vec<RuleText>, version: u32, digest: String) -> Result<Rules, String> {
        let mut res = Vec::new();
        let mut names = std::collections::HashSet::new();
        for t in &texts {
            // A name is said with every finding: keep it short.
            if t.name.is_empty() || t.name.len() > MAX_NAME {
                let shown: String = t.name.chars().take(40).collect();
                return Err(format!(
                    "rule {shown:?}…: a name of 1 to {MAX_NAME} bytes, please"
                ));
            }
            if !names.insert(t.name.as_str()) {
                return Err(format!("rule {:?} is defined twice", t.name));
            }
            let re = RegexBuilder::new(&t.pattern)
                .unicode(false)
                .build()
                .map_err(|e| format!("rule {:?}: {e}", t.name))?;
            if t.group >= re.captures_len() {
                return Err(format!(
                    "rule {:?}: group {} is not in its pattern",
                    t.name, t.group
                ));
            }
            res.push(re);
        }
        let values = Gate::new(
            (texts.iter().zip(&res))
                .filter(|(t, _)| t.kind == Kind::Value)
                .map(|(t, re)| (t.pattern.as_str(), re)),
        );
        Ok(Rules {
            texts,
            res,
            values,
            version,
            digest,
        })
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.texts.iter().map(|t| t.name.as_str())
    }

    /// The name of rule `i` (as a [`Found`] numbers it).
    pub fn name(&self, i: usize) -> &str {
        self.texts.get(i).map_or("?", |t| t.name.as_str())
    }

    pub fn texts(&self) -> &[RuleText] {
        &self.texts
    }

    fn of_kind(&self, kind: Kind) -> impl Iterator<Item = (usize, &Regex)> {
        (self.texts.iter().zip(&self.res).enumerate())
            .filter(move |(_, (t, _))| t.kind == kind)
            .map(|(i, (_, re))| (i, re))
    }

    /// Secrets in the text of a message (JSON): members with a secret's
    /// key, and values of a secret's form.
    pub fn in_text(&self, text: &[u8], out: &mut Vec<Found>) {
        for c in shapes().member.captures_iter(text) {
            if let (Some(key), Some(value)) = (c.get(1), c.get(2)) {
                self.member(key.as_bytes(), value.range(), out);
            }
        }
        self.escaped_and_values(text, out);
    }

    /// Secrets in a message's text: `whole` says it is known to be whole
    /// JSON, which is searched faster.
    pub fn in_message(&self, text: &[u8], whole: bool, out: &mut Vec<Found>) {
        if whole {
            self.in_json(text, out);
        } else {
            self.in_text(text, out);
        }
    }

    /// As `in_text`, for text known to be whole JSON (a parsed message):
    /// its members are found by walking its strings, several times faster
    /// than the member pattern on text full of short strings.
    pub fn in_json(&self, text: &[u8], out: &mut Vec<Found>) {
        json_members(text, |key, value| self.member(&text[key], value, out));
        self.escaped_and_values(text, out);
    }

    /// A member's value, when its key is a secret's.
    fn member(&self, key: &[u8], value: Range<usize>, out: &mut Vec<Found>) {
        if value.is_empty() || key.len() > MAX_NAME {
            return;
        }
        if let Some((rule, _)) = self.of_kind(Kind::JsonKey).find(|(_, re)| re.is_match(key)) {
            out.push(Found {
                start: value.start,
                end: value.end,
                rule,
            });
        }
    }

    /// Members of JSON text inside a JSON string, and values of a secret's
    /// form anywhere.
    fn escaped_and_values(&self, text: &[u8], out: &mut Vec<Found>) {
        // Escaped members overlap (the value `{` of one ends where the next
        // key's quote begins): search again from just past each start.
        if escaped_key_end(text) {
            let mut at = 0;
            while let Some(c) = shapes().escaped.captures_at(text, at) {
                at = c.get(0).map_or(text.len(), |m| m.start() + 1);
                if let (Some(key), Some(value)) = (c.get(1), c.get(2)) {
                    self.member(key.as_bytes(), value.range(), out);
                }
            }
        }
        self.values_in(text, 0, out);
    }

    /// Values of a secret's form in `text`, found at `base` + their offset.
    fn values_in(&self, text: &[u8], base: usize, out: &mut Vec<Found>) {
        if !self.values.is_match(text) {
            return;
        }
        for (rule, re) in self.of_kind(Kind::Value) {
            let group = self.texts[rule].group;
            for c in re.captures_iter(text) {
                if let Some(m) = c.get(group).filter(|m| !m.is_empty()) {
                    out.push(Found {
                        start: base + m.start(),
                        end: base + m.end(),
                        rule,
                    });
                }
            }
        }
    }

    /// Secrets in HTTP header lines (`bytes` holds whole lines): values of
    /// a secret's header, and values of a secret's form in any header.
    pub fn in_headers(&self, bytes: &[u8], out: &mut Vec<Found>) {
        for c in shapes().header.captures_iter(bytes) {
            let (Some(name), Some(value)) = (c.get(1), c.get(2)) else {
                continue;
            };
            if value.is_empty() {
                continue;
            }
            match self
                .of_kind(Kind::Header)
                .filter(|_| name.len() <= MAX_NAME)
                .find(|(_, re)| re.is_match(name.as_bytes()))
            {
                Some((rule, _)) => out.push(Found {
                    start: value.start(),
                    end: value.end(),
                    rule,
                }),
                // An SSE field is a message's text, not a header: the
                // message's own search covers it.
                None if SSE_FIELDS.contains(&name.as_bytes()) => {}
                None => self.values_in(value.as_bytes(), value.start(), out),
            }
        }
    }

    /// Secrets in a command line: the values of secret flags and of secret
    /// KEY=VALUE arguments, and values of a secret's form in any argument.
    /// Each is (argument, start, end, rule).
    pub fn in_args(&self, args: &[String]) -> Vec<(usize, Found)> {
        let mut out = Vec::new();
        let mut value_of_flag: Option<usize> = None;
        for (i, arg) in args.iter().enumerate() {
            let bytes = arg.as_bytes();
            let mut found = Vec::new();
            if let Some(rule) = value_of_flag.take() {
                found.push(Found {
                    start: 0,
                    end: bytes.len(),
                    rule,
                });
            } else if let Some((name, value)) = arg.split_once('=') {
                let flag = self
                    .of_kind(Kind::Flag)
                    .chain(self.of_kind(Kind::Env))
                    .find(|(_, re)| re.is_match(name.as_bytes()));
                if let Some((rule, _)) = flag.filter(|_| !value.is_empty()) {
                    found.push(Found {
                        start: name.len() + 1,
                        end: bytes.len(),
                        rule,
                    });
                }
            } else if let Some((rule, _)) =
                self.of_kind(Kind::Flag).find(|(_, re)| re.is_match(bytes))
            {
                value_of_flag = Some(rule);
            }
            if found.is_empty() {
                self.values_in(bytes, 0, &mut found);
            }
            out.extend(merge(found).into_iter().map(|f| (i, f)));
        }
        out
    }
}

/// Sorts what was found and merges overlaps (the first rule keeps the count).
pub fn merge(mut found: Vec<Found>) -> Vec<Found> {
    found.sort_by_key(|f| (f.start, std::cmp::Reverse(f.end)));
    let mut out: Vec<Found> = Vec::with_capacity(found.len());
    for f in found {
        match out.last_mut() {
            Some(last) if f.start < last.end => last.end = last.end.max(f.end),
            _ => out.push(f),
        }
    }
    out
}

/// The `"key": "value"` members of whole JSON text: the byte ranges of
/// each key's and value's contents. Every quote reached opens a string,
/// because each string is skipped whole.
fn json_members(text: &[u8], mut each: impl FnMut(Range<usize>, Range<usize>)) {
    let mut at = 0;
    while let Some(q) = memchr::memchr(b'"', &text[at..]) {
        let key = at + q + 1;
        let Some(key_end) = string_end(text, key) else {
            return;
        };
        at = key_end + 1;
        let colon = skip_space(text, at);
        if text.get(colon) != Some(&b':') {
            continue;
        }
        at = skip_space(text, colon + 1);
        if text.get(at) != Some(&b'"') {
            continue;
        }
        let Some(value_end) = string_end(text, at + 1) else {
            return;
        };
        each(key..key_end, at + 1..value_end);
        at = value_end + 1;
    }
}

/// The closing quote of the string whose contents begin at `from`.
fn string_end(text: &[u8], mut from: usize) -> Option<usize> {
    loop {
        let i = from + memchr::memchr2(b'"', b'\\', text.get(from..)?)?;
        if text[i] == b'"' {
            return Some(i);
        }
        from = i + 2;
    }
}

fn skip_space(text: &[u8], from: usize) -> usize {
    from + (text.get(from..).unwrap_or_default())
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `rules` finds in an example's text, as the kind of rule reads it.
    fn found(rules: &Rules, kind: Kind, text: &str) -> Vec<(usize, usize)> {
        match kind {
            Kind::Header => {
                let mut f = Vec::new();
                rules.in_headers(text.as_bytes(), &mut f);
                merge(f).iter().map(|f| (f.start, f.end)).collect()
            }
            Kind::JsonKey | Kind::Value => {
                let mut f = Vec::new();
                rules.in_text(text.as_bytes(), &mut f);
                let f: Vec<_> = merge(f).iter().map(|f| (f.start, f.end)).collect();
                if serde_json::from_str::<serde_json::Value>(text).is_ok() {
                    let mut j = Vec::new();
                    rules.in_json(text.as_bytes(), &mut j);
                    let j: Vec<_> = merge(j).iter().map(|f| (f.start, f.end)).collect();
                    assert_eq!(f, j, "in_json differs from in_text on {text:?}");
                }
                f
            }
            Kind::Flag | Kind::Env => {
                let args: Vec<String> = serde_json::from_str(text).expect("a JSON array of args");
                // Positions in the JSON text of the arguments, for comparison.
                let mut at = Vec::new();
                let mut from = 0;
                for a in &args {
                    let i = text[from..].find(a.as_str()).expect("each arg in the text") + from;
                    at.push(i);
                    from = i + a.len();
                }
                rules
                    .in_args(&args)
                    .into_iter()
                    .map(|(i, f)| (at[i] + f.start, at[i] + f.end))
                    .collect()
            }
        }
    }

    /// Every rule has examples, and each finds its secret exactly; every
    /// `keep` text is left alone.
    #[test]
    fn every_rule_finds_its_examples_and_keeps_the_rest() {
        let rules = Rules::load(&[]).unwrap();
        assert!(rules.texts().len() >= 14);
        for t in rules.texts() {
            assert!(!t.examples.is_empty(), "rule {} has no example", t.name);
            for ex in &t.examples {
                let at = ex.text.find(&ex.secret).expect("the secret is in the text");
                assert_eq!(
                    found(&rules, t.kind, &ex.text),
                    vec![(at, at + ex.secret.len())],
                    "rule {}: {:?}",
                    t.name,
                    ex.text
                );
            }
            for keep in &t.keep {
                assert_eq!(
                    found(&rules, t.kind, keep),
                    vec![],
                    "rule {}: {keep:?}",
                    t.name
                );
            }
        }
    }

    #[test]
    fn user_files_add_rules_in_toml_or_json_and_bad_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let toml_file = dir.path().join("extra.toml");
        std::fs::write(
            &toml_file,
            "[[rule]]\nname = \"ticket\"\nkind = \"value\"\npattern = 'TICKET-[0-9]{6}'\n",
        )
        .unwrap();
        let json_file = dir.path().join("extra.json");
        std::fs::write(
            &json_file,
            r#"{"rule":[{"name":"pin","kind":"json_key","pattern":"(?i)^pin$"}]}"#,
        )
        .unwrap();
        let rules = Rules::load(&[&toml_file, &json_file]).unwrap();
        let mut f = Vec::new();
        rules.in_text(br#"{"pin":"1234","note":"TICKET-123456"}"#, &mut f);
        assert_eq!(merge(f).len(), 2);
        assert_ne!(rules.digest, Rules::load(&[]).unwrap().digest);
        for (name, text) in [
            (
                "dup.toml",
                "[[rule]]\nname = \"email\"\nkind = \"value\"\npattern = 'x'\n",
            ),
            (
                "bad.toml",
                "[[rule]]\nname = \"x\"\nkind = \"value\"\npattern = '('\n",
            ),
            (
                "kind.toml",
                "[[rule]]\nname = \"x\"\nkind = \"guess\"\npattern = 'x'\n",
            ),
            (
                "group.toml",
                "[[rule]]\nname = \"x\"\nkind = \"value\"\npattern = 'x'\ngroup = 2\n",
            ),
            (
                "empty-name.toml",
                "[[rule]]\nname = \"\"\nkind = \"value\"\npattern = 'x'\n",
            ),
            (
                "long-name.toml",
                format!(
                    "[[rule]]\nname = \"{}\"\nkind = \"value\"\npattern = 'x'\n",
                    "n".repeat(MAX_NAME + 1)
                )
                .as_str(),
            ),
            (
                "newer.toml",
                "version = 4000000000\n[[rule]]\nname = \"x\"\nkind = \"value\"\npattern = 'x'\n",
            ),
        ] {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            assert!(Rules::load(&[&p]).is_err(), "{name} is refused");
        }
        // A name at the limit is taken.
        let p = dir.path().join("limit.toml");
        let name = "n".repeat(MAX_NAME);
        std::fs::write(
            &p,
            format!("[[rule]]\nname = \"{name}\"\nkind = \"value\"\npattern = 'x'\n"),
        )
        .unwrap();
        assert!(Rules::load(&[&p]).unwrap().names().any(|n| n == name));
    }

    /// On whole JSON, walking its strings finds the secrets the member
    /// pattern finds: nesting, arrays, escapes, spaces, empty keys,
    /// non-ASCII text, and members of JSON inside a string. The pattern
    /// also pairs strings across a boundary (`",":","` reads as a member
    /// whose key is `,`), keys no rule names; the walk does not.
    #[test]
    fn json_walk_finds_what_the_member_pattern_finds() {
        let texts = [
            r#"{"a":"1","password":"x","n":{"token":"y","list":["p","q"]},"e":""}"#,
            r#"{ "password" : "a\"b\\" , "k" :	"v" }"#,
            r#"[{"token":"t1"},{"": "x","secret":"s\u00e9"}]"#,
            r#"{"text":"{\"password\":\"inner\"}","api_key":"k\\"}"#,
            r#"{"é":"ü","auth":"Ω","x":[1,"password",":","token"],"y":null}"#,
            r#"{"long":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","token":"z"}"#,
        ];
        let rules = Rules::load(&[]).unwrap();
        for text in texts {
            assert!(
                serde_json::from_str::<serde_json::Value>(text).is_ok(),
                "{text}"
            );
            let mut by_pattern = Vec::new();
            for c in shapes().member.captures_iter(text.as_bytes()) {
                by_pattern.push((c[1].to_vec(), c.get(2).unwrap().range()));
            }
            let mut by_walk = Vec::new();
            json_members(text.as_bytes(), |k, v| {
                if !k.is_empty() {
                    by_walk.push((text.as_bytes()[k].to_vec(), v))
                }
            });
            assert!(by_walk.iter().all(|m| by_pattern.contains(m)), "{text}");
            let (mut a, mut b) = (Vec::new(), Vec::new());
            rules.in_text(text.as_bytes(), &mut a);
            rules.in_json(text.as_bytes(), &mut b);
            assert!(!a.is_empty());
            assert_eq!(
                merge(a)
                    .iter()
                    .map(|f| (f.start, f.end, f.rule))
                    .collect::<Vec<_>>(),
                merge(b)
                    .iter()
                    .map(|f| (f.start, f.end, f.rule))
                    .collect::<Vec<_>>(),
                "{text}"
            );
        }
    }
}
