//! Attaching the TLS probes. Where the kernel has uprobe_multi links (6.6
//! and later), the offsets a program is attached at in one binary at once
//! are one link, which detaches in one step; a perf-event uprobe per offset
//! detaches one grace period each, which made stopping a recording take
//! seconds (issue 13).
//! The choice is made before the programs load: a program loaded for
//! multi links attaches only through them. Exported functions are found
//! here, not by libbpf's name pattern, which also matches imports (address
//! 0: a probe on the ELF header) and local functions of the same name.

use libbpf_rs::{Link, OpenProgramMut, ProgramAttachType, ProgramMut, UprobeMultiOpts, UprobeOpts};
use object::{Object, ObjectSegment, ObjectSymbol, ReadRef, SymbolKind};
use std::path::Path;

/// Whether this kernel has uprobe_multi links: its BTF has their type.
/// MCPSPY_UPROBE_MULTI=0 in the environment says no, to use (and test) the
/// perf-event uprobes older kernels need.
pub fn multi_supported() -> bool {
    if std::env::var_os("MCPSPY_UPROBE_MULTI").is_some_and(|v| v == "0") {
        return false;
    }
    libbpf_rs::btf::Btf::from_vmlinux().is_ok_and(|btf| {
        btf.type_by_name::<libbpf_rs::btf::types::Struct<'_>>("bpf_uprobe_multi_link")
            .is_some()
    })
}

/// Loads `prog` for multi links when `multi`.
pub fn prepare(prog: &mut OpenProgramMut<'_>, multi: bool) {
    if multi {
        prog.set_attach_type(ProgramAttachType::TraceUprobeMulti);
    }
}

/// Whether `prog` was loaded for multi links.
pub fn is_multi(prog: &ProgramMut<'_>) -> bool {
    matches!(prog.attach_type(), ProgramAttachType::TraceUprobeMulti)
}

/// Where in a binary a probe goes: file offsets of instructions.
pub struct Site<'a>(pub &'a [u64]);

/// A link-time address's offset in the file (what a uprobe is placed by).
pub fn file_offset<'d, R: ReadRef<'d>>(file: &object::File<'d, R>, va: u64) -> Option<u64> {
    file.segments().find_map(|seg| {
        let (off, filesz) = seg.file_range();
        let addr = seg.address();
        (addr <= va && va < addr + filesz).then(|| va - addr + off)
    })
}

/// The file offsets of the functions `names` that the file at `path`
/// defines: its exports first, else its symbol table's global symbols.
/// Imports (undefined, address 0) and local functions of the same name are
/// not them; two strong definitions at different places are refused, and a
/// weak one yields to a strong one. One result per name.
pub fn function_offsets(path: &Path, names: &[&str]) -> Vec<Result<u64, String>> {
    let found = std::fs::File::open(path)
        .map_err(|e| e.to_string())
        .and_then(|f| {
            let cache = object::ReadCache::new(f);
            let file = object::File::parse(&cache).map_err(|e| e.to_string())?;
            let mut found = pick(file.dynamic_symbols(), names);
            if found.iter().any(|f| matches!(f, Ok(None))) {
                let table = pick(file.symbols(), names);
                for (f, t) in found.iter_mut().zip(table) {
                    if matches!(f, Ok(None)) {
                        *f = t;
                    }
                }
            }
            Ok(found
                .into_iter()
                .zip(names)
                .map(|(f, name)| {
                    let va = f?.ok_or_else(|| format!("{name} is not defined in it"))?;
                    file_offset(&file, va)
                        .ok_or_else(|| format!("{name} at {va:#x} is in no loaded segment"))
                })
                .collect())
        });
    found.unwrap_or_else(|e: String| names.iter().map(|_| Err(e.clone())).collect())
}

/// The address of each of `names` among `symbols` (one pass).
fn pick<'d, S: ObjectSymbol<'d>>(
    symbols: impl Iterator<Item = S>,
    names: &[&str],
) -> Vec<Result<Option<u64>, String>> {
    // (address, weak) of each name's definition so far.
    let mut found: Vec<Result<Option<(u64, bool)>, String>> =
        names.iter().map(|_| Ok(None)).collect();
    for sym in symbols {
        if sym.kind() != SymbolKind::Text
            || !sym.is_definition()
            || !sym.is_global()
            || sym.address() == 0
        {
            continue;
        }
        let Some(i) = sym
            .name()
            .ok()
            .and_then(|n| names.iter().position(|&w| w == n))
        else {
            continue;
        };
        let (at, weak) = (sym.address(), sym.is_weak());
        found[i] = match &found[i] {
            Ok(Some((was, _))) if *was == at => continue,
            Ok(Some((_, false))) if weak => continue,
            Ok(Some((was, false))) => {
                Err(format!("{} is defined twice ({was:#x}, {at:#x})", names[i]))
            }
            Err(_) => continue,
            _ => Ok(Some((at, weak))),
        };
    }
    found
        .into_iter()
        .map(|f| f.map(|o| o.map(|(at, _)| at)))
        .collect()
}

/// Attaches `prog` at `site` of `path` for every process that runs it, now
/// or later: one link, or one per offset where multi links are absent.
pub fn attach(
    prog: &ProgramMut<'_>,
    path: &Path,
    Site(offsets): Site<'_>,
    retprobe: bool,
) -> libbpf_rs::Result<Vec<Link>> {
    if is_multi(prog) {
        let opts = UprobeMultiOpts {
            offsets: offsets.iter().map(|&o| o as usize).collect(),
            retprobe,
            ..Default::default()
        };
        return Ok(vec![prog.attach_uprobe_multi_with_opts(-1, path, "", opts)?]);
    }
    offsets
        .iter()
        .map(|&o| {
            let opts = UprobeOpts {
                retprobe,
                ..Default::default()
            };
            prog.attach_uprobe_with_opts(-1, path, o as usize, opts)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shared library (built with gcc, which setup installs) that defines
    /// SSL_write, calls an imported SSL_read, has a local SSL_free and a
    /// weak SSL_read_ex: only the defined global functions are found.
    #[test]
    fn only_functions_the_file_defines_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("lib.c");
        let so = dir.path().join("lib.so");
        std::fs::write(
            &c,
            "int SSL_read(void *s, void *b, int n);\n\
             __attribute__((noinline, used)) static int SSL_free(void *s) { return s != 0; }\n\
             int SSL_write(void *s, const void *b, int n) { return SSL_read(s, (void *)b, n) + SSL_free(s); }\n\
             __attribute__((weak)) int SSL_read_ex(void *s) { return s == 0; }\n",
        )
        .unwrap();
        let built = std::process::Command::new("gcc")
            .args(["-shared", "-fPIC", "-O1", "-o"])
            .arg(&so)
            .arg(&c)
            .status()
            .unwrap();
        assert!(built.success());
        let names = [
            "SSL_write",
            "SSL_read",
            "SSL_free",
            "SSL_read_ex",
            "SSL_peek",
        ];
        let found = function_offsets(&so, &names);
        let write = found[0].clone().expect("SSL_write is defined");
        assert!(write > 0);
        assert!(
            found[1].as_ref().unwrap_err().contains("not defined"),
            "{found:?}"
        );
        assert!(
            found[2].is_err(),
            "a local function is not the export: {found:?}"
        );
        assert!(
            found[3].as_ref().is_ok_and(|&at| at > 0 && at != write),
            "{found:?}"
        );
        assert!(found[4].is_err());
        // The offset is where the function's code is in the file: the
        // library's own symbol value, through its loaded segment.
        let data = std::fs::read(&so).unwrap();
        let file = object::File::parse(&*data).unwrap();
        let sym = file
            .dynamic_symbols()
            .find(|s| s.name() == Ok("SSL_write"))
            .unwrap();
        assert_eq!(file_offset(&file, sym.address()), Some(write));
        // The local and the import are in the file, and were passed over.
        assert!(file
            .symbols()
            .any(|s| s.name() == Ok("SSL_free") && s.is_local() && s.address() > 0));
        assert!(file
            .dynamic_symbols()
            .any(|s| s.name() == Ok("SSL_read") && s.is_undefined()));
        let missing = function_offsets(&dir.path().join("absent"), &names[..1]);
        assert!(missing[0].is_err());
    }
}
