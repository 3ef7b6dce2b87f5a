//! Go's crypto/tls: where to probe `(*Conn).Write` and `(*Conn).Read` in a
//! Go binary ([`pclntab`] finds them, [`code`] decodes them), and the
//! probes themselves (bpf/go_tls.bpf.h). Go programs started after the
//! recording began are found as OpenSSL programs are: by their exec.

mod code;
mod pclntab;

use super::loader::McpspySkel;
use super::uprobes::{self, Site};
use libbpf_rs::Link;
use object::{Object, ReadRef};
use std::path::Path;

const WRITE: &str = "crypto/tls.(*Conn).Write";
const READ: &str = "crypto/tls.(*Conn).Read";

/// Where the probes of one Go binary go (file offsets).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct GoTls {
    /// How the functions were found: "symtab" or "gopclntab".
    pub found_by: &'static str,
    pub write: u64,
    pub read: u64,
    pub read_rets: Vec<u64>,
}

/// Locates crypto/tls in the file at `path`: None if it is not a Go
/// binary; an error says why a Go binary's TLS could not be located.
pub fn locate(path: &Path) -> Result<Option<GoTls>, String> {
    let f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let cache = object::ReadCache::new(f);
    let Ok(file) = object::File::parse(&cache) else {
        return Ok(None);
    };
    if !pclntab::is_go(&file) {
        return Ok(None);
    }
    if file.architecture() != object::Architecture::X86_64 {
        return Err(format!(
            "a Go binary for {:?}, not x86-64",
            file.architecture()
        ));
    }
    let (funcs, found_by) = pclntab::find(&file, &[WRITE, READ])?;
    let (Some(write), Some(read)) = (funcs[0], funcs[1]) else {
        return Err(format!(
            "{WRITE} and {READ} are not in it (the program does not use crypto/tls)"
        ));
    };
    let code_of = |f: pclntab::Func| -> Result<(u64, Vec<u8>), String> {
        let off = uprobes::file_offset(&file, f.addr)
            .ok_or_else(|| format!("{:#x} is in no loaded segment", f.addr))?;
        let len = f.end.saturating_sub(f.addr).min(1 << 20);
        let bytes = cache
            .read_bytes_at(off, len)
            .map_err(|()| format!("cannot read {len} bytes at {off:#x}"))?;
        Ok((off, bytes.to_vec()))
    };
    let (w_off, w_code) = code_of(write)?;
    let (r_off, r_code) = code_of(read)?;
    let w = code::decode(&w_code, write.addr)?;
    let r = code::decode(&r_code, read.addr)?;
    if r.rets.is_empty() {
        return Err(format!("no RET found in {READ}"));
    }
    Ok(Some(GoTls {
        found_by,
        write: w_off + w.check,
        read: r_off + r.check,
        read_rets: r.rets.iter().map(|ret| r_off + ret).collect(),
    }))
}

/// Attaches the probes of one located binary (every process that runs it,
/// now or later).
pub fn attach(skel: &McpspySkel<'_>, path: &Path, at: &GoTls) -> Result<Vec<Link>, String> {
    let p = &skel.progs;
    let probe = |prog: &libbpf_rs::ProgramMut<'_>, offsets: &[u64]| {
        uprobes::attach(prog, path, Site(offsets), false)
            .map_err(|e| format!("uprobe at {offsets:#x?}: {e}"))
    };
    let mut links = probe(&p.mcpspy_go_tls_write, &[at.write])?;
    links.extend(probe(&p.mcpspy_go_tls_read, &[at.read])?);
    links.extend(probe(&p.mcpspy_go_tls_read_ret, &at.read_rets)?);
    Ok(links)
}
