//! TLS 1.3 record protection (RFC 8446 §5.2, §7.1-7.3): the traffic key and
//! IV derived from a secret of the key log, records opened with the
//! suite's AEAD, and the next generation after a KeyUpdate. The ciphers and
//! HKDF are RustCrypto's.

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use chacha20poly1305::ChaCha20Poly1305;
use hkdf::Hkdf;
use sha2::{Sha256, Sha384};

/// The TLS 1.3 cipher suites.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Suite {
    Aes128Gcm,
    Aes256Gcm,
    ChaCha20Poly1305,
}

impl Suite {
    pub fn from_id(id: u16) -> Option<Suite> {
        Some(match id {
            0x1301 => Suite::Aes128Gcm,
            0x1302 => Suite::Aes256Gcm,
            0x1303 => Suite::ChaCha20Poly1305,
            _ => return None,
        })
    }

    fn key_len(self) -> usize {
        match self {
            Suite::Aes128Gcm => 16,
            _ => 32,
        }
    }

    /// The suite's hash length: the length of its secrets.
    fn hash_len(self) -> usize {
        match self {
            Suite::Aes256Gcm => 48,
            _ => 32,
        }
    }

    /// HKDF-Expand-Label(secret, label, "", len) with the suite's hash.
    fn expand_label(self, secret: &[u8], label: &[u8], len: usize) -> Option<Vec<u8>> {
        let mut info = Vec::with_capacity(10 + label.len());
        info.extend_from_slice(&(len as u16).to_be_bytes());
        info.push((6 + label.len()) as u8);
        info.extend_from_slice(b"tls13 ");
        info.extend_from_slice(label);
        info.push(0); // an empty context
        let mut out = vec![0; len];
        let ok = match self {
            Suite::Aes256Gcm => Hkdf::<Sha384>::from_prk(secret)
                .ok()?
                .expand(&info, &mut out)
                .is_ok(),
            _ => Hkdf::<Sha256>::from_prk(secret)
                .ok()?
                .expand(&info, &mut out)
                .is_ok(),
        };
        ok.then_some(out)
    }
}

enum Cipher {
    Aes128(Box<Aes128Gcm>),
    Aes256(Box<Aes256Gcm>),
    ChaCha(Box<ChaCha20Poly1305>),
}

/// One direction's protection under one traffic secret.
pub struct Protection {
    suite: Suite,
    secret: Vec<u8>,
    cipher: Cipher,
    iv: [u8; 12],
    /// The next record's sequence number.
    pub seq: u64,
}

/// Bytes a protected record adds to its content: the tag.
pub const TAG_LEN: usize = 16;

impl Protection {
    /// None: the secret is not of the suite's length.
    pub fn new(suite: Suite, secret: &[u8]) -> Option<Protection> {
        if secret.len() != suite.hash_len() {
            return None;
        }
        let key = suite.expand_label(secret, b"key", suite.key_len())?;
        let iv: [u8; 12] = suite.expand_label(secret, b"iv", 12)?.try_into().ok()?;
        let cipher = match suite {
            Suite::Aes128Gcm => Cipher::Aes128(Box::new(Aes128Gcm::new_from_slice(&key).ok()?)),
            Suite::Aes256Gcm => Cipher::Aes256(Box::new(Aes256Gcm::new_from_slice(&key).ok()?)),
            Suite::ChaCha20Poly1305 => {
                Cipher::ChaCha(Box::new(ChaCha20Poly1305::new_from_slice(&key).ok()?))
            }
        };
        Some(Protection {
            suite,
            secret: secret.to_vec(),
            cipher,
            iv,
            seq: 0,
        })
    }

    /// The next generation of keys (a KeyUpdate): "traffic upd".
    pub fn update(&mut self) -> Option<()> {
        let next = self
            .suite
            .expand_label(&self.secret, b"traffic upd", self.suite.hash_len())?;
        *self = Protection::new(self.suite, &next)?;
        Some(())
    }

    /// Opens the record at sequence number `seq` in place: `body` becomes its
    /// content and the content type is returned. Err: it does not open
    /// under this key (another key's record, or damaged); what `body` then
    /// holds is undefined (a trial passes a copy).
    pub fn open(&self, seq: u64, header: &[u8; 5], body: &mut Vec<u8>) -> Result<u8, ()> {
        if body.len() < TAG_LEN + 1 {
            return Err(());
        }
        let mut nonce = self.iv;
        for (n, s) in nonce[4..].iter_mut().zip(seq.to_be_bytes()) {
            *n ^= s;
        }
        let cut = body.len() - TAG_LEN;
        let (msg, tag) = body.split_at_mut(cut);
        let tag: &[u8] = tag;
        let tag = tag.try_into().expect("split at the tag's length");
        let opened = match &self.cipher {
            Cipher::Aes128(c) => c.decrypt_inout_detached(&nonce.into(), header, msg.into(), tag),
            Cipher::Aes256(c) => c.decrypt_inout_detached(&nonce.into(), header, msg.into(), tag),
            Cipher::ChaCha(c) => c.decrypt_inout_detached(&nonce.into(), header, msg.into(), tag),
        };
        opened.map_err(|_| ())?;
        body.truncate(body.len() - TAG_LEN);
        // TLSInnerPlaintext: content, the type, then zero padding.
        let Some(end) = body.iter().rposition(|&b| b != 0) else {
            return Err(());
        };
        let kind = body[end];
        body.truncate(end);
        Ok(kind)
    }
}

#[cfg(test)]
impl Protection {
    /// Seals `content` of type `kind` as record `seq` (tests make traffic
    /// with it; opening is what the decoder does).
    pub fn seal(&self, seq: u64, kind: u8, content: &[u8]) -> Vec<u8> {
        let mut inner = content.to_vec();
        inner.push(kind);
        inner.extend_from_slice(&[0, 0]); // padding
        let len = (inner.len() + TAG_LEN) as u16;
        let mut record = vec![23, 3, 3];
        record.extend_from_slice(&len.to_be_bytes());
        let header: [u8; 5] = record[..5].try_into().unwrap();
        let mut nonce = self.iv;
        for (n, s) in nonce[4..].iter_mut().zip(seq.to_be_bytes()) {
            *n ^= s;
        }
        let buf: &mut [u8] = &mut inner;
        let tag = match &self.cipher {
            Cipher::Aes128(c) => c.encrypt_inout_detached(&nonce.into(), &header, buf.into()),
            Cipher::Aes256(c) => c.encrypt_inout_detached(&nonce.into(), &header, buf.into()),
            Cipher::ChaCha(c) => c.encrypt_inout_detached(&nonce.into(), &header, buf.into()),
        }
        .unwrap();
        record.extend_from_slice(&inner);
        record.extend_from_slice(&tag);
        record
    }
}
