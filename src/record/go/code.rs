//! Decoding a Go function's machine code (iced-x86): its stack check's
//! `jbe`, where the entry probe goes (the kernel emulates a jump, and must
//! single-step most other instructions, which costs some 30 times as much
//! on a VM; the probe skips the hit whose jump is taken, as the call then
//! starts over), and every RET (never searched for as 0xc3 bytes, which
//! also occur inside other instructions).

use iced_x86::{Decoder, DecoderOptions, Mnemonic};

/// Offsets from the function's entry.
pub struct Code {
    /// The stack check's `jbe`: the arguments are still in their registers.
    pub check: u64,
    pub rets: Vec<u64>,
}

/// Instructions in which the stack check must appear (Go's prologue is
/// `cmp rsp, [r14+0x10]` or `lea r12, [rsp-N]; cmp r12, [r14+0x10]`, then `jbe`).
const PROLOGUE: usize = 4;

pub fn decode(bytes: &[u8], addr: u64) -> Result<Code, String> {
    let mut d = Decoder::with_ip(64, bytes, addr, DecoderOptions::NONE);
    let mut check = None;
    let mut rets = Vec::new();
    for (i, ins) in d.iter().enumerate() {
        if ins.is_invalid() {
            // Padding after the last instruction may not decode.
            continue;
        }
        if check.is_none() && i < PROLOGUE && ins.mnemonic() == Mnemonic::Jbe {
            check = Some(ins.ip() - addr);
        }
        if matches!(ins.mnemonic(), Mnemonic::Ret | Mnemonic::Retf) {
            rets.push(ins.ip() - addr);
        }
    }
    Ok(Code {
        check: check.ok_or("no stack check (jbe) in the prologue")?,
        rets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stack_check_and_every_ret_are_found() {
        // cmp rsp,[r14+0x10]; jbe +0x10; push rbp; mov eax,0xc3c3c3c3; pop rbp; ret; int3...
        let code = [
            0x49, 0x3b, 0x66, 0x10, 0x76, 0x10, 0x55, 0xb8, 0xc3, 0xc3, 0xc3, 0xc3, 0x5d, 0xc3,
            0x31, 0xc0, 0xc3, 0xcc, 0xcc,
        ];
        let c = decode(&code, 0x1000).unwrap();
        assert_eq!(c.check, 4);
        assert_eq!(c.rets, vec![13, 16], "0xc3 inside the mov is no RET");
        assert!(decode(&[0x55, 0xc3], 0).is_err());
    }
}
