//! Content codings (gzip, deflate) undone a whole chunk or body at a time,
//! so that where messages come out does not depend on how reads split the
//! stream.

use std::io::Write;

/// Compressed bytes given to the inflater at once: deflate inflates at most
/// about 1032 times, so one piece makes at most about 8 MiB.
const PIECE: usize = 8 << 10;

/// A content coding being undone. Compressed bytes are decompressed a whole
/// chunk (or a whole body) at a time, so that where messages come out does
/// not depend on how reads split the stream.
pub(super) enum Coding {
    Gzip(Box<flate2::write::GzDecoder<Vec<u8>>>),
    /// zlib-wrapped or raw deflate (both are sent as `deflate`): decided by
    /// the first bytes.
    Deflate(Option<Box<Inflater>>),
    Undecodable,
}

pub(super) enum Inflater {
    Zlib(flate2::write::ZlibDecoder<Vec<u8>>),
    Raw(flate2::write::DeflateDecoder<Vec<u8>>),
}

impl std::fmt::Debug for Coding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Coding::Gzip(_) => "gzip",
            Coding::Deflate(_) => "deflate",
            Coding::Undecodable => "undecodable",
        })
    }
}

impl Coding {
    pub(super) fn gzip() -> Self {
        Coding::Gzip(Box::new(flate2::write::GzDecoder::new(Vec::new())))
    }

    pub(super) fn name(&self) -> &'static str {
        match self {
            Coding::Gzip(_) => "gzip",
            Coding::Deflate(_) => "deflate",
            Coding::Undecodable => "an unknown coding",
        }
    }

    /// Decompresses `input` (`last`: the body ends with it); the output so
    /// far. Input goes in small pieces and the output is measured after
    /// each: past `limit` bytes from one call it stops (a few KiB of a
    /// decompression bomb inflate to gigabytes).
    pub(super) fn run(
        &mut self,
        input: &[u8],
        last: bool,
        limit: usize,
    ) -> Result<Vec<u8>, String> {
        fn step<W: Write>(
            w: &mut W,
            input: &[u8],
            last: bool,
            limit: usize,
            len: impl Fn(&W) -> usize,
            finish: impl FnOnce(&mut W) -> std::io::Result<()>,
            take: impl FnOnce(&mut W) -> Vec<u8>,
        ) -> Result<Vec<u8>, String> {
            for piece in input.chunks(PIECE) {
                w.write_all(piece).map_err(|e| e.to_string())?;
                w.flush().map_err(|e| e.to_string())?;
                if len(w) > limit {
                    return Err(format!(
                        "it inflates to more than {limit} bytes (a decompression bomb?); cut there"
                    ));
                }
            }
            if last {
                finish(w).map_err(|e| e.to_string())?;
            }
            Ok(take(w))
        }
        match self {
            Coding::Gzip(d) => step(
                &mut **d,
                input,
                last,
                limit,
                |d| d.get_ref().len(),
                |d| d.try_finish(),
                |d| std::mem::take(d.get_mut()),
            ),
            Coding::Deflate(state) => {
                if state.is_none() {
                    if input.is_empty() {
                        return Ok(Vec::new());
                    }
                    // A zlib header: CM 8, and a check that makes it a multiple of 31.
                    let zlib = input.len() >= 2
                        && input[0] & 0x0f == 8
                        && (u16::from(input[0]) << 8 | u16::from(input[1])) % 31 == 0;
                    *state = Some(Box::new(if zlib {
                        Inflater::Zlib(flate2::write::ZlibDecoder::new(Vec::new()))
                    } else {
                        Inflater::Raw(flate2::write::DeflateDecoder::new(Vec::new()))
                    }));
                }
                match state.as_deref_mut() {
                    Some(Inflater::Zlib(d)) => step(
                        d,
                        input,
                        last,
                        limit,
                        |d| d.get_ref().len(),
                        |d| d.try_finish(),
                        |d| std::mem::take(d.get_mut()),
                    ),
                    Some(Inflater::Raw(d)) => step(
                        d,
                        input,
                        last,
                        limit,
                        |d| d.get_ref().len(),
                        |d| d.try_finish(),
                        |d| std::mem::take(d.get_mut()),
                    ),
                    None => Ok(Vec::new()),
                }
            }
            Coding::Undecodable => Err("not decoded".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
    use flate2::Compression;

    fn compress<W: Write>(mut w: W, data: &[u8], finish: impl FnOnce(W) -> Vec<u8>) -> Vec<u8> {
        w.write_all(data).unwrap();
        finish(w)
    }

    #[test]
    fn gzip_and_both_kinds_of_deflate_are_undone_in_pieces() {
        let text = br#"{"jsonrpc":"2.0","id":1,"result":{}}"#.repeat(50);
        let level = Compression::default();
        let gz = compress(GzEncoder::new(Vec::new(), level), &text, |w| {
            w.finish().unwrap()
        });
        let zlib = compress(ZlibEncoder::new(Vec::new(), level), &text, |w| {
            w.finish().unwrap()
        });
        let raw = compress(DeflateEncoder::new(Vec::new(), level), &text, |w| {
            w.finish().unwrap()
        });
        for (mut coding, data) in [
            (Coding::gzip(), gz),
            (Coding::Deflate(None), zlib),
            (Coding::Deflate(None), raw),
        ] {
            let name = coding.name();
            let (a, b) = data.split_at(data.len() / 2);
            let mut out = coding.run(a, false, usize::MAX).unwrap();
            out.extend(coding.run(b, true, usize::MAX).unwrap());
            assert_eq!(out, text, "{name}");
        }
    }

    #[test]
    fn what_does_not_decompress_is_an_error() {
        assert!(Coding::gzip()
            .run(b"not gzip at all", true, 1 << 20)
            .is_err());
        assert!(Coding::Undecodable.run(b"x", true, 1 << 20).is_err());
        // A body that ends inside the stream is an error at its end only.
        let gz = compress(
            GzEncoder::new(Vec::new(), Compression::default()),
            b"{}",
            |w| w.finish().unwrap(),
        );
        let mut c = Coding::gzip();
        assert!(c.run(&gz[..gz.len() - 4], false, 1 << 20).is_ok());
        assert!(c.run(&[], true, 1 << 20).is_err());
    }

    #[test]
    fn a_decompression_bomb_is_cut_where_it_passes_the_limit() {
        // 64 MiB of zeros compress to about 64 KiB.
        let zeros = vec![0u8; 64 << 20];
        let bomb = compress(
            GzEncoder::new(Vec::new(), Compression::best()),
            &zeros,
            |w| w.finish().unwrap(),
        );
        assert!(bomb.len() < 100 << 10);
        let err = Coding::gzip().run(&bomb, true, 4 << 20).unwrap_err();
        assert!(err.contains("more than 4194304 bytes"), "{err}");
        let whole = Coding::gzip().run(&bomb, true, 64 << 20).unwrap();
        assert_eq!(whole.len(), 64 << 20);
    }
}
