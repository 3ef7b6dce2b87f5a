//! TLS record protection. TLS 1.3 (RFC 8446 §5.2, §7.1-7.3): the traffic key
//! and IV derived from a secret of the key log, records opened with the
//! suite's AEAD, and the next generation after a KeyUpdate. TLS 1.2's AEAD
//! suites (RFC 5246 §5, §6.3; RFC 5288; RFC 7905): the keys expanded from
//! the master secret by the PRF. The ciphers, HKDF and HMAC are RustCrypto's.

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use chacha20poly1305::ChaCha20Poly1305;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
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

    /// A TLS 1.2 AEAD suite: its cipher; the hash of its PRF is the one
    /// [`Suite::hash_len`] names (SHA-384 with AES-256-GCM).
    pub fn from_tls12_id(id: u16) -> Option<Suite> {
        Some(match id {
            0xc02f | 0xc02b | 0x009c | 0x009e => Suite::Aes128Gcm,
            0xc030 | 0xc02c | 0x009d | 0x009f => Suite::Aes256Gcm,
            0xcca8..=0xccaa => Suite::ChaCha20Poly1305,
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

    /// HMAC with the suite's hash over `parts`.
    fn hmac(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        fn run<M: Mac>(mut m: M, parts: &[&[u8]]) -> Vec<u8> {
            for p in parts {
                m.update(p);
            }
            m.finalize().into_bytes().to_vec()
        }
        match self {
            Suite::Aes256Gcm => run(
                Hmac::<Sha384>::new_from_slice(key).expect("HMAC takes any key length"),
                parts,
            ),
            _ => run(
                Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length"),
                parts,
            ),
        }
    }

    /// TLS 1.2's PRF: P_hash(secret, label ‖ seed), `len` bytes.
    fn prf(self, secret: &[u8], label: &[u8], seed: &[u8], len: usize) -> Vec<u8> {
        let seed = [label, seed].concat();
        let mut a = self.hmac(secret, &[&seed]);
        let mut out = Vec::with_capacity(len + 48);
        while out.len() < len {
            out.extend(self.hmac(secret, &[&a, &seed]));
            a = self.hmac(secret, &[&a]);
        }
        out.truncate(len);
        out
    }
}

enum Cipher {
    Aes128(Box<Aes128Gcm>),
    Aes256(Box<Aes256Gcm>),
    ChaCha(Box<ChaCha20Poly1305>),
}

impl Cipher {
    fn new(suite: Suite, key: &[u8]) -> Option<Cipher> {
        Some(match suite {
            Suite::Aes128Gcm => Cipher::Aes128(Box::new(Aes128Gcm::new_from_slice(key).ok()?)),
            Suite::Aes256Gcm => Cipher::Aes256(Box::new(Aes256Gcm::new_from_slice(key).ok()?)),
            Suite::ChaCha20Poly1305 => {
                Cipher::ChaCha(Box::new(ChaCha20Poly1305::new_from_slice(key).ok()?))
            }
        })
    }
}

/// One direction's protection under one traffic secret.
pub struct Protection {
    suite: Suite,
    secret: Vec<u8>,
    cipher: Cipher,
    iv: [u8; 12],
    /// The next record's sequence number.
    pub seq: u64,
    /// TLS 1.2: the nonce and the additional data are made otherwise, and
    /// the record's own type is its content's.
    tls12: bool,
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
        Some(Protection {
            suite,
            secret: secret.to_vec(),
            cipher: Cipher::new(suite, &key)?,
            iv,
            seq: 0,
            tls12: false,
        })
    }

    /// TLS 1.2: the keys of one direction (`client`: the client's writes),
    /// expanded from the master secret and both hellos' randoms.
    pub fn tls12(
        suite: Suite,
        master: &[u8],
        client_random: &[u8; 32],
        server_random: &[u8; 32],
        client: bool,
    ) -> Option<Protection> {
        if master.len() != 48 {
            return None;
        }
        let (key_len, iv_len) = match suite {
            Suite::ChaCha20Poly1305 => (32, 12),
            s => (s.key_len(), 4),
        };
        let seed = [&server_random[..], &client_random[..]].concat();
        let block = suite.prf(master, b"key expansion", &seed, 2 * key_len + 2 * iv_len);
        let (keys, ivs) = block.split_at(2 * key_len);
        let pick = |both: &[u8], n: usize| {
            if client {
                both[..n].to_vec()
            } else {
                both[n..2 * n].to_vec()
            }
        };
        let mut iv = [0; 12];
        iv[..iv_len].copy_from_slice(&pick(ivs, iv_len));
        Some(Protection {
            suite,
            secret: Vec::new(),
            cipher: Cipher::new(suite, &pick(keys, key_len))?,
            iv,
            seq: 0,
            tls12: true,
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

    /// TLS 1.2's GCM suites carry 8 bytes of the nonce before the ciphertext.
    fn explicit_len(&self) -> usize {
        if self.tls12 && self.suite != Suite::ChaCha20Poly1305 {
            8
        } else {
            0
        }
    }

    /// The nonce of record `seq`: the IV with the record's explicit part,
    /// or XORed with the sequence number.
    fn nonce(&self, seq: u64, explicit: &[u8]) -> [u8; 12] {
        let mut nonce = self.iv;
        if explicit.is_empty() {
            for (n, s) in nonce[4..].iter_mut().zip(seq.to_be_bytes()) {
                *n ^= s;
            }
        } else {
            nonce[4..].copy_from_slice(explicit);
        }
        nonce
    }

    /// The additional data: TLS 1.2's is the sequence number and the
    /// header with the content's length; TLS 1.3's is the header.
    fn aad(&self, seq: u64, header: &[u8; 5], content_len: usize) -> Vec<u8> {
        if !self.tls12 {
            return header.to_vec();
        }
        let mut aad = seq.to_be_bytes().to_vec();
        aad.extend_from_slice(&header[..3]);
        aad.extend_from_slice(&(content_len as u16).to_be_bytes());
        aad
    }

    /// Opens the record at sequence number `seq` in place: `body` becomes its
    /// content and the content type is returned. Err: it does not open
    /// under this key (another key's record, or damaged); what `body` then
    /// holds is undefined (a trial passes a copy).
    pub fn open(&self, seq: u64, header: &[u8; 5], body: &mut Vec<u8>) -> Result<u8, ()> {
        let explicit = self.explicit_len();
        if body.len() < explicit + TAG_LEN + usize::from(!self.tls12) {
            return Err(());
        }
        let nonce = self.nonce(seq, &body[..explicit]);
        let cut = body.len() - TAG_LEN;
        let aad = self.aad(seq, header, cut - explicit);
        let (msg, tag) = body[explicit..].split_at_mut(cut - explicit);
        let tag: &[u8] = tag;
        let tag = tag.try_into().expect("split at the tag's length");
        let opened = match &self.cipher {
            Cipher::Aes128(c) => c.decrypt_inout_detached(&nonce.into(), &aad, msg.into(), tag),
            Cipher::Aes256(c) => c.decrypt_inout_detached(&nonce.into(), &aad, msg.into(), tag),
            Cipher::ChaCha(c) => c.decrypt_inout_detached(&nonce.into(), &aad, msg.into(), tag),
        };
        opened.map_err(|_| ())?;
        body.truncate(cut);
        if self.tls12 {
            body.drain(..explicit);
            return Ok(header[0]);
        }
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
        let (outer, mut inner) = if self.tls12 {
            (kind, content.to_vec())
        } else {
            let mut inner = content.to_vec();
            inner.push(kind);
            inner.extend_from_slice(&[0, 0]); // padding
            (23, inner)
        };
        let explicit = &seq.to_be_bytes()[..self.explicit_len()];
        let len = (explicit.len() + inner.len() + TAG_LEN) as u16;
        let mut record = vec![outer, 3, 3];
        record.extend_from_slice(&len.to_be_bytes());
        let header: [u8; 5] = record[..].try_into().unwrap();
        let nonce = self.nonce(seq, explicit);
        let aad = self.aad(seq, &header, inner.len());
        let buf: &mut [u8] = &mut inner;
        let tag = match &self.cipher {
            Cipher::Aes128(c) => c.encrypt_inout_detached(&nonce.into(), &aad, buf.into()),
            Cipher::Aes256(c) => c.encrypt_inout_detached(&nonce.into(), &aad, buf.into()),
            Cipher::ChaCha(c) => c.encrypt_inout_detached(&nonce.into(), &aad, buf.into()),
        }
        .unwrap();
        record.extend_from_slice(explicit);
        record.extend_from_slice(&inner);
        record.extend_from_slice(&tag);
        record
    }
}
