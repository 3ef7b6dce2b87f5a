//! The lines of a TLS key log (the NSS format that SSLKEYLOGFILE writes):
//! `LABEL <client random, hex> <secret, hex>`; the client random (the 32
//! bytes of the ClientHello) names the connection. The recorder keeps the
//! lines that parse; the decoder opens TLS 1.3 and 1.2 with them.
//! <https://www.ietf.org/archive/id/draft-ietf-tls-keylogfile-02.html>

/// The secrets this decoder uses, by what each protects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Label {
    ClientHandshake,
    ServerHandshake,
    ClientTraffic,
    ServerTraffic,
    /// TLS 1.2: the master secret (CLIENT_RANDOM).
    Master,
}

impl Label {
    fn parse(s: &[u8]) -> Option<Label> {
        Some(match s {
            b"CLIENT_HANDSHAKE_TRAFFIC_SECRET" => Label::ClientHandshake,
            b"SERVER_HANDSHAKE_TRAFFIC_SECRET" => Label::ServerHandshake,
            b"CLIENT_TRAFFIC_SECRET_0" => Label::ClientTraffic,
            b"SERVER_TRAFFIC_SECRET_0" => Label::ServerTraffic,
            b"CLIENT_RANDOM" => Label::Master,
            _ => return None,
        })
    }
}

/// What one line is, for the recorder's count of what it kept.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A secret this decoder uses.
    Secret {
        label: Label,
        random: [u8; 32],
        secret: Vec<u8>,
    },
    /// A well-formed line of another label (early data, exporter
    /// secrets): kept in the file, not used here.
    Other,
    /// A comment or an empty line.
    Blank,
}

/// Longest secret of any suite (SHA-384's 48 bytes), with room to spare.
const MAX_SECRET: usize = 64;
/// Longest line worth keeping: the longest label, two hex fields, spaces.
pub const MAX_LINE: usize = 64 + 2 * 32 + 2 * MAX_SECRET + 8;

/// Parses one line (without its newline). Err: why it is not a key log line.
pub fn parse_line(line: &[u8]) -> Result<Line, &'static str> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() || line.starts_with(b"#") {
        return Ok(Line::Blank);
    }
    if line.len() > MAX_LINE {
        return Err("longer than any key log line");
    }
    let mut fields = line.split(|&b| b == b' ');
    let (Some(label), Some(random), Some(secret), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err("not three fields");
    };
    let good_label = !label.is_empty()
        && label
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_');
    let random: [u8; 32] = match hex::decode(random).ok().map(<[u8; 32]>::try_from) {
        Some(Ok(r)) => r,
        _ => return Err("the client random is not 32 bytes of hex"),
    };
    let secret = match hex::decode(secret) {
        Ok(s) if !s.is_empty() && s.len() <= MAX_SECRET => s,
        _ => return Err("the secret is not hex of a secret's length"),
    };
    if !good_label {
        return Err("the label is not a key log label");
    }
    Ok(match Label::parse(label) {
        Some(label) => Line::Secret {
            label,
            random,
            secret,
        },
        None => Line::Other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_and_bad_ones_say_why() {
        let r = "ab".repeat(32);
        let ok = format!("CLIENT_TRAFFIC_SECRET_0 {r} {}", "01".repeat(32));
        assert_eq!(
            parse_line(ok.as_bytes()),
            Ok(Line::Secret {
                label: Label::ClientTraffic,
                random: [0xab; 32],
                secret: vec![1; 32]
            })
        );
        assert_eq!(parse_line(b"# a comment"), Ok(Line::Blank));
        assert_eq!(
            parse_line(format!("EXPORTER_SECRET {r} {}", "02".repeat(48)).as_bytes()),
            Ok(Line::Other)
        );
        assert!(matches!(
            parse_line(format!("CLIENT_RANDOM {r} {}", "02".repeat(48)).as_bytes()),
            Ok(Line::Secret {
                label: Label::Master,
                ..
            })
        ));
        for bad in [
            format!("CLIENT_TRAFFIC_SECRET_0 {} 01", "ab".repeat(31)),
            format!("CLIENT_TRAFFIC_SECRET_0 {r} zz"),
            format!("client_traffic {r} 01"),
            format!("CLIENT_TRAFFIC_SECRET_0 {r}"),
            format!("CLIENT_TRAFFIC_SECRET_0 {r} 01 extra"),
            format!("CLIENT_TRAFFIC_SECRET_0 {r} {}", "01".repeat(65)),
        ] {
            assert!(parse_line(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
