//! The redaction rules: data (rules.toml, and user files that add to it),
//! compiled once, and found in message text, HTTP header lines and command
//! lines. What replaces a secret is decided elsewhere ([`super::redact`]).

use regex::bytes::{Regex, RegexSet};
use serde::Deserialize;
use sha2::{Digest, Sha256};
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
    values: RegexSet,
    pub version: u32,
    /// SHA-256 of the rule files' bytes, in the order they were read.
    pub digest: String,
}

/// A JSON string member, `"key": "value"`; and the same in JSON text that
/// is itself inside a JSON string, at any depth (quotes escaped once or
/// more: the value is then taken up to its first escaped character).
const MEMBER: &str = r#""((?:[^"\\\n]|\\.){1,128})"\s*:\s*"((?:[^"\\]|\\.)*)""#;
const ESCAPED_MEMBER: &str = r#"\\+"([A-Za-z0-9_.$-]{1,128})\\+"\s*:\s*\\+"([^"\\]*)\\+""#;
/// An HTTP header line: its name, and its value.
const HEADER: &str = r"(?m)^([!#$%&'*+.^_`|~0-9A-Za-z-]{1,128})[ \t]*:[ \t]*([^\r\n]*?)[ \t]*\r?$";

/// Lines of an SSE event look like header lines.
const SSE_FIELDS: [&[u8]; 4] = [b"data", b"event", b"id", b"retry"];

struct Shapes {
    member: Regex,
    escaped: Regex,
    header: Regex,
}

fn shapes() -> &'static Shapes {
    static SHAPES: std::sync::OnceLock<Shapes> = std::sync::OnceLock::new();
    SHAPES.get_or_init(|| Shapes {
        member: Regex::new(MEMBER).expect("a valid pattern"),
        escaped: Regex::new(ESCAPED_MEMBER).expect("a valid pattern"),
        header: Regex::new(HEADER).expect("a valid pattern"),
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
            let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            digest.update(&bytes);
            let text = String::from_utf8(bytes)
                .map_err(|_| format!("{}: not UTF-8 text", path.display()))?;
            let file: File = if path.extension().is_some_and(|e| e == "json") {
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
            } else {
                toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
            };
            texts.extend(file.rule);
        }
        Rules::compile(texts, version, hex::encode(digest.finalize()))
    }

    fn compile(texts: Vec<RuleText>, version: u32, digest: String) -> Result<Rules, String> {
        let mut res = Vec::new();
        for (i, t) in texts.iter().enumerate() {
            if texts[..i].iter().any(|o| o.name == t.name) {
                return Err(format!("rule {:?} is defined twice", t.name));
            }
            let re = Regex::new(&t.pattern).map_err(|e| format!("rule {:?}: {e}", t.name))?;
            if t.group >= re.captures_len() {
                return Err(format!(
                    "rule {:?}: group {} is not in its pattern",
                    t.name, t.group
                ));
            }
            res.push(re);
        }
        let values = RegexSet::new(
            texts
                .iter()
                .filter(|t| t.kind == Kind::Value)
                .map(|t| t.pattern.as_str()),
        )
        .map_err(|e| e.to_string())?;
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
        let s = shapes();
        let mut member = |c: regex::bytes::Captures<'_>| {
            let (Some(key), Some(value)) = (c.get(1), c.get(2)) else {
                return;
            };
            if value.is_empty() {
                return;
            }
            if let Some((rule, _)) = self
                .of_kind(Kind::JsonKey)
                .find(|(_, re)| re.is_match(key.as_bytes()))
            {
                out.push(Found {
                    start: value.start(),
                    end: value.end(),
                    rule,
                });
            }
        };
        s.member.captures_iter(text).for_each(&mut member);
        // Escaped members overlap (the value `{` of one ends where the next
        // key's quote begins): search again from just past each start.
        let mut at = 0;
        while let Some(c) = s.escaped.captures_at(text, at) {
            at = c.get(0).map_or(text.len(), |m| m.start() + 1);
            member(c);
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
                merge(f).iter().map(|f| (f.start, f.end)).collect()
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
        ] {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            assert!(Rules::load(&[&p]).is_err(), "{name} is refused");
        }
    }
}
