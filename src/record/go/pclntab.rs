//! Where a Go binary's functions are: by name in `.symtab`, else in Go's
//! own function table, which stripped and PIE builds keep (`.gopclntab`,
//! `.data.rel.ro.gopclntab` in Go 1.19 PIEs). The table layout read here is
//! Go 1.18 and later (magic 0xfffffff0 / 0xfffffff1; runtime/symtab.go's
//! pcHeader and functab). Every read is bounds-checked: the file is input.

use object::{Object, ObjectSection, ObjectSymbol, ReadRef};

/// A function's link-time address range (its last instruction's padding included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Func {
    pub addr: u64,
    pub end: u64,
}

/// Section names that only Go's linker writes.
const GO_SECTIONS: [&str; 4] = [
    ".go.buildinfo",
    ".note.go.buildid",
    ".gopclntab",
    ".data.rel.ro.gopclntab",
];

pub fn is_go<'d, R: ReadRef<'d>>(file: &object::File<'d, R>) -> bool {
    GO_SECTIONS
        .iter()
        .any(|n| file.section_by_name(n).is_some())
}

/// The functions named `names` (None for each not found), and where they
/// were found ("symtab" or "gopclntab").
pub fn find<'d, R: ReadRef<'d>>(
    file: &object::File<'d, R>,
    names: &[&str],
) -> Result<(Vec<Option<Func>>, &'static str), String> {
    let mut found = vec![None; names.len()];
    for sym in file.symbols() {
        if let Some(i) = sym
            .name()
            .ok()
            .and_then(|n| names.iter().position(|w| *w == n))
        {
            if sym.size() > 0 {
                found[i] = Some(Func {
                    addr: sym.address(),
                    end: sym.address() + sym.size(),
                });
            }
        }
    }
    if found.iter().all(Option::is_some) {
        return Ok((found, "symtab"));
    }
    let section = [".gopclntab", ".data.rel.ro.gopclntab"]
        .iter()
        .find_map(|n| file.section_by_name(n))
        .ok_or("no .symtab entry and no .gopclntab section")?;
    let table = section
        .data()
        .map_err(|e| format!("reading {}: {e}", section.name().unwrap_or("?")))?;
    let text = file.section_by_name(".text").map(|s| s.address());
    Ok((pclntab(table, text, names)?, "gopclntab"))
}

fn u32_at(b: &[u8], at: u64) -> Option<u32> {
    let at = usize::try_from(at).ok()?;
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: u64) -> Option<u64> {
    let at = usize::try_from(at).ok()?;
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Looks `names` up in a pcln table (`text`: the .text section's address,
/// for tables whose textStart is 0, as Go 1.27 writes them).
fn pclntab(t: &[u8], text: Option<u64>, names: &[&str]) -> Result<Vec<Option<Func>>, String> {
    let bad = |what: &str| format!(".gopclntab: {what}");
    let magic = u32_at(t, 0).ok_or_else(|| bad("too short"))?;
    if !matches!(magic, 0xffff_fff0 | 0xffff_fff1) {
        return Err(bad(&format!(
            "magic {magic:#x} is not Go 1.18 or later's (0xfffffff0, 0xfffffff1)"
        )));
    }
    if t.get(6..8) != Some(&[1, 8]) {
        return Err(bad(
            "not an x86-64 table (instruction size 1, pointer size 8)",
        ));
    }
    let field = |i: u64| u64_at(t, 8 * i).ok_or_else(|| bad("header cut short"));
    let nfunc = field(1)?;
    let text_start = match field(3)? {
        0 => text.ok_or_else(|| bad("textStart is 0 and there is no .text section"))?,
        s => s,
    };
    let (funcnames, pcln) = (field(4)?, field(8)?);
    if nfunc > t.len() as u64 / 8 {
        return Err(bad("more functions than the table can hold"));
    }
    let mut found = vec![None; names.len()];
    let entry = |i: u64| -> Option<(u32, u32)> {
        let at = pcln.checked_add(i * 8)?;
        Some((u32_at(t, at)?, u32_at(t, at + 4)?))
    };
    for i in 0..nfunc {
        let (off, funcoff) = entry(i).ok_or_else(|| bad("function table cut short"))?;
        let (next, _) = entry(i + 1).ok_or_else(|| bad("function table cut short"))?;
        let name_off = u32_at(t, pcln + u64::from(funcoff) + 4).ok_or_else(|| bad("bad _func"))?;
        let at = funcnames.saturating_add(u64::from(name_off)) as usize;
        let Some(rest) = t.get(at..) else { continue };
        let name = &rest[..memchr::memchr(0, rest).unwrap_or(rest.len())];
        if let Some(k) = names.iter().position(|n| n.as_bytes() == name) {
            found[k] = Some(Func {
                addr: text_start + u64::from(off),
                end: text_start + u64::from(next.max(off)),
            });
        }
    }
    Ok(found)
}
