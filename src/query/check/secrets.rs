//! Secrets and personal data in traffic, found by the rules of `redact`
//! (derive::rules): which rule, and where (the message, the JSON field, the
//! HTTP header, the argument), never the value.

use super::super::derive::rules::{merge, Rules};

/// One secret found: its rule's name and the field it is in.
#[derive(Debug, PartialEq, Eq)]
pub struct Secret {
    pub rule: String,
    pub field: String,
}

/// Secrets in a message's JSON text, each with the path of its field
/// (`whole`: the text is known to be whole JSON).
pub fn in_text(rules: &Rules, text: &[u8], whole: bool) -> Vec<Secret> {
    let mut found = Vec::new();
    rules.in_message(text, whole, &mut found);
    merge(found)
        .into_iter()
        .map(|f| Secret {
            rule: rules.name(f.rule).to_string(),
            field: path_at(text, f.start),
        })
        .collect()
}

/// Secrets in the head of an HTTP message, each with its header's name.
pub fn in_head(rules: &Rules, head: &str) -> Vec<Secret> {
    let mut found = Vec::new();
    rules.in_headers(head.as_bytes(), &mut found);
    merge(found)
        .into_iter()
        .map(|f| {
            let line_start = head[..f.start].rfind('\n').map_or(0, |i| i + 1);
            let header = head[line_start..f.start]
                .split(':')
                .next()
                .unwrap_or("")
                .trim();
            Secret {
                rule: rules.name(f.rule).to_string(),
                field: format!("header {header}"),
            }
        })
        .collect()
}

/// Secrets in a command line, each with its argument's place.
pub fn in_args(rules: &Rules, args: &[String]) -> Vec<Secret> {
    rules
        .in_args(args)
        .into_iter()
        .map(|(i, f)| Secret {
            rule: rules.name(f.rule).to_string(),
            field: format!("argv[{i}]"),
        })
        .collect()
}

/// The path (`params.arguments.note`, `result.content[0].text`) of the JSON
/// value that holds byte `at` of `text`: one pass that tracks the members
/// and indexes it is inside. Text that is not JSON gives what it can.
pub fn path_at(text: &[u8], at: usize) -> String {
    enum Frame {
        Object(Option<String>),
        Array(usize),
    }
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    // The last string read, a member's name when a ':' follows it.
    let mut last_string: Option<(usize, usize)> = None;
    while i < text.len().min(at) {
        match text[i] {
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < text.len() && text[i] != b'"' {
                    i += if text[i] == b'\\' { 2 } else { 1 };
                }
                if i >= at {
                    break;
                }
                last_string = Some((start, i.min(text.len())));
            }
            b':' => {
                if let (Some(Frame::Object(key)), Some((s, e))) = (stack.last_mut(), last_string) {
                    let raw = &text[s..e];
                    *key = Some(
                        serde_json::from_slice::<String>(&[b"\"", raw, b"\""].concat())
                            .unwrap_or_else(|_| String::from_utf8_lossy(raw).into_owned()),
                    );
                }
            }
            b',' => match stack.last_mut() {
                Some(Frame::Array(n)) => *n += 1,
                Some(Frame::Object(key)) => *key = None,
                None => {}
            },
            b'{' => stack.push(Frame::Object(None)),
            b'[' => stack.push(Frame::Array(0)),
            b'}' | b']' => {
                stack.pop();
            }
            _ => {}
        }
        i += 1;
    }
    let mut path = String::new();
    for f in &stack {
        match f {
            Frame::Object(Some(k)) => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
            }
            Frame::Object(None) => {}
            Frame::Array(n) => path.push_str(&format!("[{n}]")),
        }
    }
    if path.is_empty() {
        path.push('$');
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_the_field_of_an_offset() {
        let text = br#"{"jsonrpc":"2.0","id":3,"params":{"name":"remember","arguments":{"note":"key AKIAIOSFODNN7EXAMPLE","x":[1,{"a":"b, \"c\""},"ghp_x"]}}}"#;
        let at = |needle: &str| {
            let i = memchr::memmem::find(text, needle.as_bytes()).unwrap();
            path_at(text, i)
        };
        assert_eq!(at("AKIA"), "params.arguments.note");
        assert_eq!(at("ghp_x"), "params.arguments.x[2]");
        assert_eq!(at("b, "), "params.arguments.x[1].a");
        assert_eq!(at("remember"), "params.name");
    }

    #[test]
    fn rules_report_where_and_which_never_the_value() {
        let rules = Rules::load(&[]).unwrap();
        let found = in_text(
            &rules,
            br#"{"params":{"arguments":{"note":"id AKIAIOSFODNN7EXAMPLE","password":"hunter2"}}}"#,
            true,
        );
        assert_eq!(
            found,
            vec![
                Secret {
                    rule: "aws-access-key-id".into(),
                    field: "params.arguments.note".into()
                },
                Secret {
                    rule: "secret-json-member".into(),
                    field: "params.arguments.password".into()
                },
            ]
        );
        let head = "POST /mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer abcdefabcdef\r\n\r\n";
        let h = in_head(&rules, head);
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].field, "header Authorization");
    }
}
