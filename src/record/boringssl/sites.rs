//! BoringSSL's error reports from ssl_lib.cc: the path string, and every
//! call that passes it to the error function with its other arguments.
//!
//! `OPENSSL_PUT_ERROR(SSL, reason)` is `ERR_put_error(16, 0, reason,
//! __FILE__, __LINE__)`: edi=16, esi=0, edx=reason, rcx=file, r8d=line.

use super::elf::Image;
use iced_x86::{Decoder, DecoderOptions, FlowControl, Instruction, Mnemonic, OpKind, Register};
use memchr::memmem;

/// The source file's path ends so in BoringSSL and AWS-LC builds (OpenSSL's
/// is `ssl/ssl_lib.c` and reports errors through another function).
const SSL_LIB: &[u8] = b"/ssl/ssl_lib.cc\0";
/// Instructions decoded from the path's load to the call.
const WINDOW: usize = 14;
/// How far back to look for arguments set before the path's load.
const BACK: u64 = 40;

/// A `/…/ssl/ssl_lib.cc` string: its address and text.
pub struct PathString {
    pub va: u64,
    pub text: String,
}

/// One error report: where the path is loaded, the function called, and
/// the arguments that could be read (None: not a constant here).
#[derive(Clone, Debug)]
pub struct Site {
    pub at: u64,
    pub callee: u64,
    pub lib: Option<u32>,
    pub zero: Option<u32>,
    pub reason: Option<u32>,
    pub line: Option<u32>,
}

pub fn path_strings(img: &Image) -> Vec<PathString> {
    let mut out = Vec::new();
    for (va, seg) in img.rodata() {
        for hit in memmem::find_iter(seg, SSL_LIB) {
            let from = hit.saturating_sub(512);
            let start = memchr::memrchr(0, &seg[from..hit]).map_or(from, |i| from + i + 1);
            let end = hit + SSL_LIB.len() - 1;
            out.push(PathString {
                va: va + start as u64,
                text: String::from_utf8_lossy(&seg[start..end]).into_owned(),
            });
        }
    }
    out
}

/// Every instruction that loads the string at `target` into rcx.
pub fn references(img: &Image, target: u64) -> Vec<u64> {
    let mut loads = Vec::new();
    for (va, seg) in img.code() {
        if !img.pie && target < 1 << 31 {
            let imm = (target as u32).to_le_bytes();
            // mov ecx, imm32 / mov rcx, simm32
            for prefix in [&[0xb9u8][..], &[0x48, 0xc7, 0xc1]] {
                let needle = [prefix, &imm].concat();
                loads.extend(memmem::find_iter(seg, &needle).map(|i| va + i as u64));
            }
        }
        // lea rcx, [rip+rel32]: position-independent code.
        for i in memmem::find_iter(seg, b"\x48\x8d\x0d") {
            let Some(rel) = seg.get(i + 3..i + 7) else {
                continue;
            };
            let rel = i32::from_le_bytes(rel.try_into().unwrap_or_default()) as i64;
            let next = va + i as u64 + 7;
            if next.wrapping_add_signed(rel) == target {
                loads.push(va + i as u64);
            }
        }
    }
    loads.sort_unstable();
    loads.dedup();
    loads
}

/// The reports among `references`, decoded.
pub fn sites(img: &Image, references: &[u64]) -> Vec<Site> {
    references
        .iter()
        .filter_map(|&at| decode(img, at))
        .collect()
}

fn decoder(img: &Image, va: u64, n: usize) -> Option<Decoder<'_>> {
    let bytes = img.bytes_at(va, n)?;
    Some(Decoder::with_ip(64, bytes, va, DecoderOptions::NONE))
}

/// The first instruction at `va`.
pub fn one(img: &Image, va: u64) -> Option<Instruction> {
    let i = decoder(img, va, 16)?.decode();
    (!i.is_invalid()).then_some(i)
}

/// Instructions from `va` up to `end`, if they end exactly there.
pub fn up_to(img: &Image, va: u64, end: u64) -> Option<Vec<Instruction>> {
    let mut d = decoder(img, va, (end - va) as usize)?;
    let mut out = Vec::new();
    while d.can_decode() {
        let i = d.decode();
        if i.is_invalid() {
            return None;
        }
        out.push(i);
    }
    (out.last()?.next_ip() == end).then_some(out)
}

/// The argument registers' values as the instructions leave them.
#[derive(Default)]
struct Args([Option<Option<u32>>; 4]);

impl Args {
    fn slot(reg: Register) -> Option<usize> {
        [Register::RDI, Register::RSI, Register::RDX, Register::R8]
            .iter()
            .position(|r| *r == reg.full_register())
    }

    fn apply(&mut self, i: &Instruction) {
        if i.op_count() == 0 || i.op0_kind() != OpKind::Register {
            return;
        }
        let Some(slot) = Self::slot(i.op0_register()) else {
            return;
        };
        self.0[slot] = Some(match i.mnemonic() {
            Mnemonic::Mov
                if matches!(i.op1_kind(), OpKind::Immediate32 | OpKind::Immediate32to64) =>
            {
                Some(i.immediate32())
            }
            Mnemonic::Xor
                if i.op1_kind() == OpKind::Register && i.op1_register() == i.op0_register() =>
            {
                Some(0)
            }
            Mnemonic::Cmp | Mnemonic::Test | Mnemonic::Push => return,
            _ => None,
        });
    }
}

fn decode(img: &Image, at: u64) -> Option<Site> {
    let mut d = decoder(img, at, 96)?;
    let mut args = Args::default();
    let first = d.decode();
    if first.is_invalid() {
        return None;
    }
    let mut callee = None;
    for _ in 1..WINDOW {
        let i = d.decode();
        match i.flow_control() {
            FlowControl::Next => args.apply(&i),
            FlowControl::Call if i.is_call_near() => {
                callee = Some(i.near_branch_target());
                break;
            }
            // LLVM merges the calls' tails: follow one jump to a shared call.
            FlowControl::UnconditionalBranch if i.is_jmp_near() => {
                let t = one(img, i.near_branch_target())?;
                callee = t.is_call_near().then(|| t.near_branch_target());
                break;
            }
            _ => return None,
        }
    }
    let callee = callee?;
    if args.0.iter().any(Option::is_none) {
        // Arguments set before the path's load: decode back from a start
        // that falls on `at` exactly.
        let before = (1..=BACK)
            .rev()
            .find_map(|b| up_to(img, at.checked_sub(b)?, at));
        let mut back = Args::default();
        for i in before.iter().flatten() {
            back.apply(i);
        }
        for (mine, theirs) in args.0.iter_mut().zip(back.0) {
            if mine.is_none() {
                *mine = theirs;
            }
        }
    }
    let [lib, zero, reason, line] = args.0.map(Option::flatten);
    Some(Site {
        at,
        callee,
        lib,
        zero,
        reason,
        line,
    })
}
