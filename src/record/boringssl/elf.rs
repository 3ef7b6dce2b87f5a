//! The parts of an x86-64 ELF executable that the BoringSSL scan reads: its
//! loaded segments (program headers; section headers are optional), its
//! BuildID, and which PLT stubs lead to functions that never return.

use memchr::memmem;
use object::elf::{EM_X86_64, ET_DYN, PF_W, PF_X, PT_LOAD, R_X86_64_JUMP_SLOT};
use object::read::elf::{ElfFile64, FileHeader, ProgramHeader};
use object::{Endianness, Object, ObjectSymbol, ObjectSymbolTable, RelocationFlags};
use std::path::Path;

/// A loaded segment's bytes as they are in the file.
struct Load {
    va: u64,
    offset: u64,
    size: u64,
    exec: bool,
    write: bool,
}

pub struct Image {
    map: memmap2::Mmap,
    loads: Vec<Load>,
    pub pie: bool,
    pub build_id: Option<Vec<u8>>,
    /// GOT slots of functions that never return (abort, __stack_chk_fail...).
    noreturn_slots: Vec<u64>,
    /// Their PLT stubs, sorted; found on first use (a pass over the code).
    noreturn: std::cell::OnceCell<Vec<u64>>,
}

/// Library functions after whose call a function's code ends.
const NORETURN: [&str; 16] = [
    "abort",
    "__stack_chk_fail",
    "exit",
    "_exit",
    "_Exit",
    "__assert_fail",
    "__cxa_throw",
    "__cxa_rethrow",
    "_ZSt9terminatev",
    "pthread_exit",
    "longjmp",
    "siglongjmp",
    "__longjmp_chk",
    "__fortify_fail",
    "__chk_fail",
    "_Unwind_Resume",
];

impl Image {
    /// Maps `path`; an error says why it is not a file the scan reads.
    pub fn open(path: &Path) -> Result<Image, String> {
        let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
        // SAFETY: read-only mapping; a file changed under us gives wrong
        // bytes, which the confirmation steps reject, never memory unsafety.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| e.to_string())?;
        let (pie, build_id, loads, slots) = {
            let elf =
                ElfFile64::<Endianness>::parse(&*map).map_err(|e| format!("not ELF64: {e}"))?;
            let endian = elf.endian();
            let header = elf.elf_header();
            if header.e_machine(endian) != EM_X86_64 {
                return Err("not x86-64".into());
            }
            let len = map.len() as u64;
            let loads: Vec<Load> = elf
                .elf_program_headers()
                .iter()
                .filter(|p| p.p_type(endian) == PT_LOAD)
                .map(|p| {
                    let flags = p.p_flags(endian).0;
                    let offset = p.p_offset(endian).min(len);
                    Load {
                        va: p.p_vaddr(endian),
                        offset,
                        size: p.p_filesz(endian).min(len - offset),
                        exec: flags & PF_X.0 != 0,
                        write: flags & PF_W.0 != 0,
                    }
                })
                .collect();
            let build_id = elf.build_id().ok().flatten().map(<[u8]>::to_vec);
            (
                header.e_type(endian) == ET_DYN,
                build_id,
                loads,
                noreturn_slots(&elf),
            )
        };
        Ok(Image {
            map,
            loads,
            pie,
            build_id,
            noreturn_slots: slots,
            noreturn: std::cell::OnceCell::new(),
        })
    }

    fn load_of(&self, va: u64) -> Option<&Load> {
        self.loads.iter().find(|l| va >= l.va && va - l.va < l.size)
    }

    /// Up to `n` bytes at `va`, as far as its segment goes.
    pub fn bytes_at(&self, va: u64, n: usize) -> Option<&[u8]> {
        let l = self.load_of(va)?;
        let start = (l.offset + va - l.va) as usize;
        let end = (l.offset + l.size) as usize;
        Some(&self.map[start..end.min(start + n)])
    }

    /// Where `va` is in the file (uprobes take file offsets).
    pub fn file_offset(&self, va: u64) -> Option<u64> {
        self.load_of(va).map(|l| l.offset + va - l.va)
    }

    fn segments(&self, exec: bool) -> impl Iterator<Item = (u64, &[u8])> {
        self.loads
            .iter()
            .filter(move |l| l.exec == exec && !l.write)
            .map(|l| {
                (
                    l.va,
                    &self.map[l.offset as usize..(l.offset + l.size) as usize],
                )
            })
    }

    /// Code: executable segments.
    pub fn code(&self) -> impl Iterator<Item = (u64, &[u8])> {
        self.segments(true)
    }

    /// Constants: read-only, not executable segments.
    pub fn rodata(&self) -> impl Iterator<Item = (u64, &[u8])> {
        self.segments(false)
    }

    pub fn is_code(&self, va: u64) -> bool {
        self.load_of(va).is_some_and(|l| l.exec)
    }

    pub fn is_noreturn(&self, va: u64) -> bool {
        self.noreturn
            .get_or_init(|| self.plt_stubs_to(&self.noreturn_slots))
            .binary_search(&va)
            .is_ok()
    }

    /// PLT stubs (`jmp [rip+slot]`) whose slot is one of `slots`.
    fn plt_stubs_to(&self, slots: &[u64]) -> Vec<u64> {
        let mut out = Vec::new();
        if slots.is_empty() {
            return out;
        }
        for (va, seg) in self.code() {
            for at in memmem::find_iter(seg, b"\xff\x25") {
                let Some(rel) = seg.get(at + 2..at + 6) else {
                    continue;
                };
                let rel = i32::from_le_bytes(rel.try_into().unwrap_or_default()) as i64;
                let next = va + at as u64 + 6;
                if slots.contains(&next.wrapping_add_signed(rel)) {
                    out.push(va + at as u64);
                }
            }
        }
        out.sort_unstable();
        out
    }
}

/// GOT slots that the dynamic linker fills with a function in [`NORETURN`].
fn noreturn_slots(elf: &ElfFile64<'_, Endianness>) -> Vec<u64> {
    let (Some(relocs), Some(symbols)) = (elf.dynamic_relocations(), elf.dynamic_symbol_table())
    else {
        return Vec::new();
    };
    relocs
        .filter(|(_, r)| matches!(r.flags(), RelocationFlags::Elf { r_type } if r_type == R_X86_64_JUMP_SLOT))
        .filter_map(|(slot, r)| match r.target() {
            object::RelocationTarget::Symbol(i) => {
                let name = symbols.symbol_by_index(i).ok()?.name().ok()?.to_string();
                NORETURN.contains(&name.as_str()).then_some(slot)
            }
            _ => None,
        })
        .collect()
}
