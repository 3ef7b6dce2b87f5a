//! Quick tests that let through every text a rule could match, so that
//! the rules' own patterns run only on the few texts that need them.

use regex::bytes::{Regex, RegexBuilder};

/// Whether text could hold a match of any of a set of rules, answered in
/// few passes. A `RegexSet` of them all runs one lazy DFA over every byte
/// (about 0.5 GB/s here); a search for the literals that start a rule's
/// every match runs at several GB/s. So the rules whose matches all start
/// with one of a few literals are searched as one alternation, whose
/// literals the regex engine finds with SIMD, and each other rule (an email
/// address starts with any letter) by itself, by its own best strategy.
pub struct Gate(Vec<Regex>);

impl Gate {
    pub fn new<'r>(rules: impl Iterator<Item = (&'r str, &'r Regex)>) -> Gate {
        let (mut prefixed, mut alone) = (Vec::new(), Vec::new());
        for (pattern, re) in rules {
            if has_literal_prefix(pattern) {
                prefixed.push((format!("(?:{pattern})"), re));
            } else {
                alone.push(re.clone());
            }
        }
        let joined: Vec<&str> = prefixed.iter().map(|(p, _)| p.as_str()).collect();
        match RegexBuilder::new(&joined.join("|")).unicode(false).build() {
            Ok(re) if !joined.is_empty() => alone.push(re),
            // Too big to build as one: those rules are searched one by one.
            _ => alone.extend(prefixed.into_iter().map(|(_, re)| re.clone())),
        }
        Gate(alone)
    }

    pub fn is_match(&self, text: &[u8]) -> bool {
        self.0.iter().any(|re| re.is_match(text))
    }
}

/// Whether every match of `pattern` starts with one of a few literals
/// (case variants count: `(?i)bearer` is 64), each of two bytes or more,
/// look-arounds such as `\b` aside. A digit class makes ten.
fn has_literal_prefix(pattern: &str) -> bool {
    use regex_syntax::hir::literal::{ExtractKind, Extractor};
    let Ok(hir) = regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .build()
        .parse(pattern)
    else {
        return false;
    };
    let seq = Extractor::new().kind(ExtractKind::Prefix).extract(&hir);
    seq.len().is_some_and(|n| n <= 64) && seq.min_literal_len().is_some_and(|n| n >= 2)
}

/// Whether `text` holds `\"`, spaces and `:`, as the key of every escaped
/// member ends: found from the colons, several times faster than the
/// escaped-member pattern, which starts at every `\` of every escape.
pub fn escaped_key_end(text: &[u8]) -> bool {
    memchr::memchr_iter(b':', text).any(|colon| {
        let key_end = text[..colon]
            .iter()
            .rposition(|b| !b"\t\n\x0b\x0c\r ".contains(b));
        key_end.is_some_and(|i| i >= 1 && text[i - 1..=i] == *b"\\\"")
    })
}

#[cfg(test)]
mod tests {
    use super::super::rules::{merge, Kind, Rules};
    use super::*;

    /// The gate of a set of rules' value rules, as `Rules` builds it.
    fn value_gate(rules: &Rules) -> Gate {
        let res: Vec<(&str, Regex)> = (rules.texts().iter())
            .filter(|t| t.kind == Kind::Value)
            .map(|t| {
                let re = RegexBuilder::new(&t.pattern).unicode(false).build();
                (t.pattern.as_str(), re.unwrap())
            })
            .collect();
        Gate::new(res.iter().map(|(p, re)| (*p, re)))
    }

    /// The value rules that start with literals are searched as one; an
    /// email address, which does not, and a user's rules of either sort
    /// are still found, alone or together in one text.
    #[test]
    fn the_value_gate_lets_every_rule_through() {
        let defaults = Rules::load(&[]).unwrap();
        assert_eq!(
            value_gate(&defaults).0.len(),
            2,
            "email, and the rest as one"
        );
        let dir = tempfile::tempdir().unwrap();
        let extra = dir.path().join("extra.toml");
        std::fs::write(
            &extra,
            "[[rule]]\nname = \"ticket\"\nkind = \"value\"\npattern = '(?i)tk-[0-9]{4}'\n\
             [[rule]]\nname = \"phone\"\nkind = \"value\"\npattern = '[0-9]{3}-[0-9]{4}'\n",
        )
        .unwrap();
        let rules = Rules::load(&[&extra]).unwrap();
        assert_eq!(
            value_gate(&rules).0.len(),
            3,
            "email, the phone, and the rest"
        );
        for (text, n) in [
            ("call 555-0101", 1),
            ("see Tk-1234", 1),
            ("mail a@example.org", 1),
            ("key AKIAIOSFODNN7EXAMPLE, tk-9999 and 555-0101", 3),
            ("nothing here", 0),
            // An escaped member with spaces around its colon.
            (r#"{"n":"{\"token\"  : \"t-1\"}"}"#, 1),
        ] {
            let mut f = Vec::new();
            rules.in_text(text.as_bytes(), &mut f);
            assert_eq!(merge(f).len(), n, "{text}");
        }
    }

    /// On texts made of pieces of every rule's examples, flipped in case,
    /// with letters, digits, `@` and non-ASCII between them, the gate says
    /// what a `RegexSet` of the value rules says.
    #[test]
    fn the_value_gate_answers_as_a_set_of_the_rules() {
        let rules = Rules::load(&[]).unwrap();
        let gate = value_gate(&rules);
        let set = regex::bytes::RegexSetBuilder::new(
            (rules.texts().iter())
                .filter(|t| t.kind == Kind::Value)
                .map(|t| &t.pattern),
        )
        .unicode(false)
        .build()
        .unwrap();
        let mut pieces: Vec<String> = ["a", "Z", "7", "@", ".", "-", "_", " ", "é", "\\n"]
            .map(String::from)
            .to_vec();
        for t in rules.texts() {
            for e in &t.examples {
                pieces.extend([e.text.clone(), e.secret.clone()]);
                let cut = e.secret.char_indices().nth(4).map_or(0, |(i, _)| i);
                pieces.push(e.secret[..cut].to_string());
            }
            pieces.extend(t.keep.iter().cloned());
        }
        let (mut matched, mut not) = (0, 0);
        for text in crate::query::mixtures::mixtures(&pieces, 0x9e37_79b9_7f4a_7c15, 4, 20_000) {
            let expected = set.is_match(text.as_bytes());
            assert_eq!(gate.is_match(text.as_bytes()), expected, "{text:?}");
            *if expected { &mut matched } else { &mut not } += 1;
        }
        assert!(matched > 1000 && not > 1000, "{matched} and {not}");
    }
}
