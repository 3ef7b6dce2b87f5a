//! MCP 2026-07-28 mirrors a request's method and target in HTTP headers
//! (`Mcp-Method`, and `Mcp-Name` for tools/call and prompts/get (the name)
//! and resources/read (the URI)), so that proxies can route without reading
//! bodies. A request whose headers say something else than its body is
//! flagged: servers refuse it (-32020), and a proxy may have acted on the
//! headers alone.

/// What the headers of `head` (an HTTP head as text) say that the body
/// (`method`, and `subject`: the name or URI) does not.
pub(super) fn mismatch(head: &str, method: &str, subject: Option<&str>) -> Option<String> {
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    };
    let mut wrong = Vec::new();
    if let Some(m) = header("mcp-method") {
        if m != method {
            wrong.push(format!(
                "Mcp-Method `{m:.120}` but the body's method is `{method:.120}`"
            ));
        }
    }
    // Values outside printable ASCII are sent base64-encoded (=?base64?…?=):
    // those are not compared.
    if let (Some(n), Some(s)) = (header("mcp-name"), subject) {
        if n != s && !n.starts_with("=?base64?") {
            wrong.push(format!("Mcp-Name `{n:.120}` but the body names `{s:.120}`"));
        }
    }
    (!wrong.is_empty()).then(|| {
        format!(
            "HTTP headers that do not match the body: {}",
            wrong.join("; ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_checked_against_the_body() {
        let head =
            "POST /mcp HTTP/2.0\r\n:method: POST\r\nmcp-method: tools/call\r\nMcp-Name: echo\r\n";
        assert_eq!(mismatch(head, "tools/call", Some("echo")), None);
        let m = mismatch(head, "tools/call", Some("delete_all")).unwrap();
        assert!(
            m.contains("Mcp-Name `echo` but the body names `delete_all`"),
            "{m}"
        );
        let m = mismatch(head, "tools/list", None).unwrap();
        assert!(m.contains("Mcp-Method `tools/call`"), "{m}");
        // No such headers (older revisions): nothing to check.
        assert_eq!(
            mismatch("POST /mcp HTTP/1.1\r\nHost: x\r\n", "ping", None),
            None
        );
        let b64 = "POST / HTTP/1.1\r\nmcp-method: tools/call\r\nmcp-name: =?base64?w6k=?=\r\n";
        assert_eq!(mismatch(b64, "tools/call", Some("é")), None);
    }
}
