mod skel {
    include!(concat!(env!("OUT_DIR"), "/mcpspy.skel.rs"));
}
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use skel::*;
use std::mem::MaybeUninit;
fn main() {
    let rung = std::env::args().nth(1).unwrap();
    let mut obj = MaybeUninit::uninit();
    let b = McpspySkelBuilder::default();
    let mut open = b.open(&mut obj).unwrap();
    let p = &mut open.progs;
    p.mcpspy_tp_btf_exit.set_autoload(rung == "tp_btf");
    p.mcpspy_raw_tp_exit.set_autoload(rung == "raw");
    for q in [&mut p.mcpspy_tp_exit_read, &mut p.mcpspy_tp_exit_write, &mut p.mcpspy_tp_exit_readv, &mut p.mcpspy_tp_exit_writev, &mut p.mcpspy_tp_exit_recvfrom, &mut p.mcpspy_tp_exit_sendto, &mut p.mcpspy_tp_exit_recvmsg, &mut p.mcpspy_tp_exit_sendmsg] {
        q.set_autoload(rung == "tp");
    }
    match open.load() {
        Ok(mut s) => { println!("loaded"); use libbpf_rs::skel::Skel; match s.attach() { Ok(_) => println!("attached"), Err(e) => println!("attach err {e}") } }
        Err(e) => println!("load err {e:#}"),
    };
}
