//! Signing keys for sealed captures: Ed25519 (ed25519-dalek), kept as
//! PKCS#8 PEM (the private key, mode 0600) and SPKI PEM (`.pub` beside it).

use anyhow::{bail, Context, Result};
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A key that signs commits and the manifest.
pub struct SigningIdentity {
    key: SigningKey,
}

impl SigningIdentity {
    pub fn load(path: &Path) -> Result<Self> {
        let text = super::read_small_text(path)
            .with_context(|| format!("reading the signing key {}", path.display()))?;
        let key = SigningKey::from_pkcs8_pem(&text).map_err(|e| {
            anyhow::anyhow!(
                "{}: not an Ed25519 private key in PKCS#8 PEM ({e}); make one with mcpspy keygen",
                path.display()
            )
        })?;
        Ok(SigningIdentity { key })
    }

    pub fn sign(&self, bytes: &[u8]) -> [u8; 64] {
        self.key.sign(bytes).to_bytes()
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }
}

/// `sha256:` and the hex SHA-256 of a public key's 32 bytes.
pub fn fingerprint(public_key: &[u8]) -> String {
    format!("sha256:{}", hex::encode(super::seal::sha256(public_key)))
}

/// Whether `signature` is `public_key`'s over exactly `bytes`.
pub fn signature_holds(public_key: &[u8], bytes: &[u8], signature: &[u8]) -> bool {
    let (Ok(pk), Ok(sig)) = (
        <[u8; 32]>::try_from(public_key),
        <[u8; 64]>::try_from(signature),
    ) else {
        return false;
    };
    VerifyingKey::from_bytes(&pk)
        .is_ok_and(|k| k.verify_strict(bytes, &Signature::from_bytes(&sig)).is_ok())
}

/// A public key from its `.pub` file (SPKI PEM): its 32 bytes.
pub fn load_public_key(path: &Path) -> Result<[u8; 32]> {
    let text = super::read_small_text(path)
        .with_context(|| format!("reading the public key {}", path.display()))?;
    VerifyingKey::from_public_key_pem(&text)
        .map(|k| k.to_bytes())
        .map_err(|e| anyhow::anyhow!("{}: not an Ed25519 public key in PEM ({e})", path.display()))
}

/// Makes a key pair: the private key at `path` (mode 0600, never
/// overwritten), the public key at `path` with `.pub` added. Returns the
/// public key's path and fingerprint.
pub fn generate(path: &Path) -> Result<(PathBuf, String)> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no randomness for a key: {e}"))?;
    let key = SigningKey::from_bytes(&seed);
    let private = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| anyhow::anyhow!("encoding the key: {e}"))?;
    let public = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| anyhow::anyhow!("encoding the public key: {e}"))?;
    let pub_path = PathBuf::from(format!("{}.pub", path.display()));
    if pub_path.exists() {
        bail!(
            "{} already exists; keys are never overwritten",
            pub_path.display()
        );
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {} (keys are never overwritten)", path.display()))?;
    f.write_all(private.as_bytes())?;
    std::fs::write(&pub_path, public.as_bytes())
        .with_context(|| format!("writing {}", pub_path.display()))?;
    Ok((pub_path, fingerprint(&key.verifying_key().to_bytes())))
}
